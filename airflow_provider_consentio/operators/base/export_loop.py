"""The one export loop: fetch [start, end) in sub-windows sized to the data, write each record's exact source bytes
as a JSONL line, and tell the sink and the listeners what was written.

Every export writes through it: the daily window export (one atomic file, or checkpointed parts), the export by
period (one atomic file per period) and the durable resume (the same loop, started after the last checkpoint).
What differs is the sink, which receives the lines and the "window written" / "span written" events; the loop
keeps no state for anyone to read afterwards and returns what it did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_consentio.operators.base.common import Logger, ProgressLog
from airflow_provider_consentio.operators.base.lineage import LineageDataset, storage_dataset
from airflow_provider_consentio.operators.base.windows import AdaptiveWindows

if TYPE_CHECKING:
    from airflow_provider_consentio.models import RawRecord
    from airflow_provider_consentio.resources import Resource

    Fetch = Callable[[datetime, datetime], list[RawRecord]]

FIRST_WINDOW = timedelta(minutes=5)


class Lines(Protocol):
    """Where JSONL lines go: a binary file or a sink."""

    def write(self, data: bytes, /) -> Any: ...


@dataclass(frozen=True)
class Written:
    """What one call of :func:`write_jsonl` wrote: how many lines, and (when de-duplicating) whose IDs."""

    count: int
    ids: Set[Any]


def write_jsonl(
    records: Iterable[RawRecord], out: Lines, *, dedupe: bool = False, seen_before: Set[Any] = frozenset()
) -> Written:
    """Write each record's exact source bytes as one JSONL line; with ``dedupe``, skip IDs in ``seen_before`` or
    repeated (by ``keys.id``)."""
    written: set[Any] = set()
    lines = []
    for record in records:
        if dedupe:
            record_id = record.keys.id
            if record_id in seen_before or record_id in written:
                continue
            written.add(record_id)
        lines.append(record.raw)
    if lines:
        out.write(b"\n".join(lines))
        out.write(b"\n")
    return Written(len(lines), written)


def export_file(path: Any, records: Iterable[RawRecord], *, dedupe: bool = False) -> int:
    """The single-request exports: ``records`` to ``path`` (written atomically); returns how many were written."""
    from airflow_provider_consentio.operators.base.storage import atomic_writer

    with atomic_writer(path) as out:
        return write_jsonl(records, out, dedupe=dedupe).count


@dataclass(frozen=True)
class WindowWritten:
    """One sub-window fetched and written: the ``number``-th of this attempt, ``exported`` records so far (those
    of a resumed attempt included), ``ids`` the IDs it wrote, ``next_size`` the size the next one will have."""

    number: int
    lower: datetime
    upper: datetime
    ids: Set[Any]
    exported: int
    next_size: timedelta


@dataclass(frozen=True)
class SpanWritten:
    """One span (the whole window, or one period) written: ``count`` records in it, ``exported`` so far."""

    lower: datetime
    upper: datetime
    count: int
    exported: int


class ExportListener:
    """Told of each step of the loop; by default it does nothing with it."""

    def span_started(self, lower: datetime, upper: datetime) -> None:
        """A span starts; the lines until its :meth:`span_written` belong to it."""

    def window_written(self, event: WindowWritten) -> None:
        """A sub-window's lines were written."""

    def span_written(self, event: SpanWritten) -> None:
        """A span is complete."""


class ExportSink(ExportListener):
    """Receives the lines, and the events that say where they belong."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class StartAt:
    """Where the loop starts: fresh, or where a previous attempt's checkpoint says it got."""

    exported: int = 0
    window_size: timedelta = FIRST_WINDOW
    # The IDs written in the sub-window just before the first span: a record at that edge is not written twice.
    seen_before: Set[Any] = frozenset()


@dataclass(frozen=True)
class ExportResult:
    exported: int
    sub_windows: int


def export_spans(
    fetch: Fetch,
    spans: Sequence[tuple[datetime, datetime]],
    sink: ExportSink,
    *,
    max_size: timedelta,
    target_records: int,
    start_at: StartAt = StartAt(),
    listeners: Sequence[ExportListener] = (),
) -> ExportResult:
    """The export loop: ``fetch`` each sub-window of each span, write its records' exact bytes to ``sink``
    (de-duplicated by ``keys.id`` across sub-window edges), size the next sub-window, report each step.

    Each span is written as if exported on its own (de-duplication starts afresh), so a period's file is byte for
    byte the file a daily export of that period writes; the sub-window size carries over from span to span.
    """
    exported, number, size = start_at.exported, 0, start_at.window_size
    # Only the IDs of the window just written can repeat in the next: windows are consecutive, and a record
    # returned at both edges is the only duplicate the API can produce.
    seen = start_at.seen_before
    for span_lower, span_upper in spans:
        sink.span_started(span_lower, span_upper)
        in_span = 0
        windows = AdaptiveWindows(
            span_lower, span_upper, max_size=max_size, target_records=target_records, initial=size
        )
        for lower, upper in windows:
            records = fetch(lower, upper)
            windows.observed(len(records))
            written = write_jsonl(records, sink, dedupe=True, seen_before=seen)
            seen, number = written.ids, number + 1
            in_span += written.count
            exported += written.count
            event = WindowWritten(number, lower, upper, seen, exported, windows.size)
            # The listeners (progress) first: a sink that cuts a checkpoint here logs it after the progress line.
            for listener in (*listeners, sink):
                listener.window_written(event)
        size, seen = windows.size, frozenset()
        # The sink first: a span is announced once its file is complete.
        for listener in (sink, *listeners):
            listener.span_written(SpanWritten(span_lower, span_upper, in_span, exported))
    return ExportResult(exported, number)


class ExportTarget(ExportSink):
    """Where an export goes, as its operator sees it: the sink, where the loop starts, what the log lines, the
    summary and the lineage say. A context manager: leaving it with an exception leaves no partial file."""

    # The log's name of what the loop fetched one at a time.
    requests_named = "sub-window"

    def plan(self, start: datetime, end: datetime, fetch: Fetch) -> tuple[Sequence[tuple[datetime, datetime]], StartAt]:
        """The spans to export and where the loop starts (a resumed target starts after its checkpoint)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the lines go, for the first log line: ``to /data/orders.jsonl (sub-windows of at most 1:00:00)``."""
        raise NotImplementedError

    def written_to(self) -> str:
        """Where the lines went, for the last log line: the path, or ``30 files``."""
        raise NotImplementedError

    def progress(self, log: Logger, clock: ProgressLog, start: datetime, end: datetime) -> ExportListener:
        """What logs the progress while the loop runs."""
        raise NotImplementedError

    def summary(
        self, result: ExportResult, fields: Mapping[str, Any], start: datetime, end: datetime
    ) -> dict[str, Any]:
        """The task's summary (its XCom), ``fields`` being what the operator adds (``kind``, ``statuses``)."""
        raise NotImplementedError

    def outputs(self, result: ExportResult) -> list[LineageDataset]:
        """The lineage datasets written."""
        raise NotImplementedError

    def asset_extra(self, summary: dict[str, Any]) -> dict[str, Any]:
        """What of the summary goes on the output Asset's event."""
        return summary

    def __enter__(self) -> ExportTarget:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass


class WindowProgress(ExportListener):
    """Logs a long window's progress by sub-window (every few seconds or tenth of the window)."""

    def __init__(self, log: Logger, clock: ProgressLog, resource: Resource, start: datetime, end: datetime) -> None:
        self.log, self.clock, self.resource, self.start, self.end = log, clock, resource, start, end

    def window_written(self, event: WindowWritten) -> None:
        share = (event.upper - self.start) / (self.end - self.start)
        if self.clock.due(share):
            self.log.info(
                "Sub-window %d [%s, %s): %s so far (%.0f%% of the window, %.0f %s/s)",
                event.number,
                event.lower.isoformat(),
                event.upper.isoformat(),
                self.resource.counted(event.exported),
                100 * share,
                self.clock.rate(event.exported),
                self.resource.nouns,
            )


class RecordsMeter(ExportListener):
    """Tells ``count`` how many records each sub-window wrote (a metric counted as the export goes, not at its end,
    so that a long export shows its pace); those of a resumed attempt's checkpoint were counted by that attempt."""

    def __init__(self, count: Callable[[int], None], start_at: StartAt) -> None:
        self.count, self.exported = count, start_at.exported

    def window_written(self, event: WindowWritten) -> None:
        self.count(event.exported - self.exported)
        self.exported = event.exported


class OneFile(ExportTarget):
    """The whole window in one file that appears at ``path`` only once complete."""

    def __init__(self, path: Any, resource: Resource, window_size: timedelta) -> None:
        self.path, self.resource, self.window_size = path, resource, window_size
        self._stack = contextlib.ExitStack()
        self._out: Any = None

    def plan(self, start: datetime, end: datetime, fetch: Fetch) -> tuple[Sequence[tuple[datetime, datetime]], StartAt]:
        return [(start, end)], StartAt()

    def describe(self) -> str:
        return f"to {self.path} (sub-windows of at most {self.window_size})"

    def written_to(self) -> str:
        return str(self.path)

    def progress(self, log: Logger, clock: ProgressLog, start: datetime, end: datetime) -> ExportListener:
        return WindowProgress(log, clock, self.resource, start, end)

    def summary(
        self, result: ExportResult, fields: Mapping[str, Any], start: datetime, end: datetime
    ) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "count": result.exported,
            **fields,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "sub_windows": result.sub_windows,
        }

    def outputs(self, result: ExportResult) -> list[LineageDataset]:
        return [storage_dataset(self.path, result.exported)]

    def __enter__(self) -> OneFile:
        from airflow_provider_consentio.operators.base.storage import atomic_writer

        self._out = self._stack.enter_context(atomic_writer(self.path))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stack.__exit__(*exc_info)

    def write(self, data: bytes) -> None:
        self._out.write(data)
