"""Buyer purchase-need operators: validated, batched, idempotent upsert; export by date range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.base.common import ConsentioOperator, plural
from airflow_provider_consentio.operators.base.export_loop import export_file
from airflow_provider_consentio.operators.base.lineage import storage_dataset
from airflow_provider_consentio.operators.base.windows import parse_instant, resolve_window
from airflow_provider_consentio.operators.base.write_operator import ConsentioWriteOperator, InputNamed
from airflow_provider_consentio.resources import PURCHASE_NEEDS

if TYPE_CHECKING:
    from airflow.sdk import Context


def purchase_needs_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    assert PURCHASE_NEEDS.write is not None and PURCHASE_NEEDS.write.asset is not None
    return resource_asset(PURCHASE_NEEDS.write.asset, consentio_conn_id)


class ConsentioUpsertPurchaseNeedsOperator(ConsentioWriteOperator):
    """Create or update purchase needs, idempotently by ``code``.

    Input, exactly one of: ``needs`` (a list of objects, e.g. an XCom), ``input_path`` (a .jsonl or .csv
    ObjectStoragePath) or ``sql`` + ``sql_conn_id`` (any Airflow SQL connection; common.sql's DbApiHook). Source
    columns are mapped to fields with ``column_map`` (field -> column); CSV/SQL blanks and NULLs mean "not given";
    a ``metadata`` column may hold a JSON object and ``metadata.<key>`` columns are gathered into ``metadata``.

    Every record is validated against the documented field rules before anything is sent; the error lists every
    bad record by code and reason. A code given twice: the last record wins (logged). Records go in batches of
    ``batch_size``, up to ``concurrency`` batches at a time. The API reports per-record rejections with HTTP 200:
    they are collected, listed in the summary, and fail the task when more than ``max_rejected``. Re-running is
    safe: ``code`` is the idempotency key, so a resubmitted record replaces itself.

    Returns ``{"submitted", "created", "updated", "rejected": [{"code", "reason"}], "invalid": [...], ...}``.

    :param on_invalid: ``fail`` (default: nothing is sent if any record is invalid) or ``skip`` (send the valid
        ones; the invalid ones are listed in the summary).
    :param max_rejected: per-record API rejections tolerated before the task fails (default 0).
    """

    template_fields: Sequence[str] = ("needs", "input_path", "sql", "sql_parameters", "column_map")
    ui_color = "#f3ecdf"
    writes = PURCHASE_NEEDS
    needs = InputNamed()

    def __init__(self, *, needs: Any = None, **kwargs: Any) -> None:
        super().__init__(records=needs, **kwargs)

    def saved_counts(self, saved: list[Any]) -> dict[str, int]:
        from airflow_provider_consentio.models import saved_was_created

        created = sum(1 for record in saved if saved_was_created(record))
        return {"created": created, "updated": len(saved) - created}


class ConsentioExportPurchaseNeedsOperator(ConsentioOperator):
    """Export purchase needs to a JSONL file, each as the API returned it (atomic write, summary, Asset event).

    Selects needs whose delivery window lies inside [from_date, to_date] (the API's filter:
    need.start_date >= from_date and need.end_date <= to_date), optionally with one external status.

    :param output_path: JSONL file to write (templated).
    :param from_date: first delivery date (templated); default: the date the data interval starts.
    :param to_date: last delivery date, inclusive (templated); default: the last date inside the data interval.
    :param status: only needs with this external_status.
    """

    # Not start_date/end_date: those are BaseOperator's own (the task's scheduling bounds).
    template_fields: Sequence[str] = ("output_path", "from_date", "to_date", "status")
    ui_color = "#f3ecdf"

    def __init__(
        self,
        *,
        output_path: Any,
        from_date: Any = None,
        to_date: Any = None,
        status: str | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.output_path = output_path
        self.from_date = from_date
        self.to_date = to_date
        self.status = status

    def resolve_dates(self, context: Mapping[str, Any]) -> tuple[date, date]:
        if self.from_date is None or self.to_date is None:
            start, end = resolve_window(
                context, empty_interval="lookback", lookback=timedelta(days=1), task=self.task_id
            )
        first = parse_instant(self.from_date, "from_date").date() if self.from_date is not None else start.date()
        last = (
            parse_instant(self.to_date, "to_date").date()
            if self.to_date is not None
            else (end - timedelta.resolution).date()
        )
        if last < first:
            raise ConsentioConfigError(f"{self.task_id}: to_date {last} is before from_date {first}")
        return first, last

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.hooks.metrics import RECORDS_READ
        from airflow_provider_consentio.operators.base.storage import as_storage_path

        first, last = self.resolve_dates(context)
        path = as_storage_path(self.output_path)
        count = export_file(path, self.hook.get_conn().get_raw_purchase_needs(first, last, status=self.status))
        self.count_records(RECORDS_READ, count, "purchase_needs")
        summary = {
            "path": str(path),
            "count": count,
            "from_date": first.isoformat(),
            "to_date": last.isoformat(),
            "status": self.status,
        }
        self.log.info("Exported %s to %s", plural(count, "purchase need"), path)
        self.record_lineage([self.api_dataset("purchase-needs", count)], [storage_dataset(path, count)])
        self.record_asset_event(context, summary)
        return summary
