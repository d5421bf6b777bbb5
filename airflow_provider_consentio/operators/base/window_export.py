"""The operator base of the exports of a time window [start, end) to JSONL: the order export, the changed-products
export and the export by period. Its loop is :func:`.export_loop.export_spans`; where the lines go (one file,
checkpointed parts, one file per period) is the target's (:class:`.export_loop.ExportTarget`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.operators.base.checkpoints import CheckpointedFile, ExportCheckpoints
from airflow_provider_consentio.operators.base.common import ConsentioOperator, ProgressLog, plural
from airflow_provider_consentio.operators.base.export_loop import ExportTarget, OneFile, RecordsMeter, export_spans
from airflow_provider_consentio.operators.base.windows import resolve_window

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.operators.base.export_loop import Fetch
    from airflow_provider_consentio.resources import Resource

__all__ = ["ConsentioWindowExportOperator", "Fetch"]


class ConsentioWindowExportOperator(ConsentioOperator):
    """Base of the exports of the records of [start, end) to a JSONL file, each exactly as the API returned it.

    * The window defaults to the run's data interval, so a backfill of March exports each day exactly once. A
      zero-length interval (CronTriggerTimetable, manual runs) fails with an explanation, unless
      ``empty_interval="lookback"``: then [end - lookback, end) is exported.
    * The window is fetched in consecutive sub-windows sized to the data: they grow (up to ``window_size``) while
      answers are small and shrink when one holds more than the subclass's records-per-request target, so memory
      stays flat whatever the range and the volume. Records are de-duplicated by ID across sub-window edges.
    * The file is written atomically: it appears at ``output_path`` only once complete, so a retry or a crash
      never leaves a partial or doubled file; a rerun of the same window rewrites the same file.
    * Durable (with ``retries`` and Airflow 3.3+, unless ``durable=False``): the completed sub-windows are
      checkpointed every ``checkpoint_interval`` seconds (parts beside the final file, and the task state store),
      so a retry after a dead worker resumes after the last checkpoint instead of starting over. The final file is
      still written in one atomic step, byte for byte what an uninterrupted export writes. See :mod:`.checkpoints`.
    * Returns a small summary (path, count, window, sub-windows) and records it on the output Asset's event and in
      the task's lineage (the API resource in, the file out, with the count).

    Subclasses say which resource they read (:attr:`resource`, whose declaration gives the lineage name, the log
    lines' noun and the defaults of ``window_size`` and the records-per-request target), with which parameters
    (:meth:`read_params`), how log lines name the selection (:meth:`selection`) and what else the summary holds
    (:meth:`summary_fields`); a subclass whose records the declaration cannot fetch in one call overrides
    :meth:`fetcher`, and one that writes elsewhere than one file overrides :meth:`target`.

    :param output_path: where to write, local or any ObjectStoragePath scheme (templated), e.g.
        ``"/data/consentio/orders/{{ ds }}.jsonl"`` or ``"s3://bucket/orders/{{ ds }}.jsonl"`` with a conn_id.
    :param start: window start (templated; ISO 8601 or datetime); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param window_size: the longest sub-window fetched in one request (default: the resource's declaration).
    :param records_per_request: the sizing target of the sub-windows: about this many records per answer
        (default: the resource's declaration).
    :param empty_interval: ``fail`` (default) or ``lookback`` for zero-length data intervals.
    :param lookback: the window used by ``empty_interval="lookback"``.
    :param durable: checkpoint long exports so that a retry resumes (needs ``retries``; Airflow 3.3+).
    :param checkpoint_interval: seconds between checkpoints (0: after every sub-window).
    :param consentio_conn_id: the Consentio connection.
    """

    template_fields: Sequence[str] = ("output_path", "start", "end")
    resource: ClassVar[Resource]

    def __init__(
        self,
        *,
        output_path: Any,
        start: Any = None,
        end: Any = None,
        window_size: timedelta | None = None,
        records_per_request: int | None = None,
        empty_interval: str = "fail",
        lookback: timedelta = timedelta(days=1),
        durable: bool = True,
        checkpoint_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        read = self.resource.read
        assert read is not None, f"{self.resource.name} has no listing to export"
        if "outlets" not in kwargs and read.asset is not None:
            # A subclass whose Asset takes a read parameter (the orders' kind) names its outlets itself.
            kwargs["outlets"] = [resource_asset(read.asset, kwargs.get("consentio_conn_id", "consentio_default"))]
        super().__init__(**kwargs)
        self.durable = durable
        self.checkpoint_interval = checkpoint_interval
        self.output_path = output_path
        self.start = start
        self.end = end
        self.window_size = read.window_size if window_size is None else window_size
        self.records_per_request = read.records_per_request if records_per_request is None else records_per_request
        self.empty_interval = empty_interval
        self.lookback = lookback

    def read_params(self) -> dict[str, Any]:
        """The listing's parameters (those that name the lineage dataset among them)."""
        return {}

    @property
    def api_resource(self) -> str:
        """The API resource read, as lineage names it (``orders/sale``, ``catalogue/products``)."""
        return self.resource.lineage_name(**self.read_params())

    def fetcher(self, client: ConsentioClient) -> Fetch:
        """Fetches the raw records of one sub-window [lower, upper)."""
        params = self.read_params()
        return lambda lower, upper: client.read_raw(self.resource, lower, upper, **params)

    def selection(self) -> str:
        """What is exported, for the log lines: ``"sale orders created"``."""
        return self.resource.nouns

    def summary_fields(self) -> dict[str, Any]:
        """What the summary holds besides the path, the count and the window (also part of a checkpoint's
        identity: a retry resumes only the same export)."""
        return {}

    def report_nothing_found(self, client: ConsentioClient, start: datetime, end: datetime) -> None:
        """Called when the window held no record (by default, that is news to nobody)."""

    def target(self, context: Context, start: datetime, end: datetime) -> ExportTarget:
        """Where the export goes: one file, in checkpointed parts when a retry could resume from them."""
        from airflow_provider_consentio.operators.base.storage import as_storage_path

        path = as_storage_path(self.output_path)
        if self.durable and self.retries:  # only a retry resumes from checkpoints
            job = {"path": str(path), "start": start, "end": end, "resource": self.api_resource}
            checkpoints = ExportCheckpoints.for_task(
                context, path, {**job, **self.summary_fields()}, self.checkpoint_interval, self.log
            )
            if checkpoints:
                retry_follows = self._retry_follows(context)
                return CheckpointedFile(checkpoints, self.resource, self.window_size, retry_follows=retry_follows)
        return OneFile(path, self.resource, self.window_size)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.hooks.metrics import RECORDS_READ

        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        target = self.target(context, start, end)  # first: a target refusing its options refuses before any request
        client = self.hook.get_conn()
        fetch = self.fetcher(client)
        self.log.info(
            "Exporting %s in [%s, %s) %s", self.selection(), start.isoformat(), end.isoformat(), target.describe()
        )
        spans, start_at = target.plan(start, end, fetch)
        clock = ProgressLog()
        with target:
            result = export_spans(
                fetch,
                spans,
                target,
                max_size=self.window_size,
                target_records=self.records_per_request,
                start_at=start_at,
                listeners=[
                    target.progress(self.log, clock, start, end),
                    RecordsMeter(lambda count: self.count_records(RECORDS_READ, count, self.resource.name), start_at),
                ],
            )
        if not result.exported:
            self.report_nothing_found(client, start, end)
        summary = target.summary(result, self.summary_fields(), start, end)
        self.log.info(
            "Exported %s to %s in %.1fs (%s)",
            self.resource.counted(result.exported),
            target.written_to(),
            clock.elapsed(),
            plural(result.sub_windows, target.requests_named),
        )
        self.record_lineage([self.api_dataset(self.api_resource, result.exported)], target.outputs(result))
        self.record_asset_event(context, target.asset_extra(summary))
        return summary

    def _retry_follows(self, context: Context) -> bool:
        """Whether Airflow will retry this task if this attempt fails (try numbers start at 1)."""
        return context["ti"].try_number <= (self.retries or 0)
