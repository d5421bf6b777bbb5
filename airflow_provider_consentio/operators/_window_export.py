"""The export of a time window [start, end) to a JSONL file in sub-windows sized to the data: the loop and the
operator base that the order export and the changed-products export share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow_provider_consentio.operators._common import ConsentioOperator, ProgressLog, plural
from airflow_provider_consentio.windows import AdaptiveWindows, resolve_window

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
    fetch: Fetch, windows: AdaptiveWindows, out: IO[bytes]
) -> Iterator[tuple[datetime, datetime, int]]:
    """The export loop of every windowed export: ``fetch`` each sub-window, write its records' exact bytes to
    ``out`` (de-duplicated by ``keys.id`` across edges), size the next window; yields (lower, upper, written)."""
    # Only the IDs of the window just written can repeat in the next: windows are consecutive, and a record
    # returned at both edges is the only duplicate the API can produce.
    written_last_window: set[Any] = set()
    exported = 0
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
    * Returns a small summary (path, count, window, sub-windows) and records it on the output Asset's event.

    Subclasses say what they fetch (:meth:`fetcher`), how many records one request should hold
    (:meth:`records_per_request`), how log lines name the records (``noun``, :meth:`selection`) and what else the
    summary holds (:meth:`summary_fields`).

    :param output_path: where to write, local or any ObjectStoragePath scheme (templated), e.g.
        ``"/data/consentio/orders/{{ ds }}.jsonl"`` or ``"s3://bucket/orders/{{ ds }}.jsonl"`` with a conn_id.
    :param start: window start (templated; ISO 8601 or datetime); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param window_size: the longest sub-window fetched in one request.
    :param empty_interval: ``fail`` (default) or ``lookback`` for zero-length data intervals.
    :param lookback: the window used by ``empty_interval="lookback"``.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path
        self.start = start
        self.end = end
        self.window_size = window_size
        self.empty_interval = empty_interval
        self.lookback = lookback

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
        from airflow_provider_consentio.storage import as_storage_path, atomic_writer

        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        client = self.hook.get_conn()
        fetch = self.fetcher(client)
        path = as_storage_path(self.output_path)
        windows = AdaptiveWindows(start, end, max_size=self.window_size, target_records=self.records_per_request())
        self.log.info(
            "Exporting %s in [%s, %s) to %s (sub-windows of at most %s)",
            self.selection(),
            start.isoformat(),
            end.isoformat(),
            path,
            self.window_size,
        )
        exported = 0
        progress = ProgressLog()
        with atomic_writer(path) as out:
            for lower, upper, exported in write_sub_windows(fetch, windows, out):
                if progress.due(windows.progress(upper)):
                    self.log.info(
                        "Sub-window %d [%s, %s): %s so far (%.0f%% of the window, %.0f %ss/s)",
                        windows.count,
                        lower.isoformat(),
                        upper.isoformat(),
                        plural(exported, self.noun),
                        100 * windows.progress(upper),
                        progress.rate(exported),
                        self.noun,
                    )
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
        self.log.info(
            "Exported %s to %s in %.1fs (%s)",
            plural(exported, self.noun),
            path,
            progress.elapsed(),
            plural(windows.count, "sub-window"),
        )
        self.record_asset_event(context, summary)
        return summary
