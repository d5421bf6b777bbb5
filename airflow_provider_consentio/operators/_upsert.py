"""The base of the operators that upsert keyed records from one input (a list, a JSONL/CSV file or a SQL query):
purchase needs, products, base prices, price groups, clients and addresses. Its own module: _common.py holds the
write path itself and would pass 400 lines with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_consentio.operators._common import (
    SUMMARY_LISTS_AT_MOST,
    ConsentioWriteOperator,
    write_records,
)
from airflow_provider_consentio.operators.lineage import input_file_datasets

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context
    from pydantic import BaseModel

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import BatchResult
    from airflow_provider_consentio.operators._common import WriteResult

# Chosen from tests/benchmarks/bench_purchase_needs.py and bench_catalogue.py: within a few percent of the fastest
# setting measured for both.
DEFAULT_BATCH_SIZE = 1000
DEFAULT_CONCURRENCY = 4


class ConsentioUpsertOperator(ConsentioWriteOperator):
    """Base of the upserts: records from one input, down the common write path, a summary back.

    Input, exactly one of: ``records`` (a list of objects, e.g. an XCom), ``input_path`` (a .jsonl or .csv
    ObjectStoragePath) or ``sql`` + ``sql_conn_id`` (any Airflow SQL connection; common.sql's DbApiHook). Source
    columns are mapped to fields with ``column_map`` (field -> column); CSV blanks and SQL NULLs mean "not given".
    Every record is validated before anything is sent and every bad one is named; a key given twice: the last
    record wins (logged). Records go in batches of ``batch_size``, up to ``concurrency`` batches at a time. The
    API's per-record rejections are listed in the summary and fail the task beyond ``max_rejected``. Re-running is
    safe: every upsert is keyed.

    Subclasses name their records (``what``), the API resource (``api_resource``), their key, model and client
    method; they may prepare the loaded records, count what was saved and name the Assets they update by default.

    :param on_invalid: ``fail`` (default: nothing is sent if any record is invalid) or ``skip`` (send the valid
        ones; the invalid ones are listed in the summary).
    :param max_rejected: per-record API rejections tolerated before the task fails (default 0).
    """

    template_fields: Sequence[str] = ("records", "input_path", "sql", "sql_parameters", "column_map")
    template_ext: Sequence[str] = (".sql",)
    what: ClassVar[str]
    # The API resource written, as lineage names it: "purchase-needs", "catalogue/products".
    api_resource: ClassVar[str]
    key_field: ClassVar[str]
    # How the summary names the key of a rejected record.
    rejected_key_name: ClassVar[str] = "key"

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
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", self.default_outlets(consentio_conn_id))
        super().__init__(batch_size=batch_size, concurrency=concurrency, consentio_conn_id=consentio_conn_id, **kwargs)
        self.records = records
        self.input_path = input_path
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.column_map = column_map
        self.csv_delimiter = csv_delimiter

    def default_outlets(self, consentio_conn_id: str) -> list[Asset]:
        """The Assets the task updates unless ``outlets`` is given."""
        return []

    def record_model(self) -> type[BaseModel]:
        raise NotImplementedError

    def sender(self, client: ConsentioClient) -> Callable[[Sequence[Any]], BatchResult]:
        raise NotImplementedError

    def prepare(self, records: list[Any]) -> list[Any]:
        """Loaded records before the write path (e.g. a key made of two fields)."""
        return records

    def saved_counts(self, saved: list[Any]) -> dict[str, int]:
        """The summary's counts of what the API saved."""
        return {"saved": len(saved)}

    def summarize(self, result: WriteResult) -> dict[str, Any]:
        """The XCom summary: the write path's counts, what was saved, the rejected and the invalid records."""
        rejected = result.rejected[:SUMMARY_LISTS_AT_MOST]
        return {
            **result.counts(),
            **self.saved_counts(result.saved),
            "rejected": [{self.rejected_key_name: error.key, "reason": error.reason} for error in rejected],
            "invalid": result.invalid[:SUMMARY_LISTS_AT_MOST],
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.operators.inputs import load_records

        model = self.record_model()
        raw, source = load_records(
            records=self.records,
            input_path=self.input_path,
            sql=self.sql,
            sql_conn_id=self.sql_conn_id,
            sql_parameters=self.sql_parameters,
            column_map=self.column_map,
            required_fields=[name for name, spec in model.model_fields.items() if spec.is_required()],
            csv_delimiter=self.csv_delimiter,
        )
        result = write_records(
            self.prepare(raw),
            source=source,
            what=self.what,
            model=model,
            key_field=self.key_field,
            send=self.sender(self.hook.get_conn()),
            policy=self.write_policy,
            log=self.log,
        )
        summary = self.summarize(result)
        self.record_lineage(
            input_file_datasets(self.input_path), [self.api_dataset(self.api_resource, len(result.saved))]
        )
        self.record_asset_event(
            context, {"resource": self.what, **{k: v for k, v in summary.items() if not isinstance(v, list)}}
        )
        return summary
