"""Export a long range of orders in one task run, one file per day (or per hour, ...), for backfills.

A year of daily runs costs Airflow's start-up of every task of every day; the export itself moves tens of
thousands of orders a second. :class:`ConsentioExportOrdersByPeriodOperator` exports the whole range in one run and
writes each period to its own file, byte for byte the file the daily export writes for that period, so a backfill
and the daily runs share files, and whatever reads the daily files reads these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators._common import ProgressLog, plural
from airflow_provider_consentio.operators._window_export import write_sub_windows
from airflow_provider_consentio.operators.checkpoints import PeriodCheckpoints
from airflow_provider_consentio.operators.lineage import storage_dataset
from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.operators.windows import AdaptiveWindows, parse_instant, resolve_window

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_consentio.operators._window_export import Fetch

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

    :param period: the length of one file's period: one day (default) or a divisor of a day.
    """

    def __init__(self, *, period: timedelta = ONE_DAY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.period = period

    def execute(self, context: Context) -> dict[str, Any]:
        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        periods = list(split_periods(start, end, self.period))
        template = str(self.output_path)
        partition_path(template, start)  # a template without a period placeholder fails before any request
        fetch = self.fetcher(self.hook.get_conn())
        self.log.info(
            "Exporting %s in [%s, %s) to %d files of %s each: %s",
            self.selection(),
            start.isoformat(),
            end.isoformat(),
            len(periods),
            self.period,
            template,
        )
        listed: list[dict[str, Any]] = []
        total, requests, sub_window = 0, 0, min(timedelta(minutes=5), self.window_size)
        progress = ProgressLog()
        checkpoints = self._period_checkpoints(context, template, start, end)
        counts: list[int] = checkpoints.resume() if checkpoints else []
        for number, (lower, upper) in enumerate(periods, start=1):
            path = partition_path(template, lower)
            if number <= len(counts):  # written by a previous attempt, whose checkpoint says so
                total += counts[number - 1]
                if len(listed) < LISTED_PARTITIONS:
                    listed.append({"start": lower.isoformat(), "path": path, "count": counts[number - 1]})
                continue
            windows = AdaptiveWindows(
                lower, upper, max_size=self.window_size, target_records=self.max_orders_per_request, initial=sub_window
            )
            count = self._export_period(fetch, windows, path)
            sub_window = windows.size  # the next period starts at the size this one settled on
            total += count
            requests += windows.count
            if len(listed) < LISTED_PARTITIONS:
                listed.append({"start": lower.isoformat(), "path": path, "count": count})
            if checkpoints:
                counts.append(count)
                checkpoints.save(counts)
            if progress.due(number / len(periods)):
                self.log.info(
                    "Period %d/%d [%s, %s): %s -> %s; %s so far (%.0f orders/s)",
                    number,
                    len(periods),
                    lower.isoformat(),
                    upper.isoformat(),
                    plural(count, "order"),
                    path,
                    plural(total, "order"),
                    progress.rate(total),
                )
        summary = {
            "path_template": template,
            "count": total,
            "files": len(periods),
            "kind": self.kind,
            "statuses": self.status_list,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "period_seconds": int(self.period.total_seconds()),
            "sub_windows": requests,
            "partitions": listed,
        }
        self.log.info(
            "Exported %s to %s in %.1fs (%s)",
            plural(total, "order"),
            plural(len(periods), "file"),
            progress.elapsed(),
            plural(requests, "request"),
        )
        if checkpoints:
            checkpoints.forget()
        self.record_lineage(
            [self.api_dataset(self.api_resource, total)],
            [storage_dataset(partition["path"], partition["count"]) for partition in listed],
        )
        self.record_asset_event(context, {key: value for key, value in summary.items() if key != "partitions"})
        return summary

    def _period_checkpoints(
        self, context: Context, template: str, start: datetime, end: datetime
    ) -> PeriodCheckpoints | None:
        if not self.durable or not self.retries:  # only a retry resumes from checkpoints
            return None
        job = {"template": template, "start": start, "end": end, "period": self.period, **self.summary_fields()}
        return PeriodCheckpoints.for_task(context, job, self.log)

    def _export_period(self, fetch: Fetch, windows: AdaptiveWindows, path: str) -> int:
        """Write one period's orders to ``path`` exactly as the daily export does; returns how many."""
        from airflow_provider_consentio.operators.storage import atomic_writer

        with atomic_writer(path) as out:
            # The running count after each sub-window; the daily export logs them, here one line per period will do.
            running = write_sub_windows(fetch, windows, out)
            return max((written for _, _, written in running), default=0)
