"""The export of a time window [start, end) to a JSONL file in sub-windows sized to the data: the loop and the
operator base that the order export and the changed-products export share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow_provider_consentio.operators._common import ConsentioOperator, ProgressLog, plural
from airflow_provider_consentio.operators.checkpoints import Checkpoint, ExportCheckpoints, SwitchableStream
from airflow_provider_consentio.operators.lineage import storage_dataset
from airflow_provider_consentio.operators.windows import AdaptiveWindows, parse_instant, resolve_window

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import RawRecord

    Fetch = Callable[[datetime, datetime], list[RawRecord]]


def write_jsonl(records: Iterable[RawRecord], out: IO[bytes], seen_before: set[Any]) -> set[Any]:
    """Write each record's exact source bytes as one JSONL line, skipping IDs in ``seen_before`` or repeated.

    Returns the IDs written.
    """
    written: set[Any] = set()
    lines = []
    for record in records:
        record_id = record.keys.id
        if record_id not in seen_before and record_id not in written:
            written.add(record_id)
            lines.append(record.raw)
    if lines:
        out.write(b"\n".join(lines))
        out.write(b"\n")
    return written


def write_sub_windows(
    fetch: Fetch,
    windows: AdaptiveWindows,
    out: IO[bytes],
    *,
    written_last_window: set[Any] | None = None,
    exported: int = 0,
) -> Iterator[tuple[datetime, datetime, int]]:
    """The export loop of every windowed export: ``fetch`` each sub-window, write its records' exact bytes to
    ``out`` (de-duplicated by ``keys.id`` across edges), size the next window; yields (lower, upper, written).

    A resumed export passes the IDs of the window written last and the count so far.
    """
    # Only the IDs of the window just written can repeat in the next: windows are consecutive, and a record
    # returned at both edges is the only duplicate the API can produce.
    written_last_window = written_last_window or set()
    for lower, upper in windows:
        records = fetch(lower, upper)
        windows.observed(len(records))
        written_last_window = write_jsonl(records, out, written_last_window)
        exported += len(written_last_window)
        yield lower, upper, exported


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
      still written in one atomic step, byte for byte what an uninterrupted export writes. See :mod:`.durable`.
    * Returns a small summary (path, count, window, sub-windows) and records it on the output Asset's event and in
      the task's lineage (the API resource in, the file out, with the count).

    Subclasses say what they fetch (:meth:`fetcher`) from which API resource (:attr:`api_resource`), how many
    records one request should hold (:meth:`records_per_request`), how log lines name the records (``noun``,
    :meth:`selection`) and what else the summary holds (:meth:`summary_fields`).

    :param output_path: where to write, local or any ObjectStoragePath scheme (templated), e.g.
        ``"/data/consentio/orders/{{ ds }}.jsonl"`` or ``"s3://bucket/orders/{{ ds }}.jsonl"`` with a conn_id.
    :param start: window start (templated; ISO 8601 or datetime); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param window_size: the longest sub-window fetched in one request.
    :param empty_interval: ``fail`` (default) or ``lookback`` for zero-length data intervals.
    :param lookback: the window used by ``empty_interval="lookback"``.
    :param durable: checkpoint long exports so that a retry resumes (needs ``retries``; Airflow 3.3+).
    :param checkpoint_interval: seconds between checkpoints (0: after every sub-window).
    :param consentio_conn_id: the Consentio connection.
    """

    template_fields: Sequence[str] = ("output_path", "start", "end")
    # One record in log lines ("order"); the plural adds an "s".
    noun: ClassVar[str]

    def __init__(
        self,
        *,
        output_path: Any,
        start: Any = None,
        end: Any = None,
        window_size: timedelta,
        empty_interval: str = "fail",
        lookback: timedelta = timedelta(days=1),
        durable: bool = True,
        checkpoint_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.durable = durable
        self.checkpoint_interval = checkpoint_interval
        self.output_path = output_path
        self.start = start
        self.end = end
        self.window_size = window_size
        self.empty_interval = empty_interval
        self.lookback = lookback

    @property
    def api_resource(self) -> str:
        """The API resource read, as lineage names it (``orders/sale``, ``catalogue/products``)."""
        raise NotImplementedError

    def fetcher(self, client: ConsentioClient) -> Fetch:
        """Fetches the raw records of one sub-window [lower, upper)."""
        raise NotImplementedError

    def records_per_request(self) -> int:
        """The sizing target of the sub-windows: about this many records per answer."""
        raise NotImplementedError

    def selection(self) -> str:
        """What is exported, for the log lines: ``"sale orders created"``."""
        raise NotImplementedError

    def summary_fields(self) -> dict[str, Any]:
        """What the summary holds besides the path, the count and the window."""
        return {}

    def report_nothing_found(self, client: ConsentioClient, start: datetime, end: datetime) -> None:
        """Called when the window held no record (by default, that is news to nobody)."""

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.operators.storage import as_storage_path, atomic_writer

        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        client = self.hook.get_conn()
        fetch = self.fetcher(client)
        path = as_storage_path(self.output_path)
        self.log.info(
            "Exporting %s in [%s, %s) to %s (sub-windows of at most %s)",
            self.selection(),
            start.isoformat(),
            end.isoformat(),
            path,
            self.window_size,
        )
        checkpoints = self._checkpoints(context, path, start, end)
        resumed = checkpoints.resume() if checkpoints else None
        if resumed:  # on from where the previous attempt's last checkpoint got, at the window size it had settled on
            windows = AdaptiveWindows(
                parse_instant(resumed.done_until, "checkpoint"),
                end,
                max_size=self.window_size,
                target_records=self.records_per_request(),
                initial=timedelta(seconds=resumed.window_seconds),
            )
        else:
            windows = AdaptiveWindows(start, end, max_size=self.window_size, target_records=self.records_per_request())
        exported = resumed.exported if resumed else 0
        progress = ProgressLog()
        try:
            with contextlib.ExitStack() as stack:
                out: Any = SwitchableStream() if checkpoints else stack.enter_context(atomic_writer(path))
                sub_windows = write_sub_windows(
                    fetch, windows, out, written_last_window=self._last_window_ids(fetch, resumed), exported=exported
                )
                if checkpoints:
                    sub_windows = checkpoints.write_parts(
                        sub_windows, out, resumed, lambda: windows.size.total_seconds()
                    )
                for lower, upper, exported in sub_windows:
                    share = (upper - start) / (end - start)
                    if progress.due(share):
                        self.log.info(
                            "Sub-window %d [%s, %s): %s so far (%.0f%% of the window, %.0f %ss/s)",
                            windows.count,
                            lower.isoformat(),
                            upper.isoformat(),
                            plural(exported, self.noun),
                            100 * share,
                            progress.rate(exported),
                            self.noun,
                        )
            if checkpoints:
                checkpoints.finish()
        except BaseException:
            if checkpoints and not self._retry_follows(context):
                checkpoints.abandon()  # the last attempt: no retry will resume from its parts
            raise
        if not exported:
            self.report_nothing_found(client, start, end)
        summary = {
            "path": str(path),
            "count": exported,
            **self.summary_fields(),
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "sub_windows": windows.count,
        }
        if resumed:
            summary["resumed_from"] = resumed.done_until
        self.log.info(
            "Exported %s to %s in %.1fs (%s)",
            plural(exported, self.noun),
            path,
            progress.elapsed(),
            plural(windows.count, "sub-window"),
        )
        self.record_lineage([self.api_dataset(self.api_resource, exported)], [storage_dataset(path, exported)])
        self.record_asset_event(context, summary)
        return summary

    def _checkpoints(self, context: Context, path: Any, start: datetime, end: datetime) -> ExportCheckpoints | None:
        if not self.durable or not self.retries:  # only a retry resumes from checkpoints
            return None
        job = {"path": str(path), "start": start, "end": end, "resource": self.api_resource, **self.summary_fields()}
        return ExportCheckpoints.for_task(context, path, job, self.checkpoint_interval, self.log)

    def _retry_follows(self, context: Context) -> bool:
        """Whether Airflow will retry this task if this attempt fails (try numbers start at 1)."""
        return context["ti"].try_number <= (self.retries or 0)

    def _last_window_ids(self, fetch: Fetch, resumed: Checkpoint | None) -> set[Any] | None:
        """The IDs the previous attempt wrote in its last sub-window (asked again: one request), to skip at its edge."""
        if resumed is None:
            return None
        lower, upper = parse_instant(resumed.last_lower, "checkpoint"), parse_instant(resumed.done_until, "checkpoint")
        return {record.keys.id for record in fetch(lower, upper)}
