"""Export a long range of orders in one task run, one file per day (or per hour, ...), for backfills.

A year of daily runs costs Airflow's start-up of every task of every day; the export itself moves tens of
thousands of orders a second. :class:`ConsentioExportOrdersByPeriodOperator` exports the whole range in one run and
writes each period to its own file, byte for byte the file the daily export writes for that period, so a backfill
and the daily runs share files, and whatever reads the daily files reads these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.base.checkpoints import PeriodCheckpoints
from airflow_provider_consentio.operators.base.common import Logger, ProgressLog, plural
from airflow_provider_consentio.operators.base.export_loop import (
    ExportListener,
    ExportResult,
    ExportTarget,
    SpanWritten,
    StartAt,
)
from airflow_provider_consentio.operators.base.lineage import LineageDataset, storage_dataset
from airflow_provider_consentio.operators.base.windows import parse_instant
from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_consentio.operators.base.export_loop import Fetch
    from airflow_provider_consentio.resources import Resource

ONE_DAY = timedelta(days=1)
# The summary lists this many partitions (a year and a bit) and counts the rest; partition_files() rebuilds them all.
LISTED_PARTITIONS = 400
PLACEHOLDERS = ("{day}", "{start}")


def split_periods(start: datetime, end: datetime, period: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """The periods covering [start, end), each aligned like the daily runs' intervals (midnight UTC for days)."""
    if period <= timedelta(0) or ONE_DAY % period:
        raise ConsentioConfigError(f"period must be one day or divide a day evenly (e.g. one hour), got {period}")
    midnight = datetime(start.year, start.month, start.day, tzinfo=UTC)
    for edge, name in ((start, "start"), (end, "end")):
        if (edge - midnight) % period:
            raise ConsentioConfigError(
                f"the window {name} {edge.isoformat()} is not on a period boundary ({period} from midnight UTC): "
                "each file must hold exactly the orders of one period, as the daily run's file does"
            )
    cursor = start
    while cursor < end:
        yield cursor, cursor + period
        cursor += period


def partition_path(template: str, period_start: datetime) -> str:
    """``template`` with ``{day}`` (2025-03-01) and ``{start}`` (2025-03-01T00:00:00+00:00) filled in."""
    if not any(placeholder in template for placeholder in PLACEHOLDERS):
        raise ConsentioConfigError(
            f"output_path {template!r} names no period ({' or '.join(PLACEHOLDERS)}): every period would overwrite "
            "the same file. Use e.g. '/data/orders/{day}.jsonl'."
        )
    try:
        return template.format(day=period_start.date().isoformat(), start=period_start.isoformat())
    except (KeyError, IndexError, ValueError) as exc:
        raise ConsentioConfigError(
            f"output_path {template!r} has braces other than {' and '.join(PLACEHOLDERS)} ({exc!r})"
        ) from exc


def partition_files(summary: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(period start, path) of every file an export wrote, from its summary (the summary lists only the first
    LISTED_PARTITIONS)."""
    start, end = parse_instant(summary["window_start"], "window_start"), parse_instant(summary["window_end"], "end")
    for lower, _ in split_periods(start, end, timedelta(seconds=summary["period_seconds"])):
        yield lower.isoformat(), partition_path(summary["path_template"], lower)


class ConsentioExportOrdersByPeriodOperator(ConsentioExportOrdersOperator):
    """Export the orders created in [start, end) to one JSONL file per period (a day by default).

    Takes the options of :class:`ConsentioExportOrdersOperator`; ``output_path`` names the period with ``{day}``
    (``2025-03-01``) or ``{start}`` (the period's ISO start, for periods shorter than a day), e.g.
    ``"/data/consentio/orders/{day}.jsonl"`` (Jinja runs first, so ``{{ var.value... }}`` works as usual).

    * Each file holds exactly its period's orders and is byte-identical to the file the daily export writes for
      that period (same sub-window fetching, de-duplication and exact source bytes); a period without orders gets
      an empty file, as a daily run does. [start, end) must lie on period boundaries (midnight UTC for days).
    * Each file is written atomically, one period at a time: memory holds one sub-window's answer, whatever the
      range. A rerun over the same range rewrites the same files with the same bytes.
    * Returns ``{"path_template", "count", "files", "window_start", "window_end", "period_seconds",
      "partitions": [{"start", "path", "count"}, ...]}``; ``partitions`` lists at most ``LISTED_PARTITIONS`` and
      :func:`partition_files` rebuilds the full list from the summary.
    * Durable (with ``retries`` and Airflow 3.3+, unless ``durable=False``): each completed period is checkpointed in
      the task state store, and a retry after a dead worker resumes after the last one (its files are complete).
    * The loop is the daily export's (:func:`.export_loop.export_spans`): each period is one span of it, written to
      its own file by :class:`PeriodFiles`.

    :param period: the length of one file's period: one day (default) or a divisor of a day.
    """

    def __init__(self, *, period: timedelta = ONE_DAY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period = period

    def target(self, context: Context, start: datetime, end: datetime) -> PeriodFiles:
        periods = list(split_periods(start, end, self.period))
        template = str(self.output_path)
        partition_path(template, start)  # a template without a period placeholder fails before any request
        checkpoints = None
        if self.durable and self.retries:  # only a retry resumes from checkpoints
            job = {"template": template, "start": start, "end": end, "period": self.period, **self.summary_fields()}
            checkpoints = PeriodCheckpoints.for_task(context, job, self.log)
        return PeriodFiles(template, periods, self.period, self.resource, checkpoints)


class PeriodFiles(ExportTarget):
    """One file per period, each written atomically when its span starts and complete when it ends; with
    checkpoints, each completed period is recorded, and a retry starts after the last one."""

    requests_named = "request"

    def __init__(
        self,
        template: str,
        periods: list[tuple[datetime, datetime]],
        period: timedelta,
        resource: Resource,
        checkpoints: PeriodCheckpoints | None,
    ) -> None:
        self.template, self.periods, self.period, self.resource = template, periods, period, resource
        self.checkpoints = checkpoints
        self.counts: list[int] = []
        self.listed: list[dict[str, Any]] = []
        self._file = contextlib.ExitStack()
        self._out: Any = None

    def plan(self, start: datetime, end: datetime, fetch: Fetch) -> tuple[Sequence[tuple[datetime, datetime]], StartAt]:
        # The periods a previous attempt completed are written (its checkpoint says so): listed, counted, skipped.
        self.counts = self.checkpoints.resume() if self.checkpoints else []
        for (lower, _), count in zip(self.periods, self.counts, strict=False):
            self._list(lower, count)
        return self.periods[len(self.counts) :], StartAt(exported=sum(self.counts))

    def describe(self) -> str:
        return f"to {len(self.periods)} files of {self.period} each: {self.template}"

    def written_to(self) -> str:
        return plural(len(self.periods), "file")

    def progress(self, log: Logger, clock: ProgressLog, start: datetime, end: datetime) -> ExportListener:
        return PeriodProgress(log, clock, self.resource, self.template, self.periods)

    def span_started(self, lower: datetime, upper: datetime) -> None:
        from airflow_provider_consentio.operators.base.storage import atomic_writer

        self._file = contextlib.ExitStack()
        self._out = self._file.enter_context(atomic_writer(partition_path(self.template, lower)))

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def span_written(self, event: SpanWritten) -> None:
        self._file.close()
        self._list(event.lower, event.count)
        self.counts.append(event.count)
        if self.checkpoints:
            self.checkpoints.save(self.counts)

    def __exit__(self, *exc_info: Any) -> None:
        self._file.__exit__(*exc_info)  # a period left unfinished leaves no file
        if exc_info[0] is None and self.checkpoints:
            self.checkpoints.forget()

    def summary(
        self, result: ExportResult, fields: Mapping[str, Any], start: datetime, end: datetime
    ) -> dict[str, Any]:
        return {
            "path_template": self.template,
            "count": result.exported,
            "files": len(self.periods),
            **fields,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "period_seconds": int(self.period.total_seconds()),
            "sub_windows": result.sub_windows,
            "partitions": self.listed,
        }

    def outputs(self, result: ExportResult) -> list[LineageDataset]:
        return [storage_dataset(partition["path"], partition["count"]) for partition in self.listed]

    def asset_extra(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in summary.items() if key != "partitions"}

    def _list(self, lower: datetime, count: int) -> None:
        if len(self.listed) < LISTED_PARTITIONS:
            self.listed.append(
                {"start": lower.isoformat(), "path": partition_path(self.template, lower), "count": count}
            )


class PeriodProgress(ExportListener):
    """Logs a long export's progress by period (every few seconds or tenth of the periods)."""

    def __init__(
        self,
        log: Logger,
        clock: ProgressLog,
        resource: Resource,
        template: str,
        periods: Sequence[tuple[datetime, datetime]],
    ) -> None:
        self.log, self.clock, self.resource, self.template = log, clock, resource, template
        self.numbers = {lower: number for number, (lower, _) in enumerate(periods, start=1)}

    def span_written(self, event: SpanWritten) -> None:
        number, periods = self.numbers[event.lower], len(self.numbers)
        if self.clock.due(number / periods):
            self.log.info(
                "Period %d/%d [%s, %s): %s -> %s; %s so far (%.0f %s/s)",
                number,
                periods,
                event.lower.isoformat(),
                event.upper.isoformat(),
                self.resource.counted(event.count),
                partition_path(self.template, event.lower),
                self.resource.counted(event.exported),
                self.clock.rate(event.exported),
                self.resource.nouns,
            )
