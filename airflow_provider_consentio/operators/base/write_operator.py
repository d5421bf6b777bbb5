"""The one base of every write operator: records from one input, down the write path (write_path.py) to the
resource the operator declares it writes, a summary back.

An operator names its resource (``writes = resources.PRODUCTS``: model, key, request, lineage name, Asset) and
only what is its own: a preparation of the loaded records, another send step, its summary's counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError
from airflow_provider_consentio.operators.base.common import SUMMARY_LISTS_AT_MOST, ConsentioOperator, check_choice
from airflow_provider_consentio.operators.base.lineage import input_file_datasets
from airflow_provider_consentio.operators.base.write_path import ON_INVALID_POLICIES, WritePolicy, write_records

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import BatchResult
    from airflow_provider_consentio.operators.base.write_path import WriteResult
    from airflow_provider_consentio.resources import Resource, Write

# Chosen from tests/benchmarks/bench_purchase_needs.py and bench_catalogue.py: within a few percent of the fastest
# setting measured for both.
DEFAULT_BATCH_SIZE = 1000
DEFAULT_CONCURRENCY = 4


def declared_outlets(resource: Resource, consentio_conn_id: str) -> list[Asset]:
    """The Assets a write of ``resource`` updates unless the task gives ``outlets``: its declaration's."""
    asset = resource.write.asset if resource.write is not None else None
    return [resource_asset(asset, consentio_conn_id)] if asset is not None else []


class WriteRun:
    """One execution's send step and the state it keeps while sending.

    The default sends each batch as the resource's declaration says. An operator whose send needs more (a create
    sent at most once, a read-back before marking seen) gives its own, and keeps that execution's state there.
    """

    def __init__(self, operator: ConsentioWriteOperator, client: ConsentioClient) -> None:
        self.operator = operator
        self.client = client

    def hold_back(self, valid: list[Any]) -> list[Any]:
        """Of the validated records, those to send."""
        return valid

    def send(self, batch: Sequence[Any]) -> BatchResult:
        return self.client.write(self.operator.writes, batch)

    def finish(self, result: WriteResult) -> None:
        """Once every batch is sent."""

    def failed(self, failure: ConsentioError) -> None:
        """Once the write path failed, before its failure is raised (a worse one found here may replace it)."""

    def summary(self, result: WriteResult) -> dict[str, Any]:
        return self.operator.summarize(result)


class InputNamed:
    """The input's ``records`` under the name an operator has always given it (``needs``, ``references``,
    ``orders``): its keyword argument and its template field keep working."""

    def __get__(self, operator: Any, owner: Any = None) -> Any:
        return self if operator is None else operator.records

    def __set__(self, operator: Any, value: Any) -> None:
        operator.records = value


class ConsentioWriteOperator(ConsentioOperator):
    """Base of the writes: records from one input, down the common write path, a summary back.

    Input, exactly one of: ``records`` (a list of objects, e.g. an XCom), ``input_path`` (a .jsonl or .csv
    ObjectStoragePath) or ``sql`` + ``sql_conn_id`` (any Airflow SQL connection; common.sql's DbApiHook). Source
    columns are mapped to fields with ``column_map`` (field -> column); CSV blanks and SQL NULLs mean "not given".
    Every record is validated before anything is sent and every bad one is named; a key given twice: the last
    record wins (logged). Records go in batches of ``batch_size``, up to ``concurrency`` batches at a time. The
    API's per-record rejections are listed in the summary and fail the task beyond ``max_rejected``. Re-running an
    upsert is safe: every upsert is keyed.

    Subclasses name the resource they write (``writes``); they may prepare the loaded records, send otherwise
    (:class:`WriteRun`) and count what was saved.

    :param on_invalid: ``fail`` (default: nothing is sent if any record is invalid) or ``skip`` (send the valid
        ones; the invalid ones are listed in the summary).
    :param max_rejected: per-record API rejections tolerated before the task fails (default 0).
    """

    template_fields: Sequence[str] = ("records", "input_path", "sql", "sql_parameters", "column_map")
    template_ext: Sequence[str] = (".sql",)
    writes: ClassVar[Resource]

    def __init__(
        self,
        *,
        records: Any = None,
        input_path: Any = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        sql_parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        column_map: Mapping[str, str] | None = None,
        csv_delimiter: str = ",",
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_invalid: str = "fail",
        max_rejected: int = 0,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", declared_outlets(self.writes, consentio_conn_id))
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        check_choice("on_invalid", on_invalid, ON_INVALID_POLICIES)
        self.records = records
        self.input_path = input_path
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.column_map = column_map
        self.csv_delimiter = csv_delimiter
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.on_invalid = on_invalid
        self.max_rejected = max_rejected

    @property
    def declaration(self) -> Write:
        if self.writes.write is None:
            raise ConsentioConfigError(f"The Partner API takes no writes of {self.writes.nouns}")
        return self.writes.write

    @property
    def what(self) -> str:
        """The records' name in messages and in the Asset event, plural."""
        return self.writes.nouns

    @property
    def write_policy(self) -> WritePolicy:
        return WritePolicy(self.batch_size, self.concurrency, self.on_invalid, self.max_rejected)

    def hook_options(self) -> dict[str, Any]:
        return {"max_connections": max(10, self.concurrency)}

    def load(self) -> tuple[list[Any], str]:
        """The input's records and a short name of their source."""
        from airflow_provider_consentio.operators.base.inputs import load_records

        model = self.declaration.model_class
        return load_records(
            records=self.records,
            input_path=self.input_path,
            sql=self.sql,
            sql_conn_id=self.sql_conn_id,
            sql_parameters=self.sql_parameters,
            column_map=self.column_map,
            required_fields=[name for name, spec in model.model_fields.items() if spec.is_required()],
            csv_delimiter=self.csv_delimiter,
        )

    def prepare(self, records: list[Any]) -> list[Any]:
        """Loaded records before the write path (e.g. a key made of two fields)."""
        return records

    def write_run(self, client: ConsentioClient) -> WriteRun:
        return WriteRun(self, client)

    def saved_counts(self, saved: list[Any]) -> dict[str, int]:
        """The summary's counts of what the API saved."""
        return {"saved": len(saved)}

    def summarize(self, result: WriteResult) -> dict[str, Any]:
        """The XCom summary: the write path's counts, what was saved, the rejected and the invalid records."""
        rejected = result.rejected[:SUMMARY_LISTS_AT_MOST]
        return {
            **result.counts(),
            **self.saved_counts(result.saved),
            "rejected": [{self.declaration.rejected_key_name: error.key, "reason": error.reason} for error in rejected],
            "invalid": result.invalid[:SUMMARY_LISTS_AT_MOST],
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.hooks.metrics import RECORDS_WRITTEN

        raw, source = self.load()
        run = self.write_run(self.hook.get_conn())
        try:
            result = write_records(
                self.prepare(raw),
                source=source,
                what=self.what,
                model=self.declaration.model_class,
                key_field=self.declaration.key_field,
                send=run.send,
                policy=self.write_policy,
                log=self.log,
                hold_back=run.hold_back,
            )
        except ConsentioError as failure:
            run.failed(failure)
            raise
        run.finish(result)
        self.count_records(RECORDS_WRITTEN, len(result.saved), self.writes.name)
        summary = run.summary(result)
        self.record_lineage(
            input_file_datasets(self.input_path), [self.api_dataset(self.writes.lineage, len(result.saved))]
        )
        self.record_asset_event(
            context, {"resource": self.what, **{k: v for k, v in summary.items() if not isinstance(v, list)}}
        )
        return summary
