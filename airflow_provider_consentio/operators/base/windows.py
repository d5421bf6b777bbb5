"""Time windows: which [start, end) a run exports, and how a long window is split into sub-windows.

Airflow 3 gives zero-length data intervals to runs of a CronTriggerTimetable and to manual runs, and none at all
to runs triggered without a logical date. An export over such an "interval" would silently export nothing, so
:func:`resolve_window` makes the choice explicit:

* ``empty_interval="fail"`` (default): raise, explaining the cause and the fixes.
* ``empty_interval="lookback"``: export ``[end - lookback, end)``, e.g. the day before a midnight trigger.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pendulum

from airflow_provider_consentio.errors import ConsentioConfigError

EMPTY_INTERVAL_POLICIES = ("fail", "lookback")


def parse_instant(value: Any, name: str) -> datetime:
    """A plain UTC datetime from a datetime, a date (midnight UTC) or an ISO 8601 string.

    Naive values are taken as UTC, as Airflow does. Pendulum values come back as stdlib datetimes, so window
    arithmetic behaves the same whatever Airflow handed over.
    """
    if isinstance(value, datetime):
        return _plain_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value.strip():
        try:
            # strict: the lenient fallback reads "10/03/2025" as October 3rd, silently exporting the wrong month.
            parsed = pendulum.parse(value.strip(), tz="UTC", strict=True)
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            parsed = None
        if isinstance(parsed, datetime):
            return _plain_utc(parsed)
        if isinstance(parsed, date):
            return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    raise ConsentioConfigError(f"{name}={value!r} is not an ISO 8601 date or date-time (e.g. 2025-03-01T00:00:00Z)")


def _plain_utc(value: datetime) -> datetime:
    utc = value.astimezone(UTC) if value.tzinfo is not None else value
    return datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC)


def resolve_window(
    context: Mapping[str, Any],
    start: Any = None,
    end: Any = None,
    *,
    empty_interval: str = "fail",
    lookback: timedelta = timedelta(days=1),
    task: str = "this task",
) -> tuple[datetime, datetime]:
    """The [start, end) a run works on: explicit ``start``/``end``, else the run's data interval."""
    if empty_interval not in EMPTY_INTERVAL_POLICIES:
        raise ConsentioConfigError(f"empty_interval must be one of {EMPTY_INTERVAL_POLICIES}, got {empty_interval!r}")
    if lookback <= timedelta(0):
        raise ConsentioConfigError(f"lookback must be positive, got {lookback}")
    if start is None:
        start = context.get("data_interval_start")
    if end is None:
        end = context.get("data_interval_end")
    if start is None or end is None:
        raise ConsentioConfigError(
            f"{task}: this run has no data interval (it was triggered without a logical date), so there is no "
            "window to work on. Pass start and end explicitly, or trigger the run with a logical date."
        )
    window_start, window_end = parse_instant(start, "start"), parse_instant(end, "end")
    if window_end < window_start:
        raise ConsentioConfigError(f"{task}: start {window_start.isoformat()} is after end {window_end.isoformat()}")
    if window_start == window_end:
        if empty_interval == "fail":
            raise ConsentioConfigError(
                f"{task}: the window [{window_start.isoformat()}, {window_end.isoformat()}) is empty. Airflow 3 gives "
                "zero-length data intervals to CronTriggerTimetable schedules and manual runs. Schedule the DAG "
                "with CronDataIntervalTimetable, pass start/end, or set empty_interval='lookback' to use "
                f"[end - lookback, end) (lookback is {lookback})."
            )
        window_start = window_end - lookback
    return window_start, window_end


class AdaptiveWindows:
    """Consecutive sub-windows covering [start, end) exactly once, sized to the data they hold.

    The first spans ``initial`` (or ``max_size`` if smaller). After each one, :meth:`observed` is told how many
    records it held: the next doubles while answers hold under half of ``target_records`` and shrinks in
    proportion when one held more, within [``min_size``, ``max_size``]. So each response, and the memory it
    takes, stays near ``target_records`` whether a day holds forty orders or two hundred thousand.
    """

    def __init__(
        self,
        start: datetime,
        end: datetime,
        *,
        max_size: timedelta,
        target_records: int,
        min_size: timedelta = timedelta(seconds=1),
        initial: timedelta = timedelta(minutes=5),
    ):
        if max_size <= timedelta(0) or target_records < 1:
            raise ConsentioConfigError(
                f"window_size and max_orders_per_request must be positive ({max_size}, {target_records})"
            )
        self.start, self.end = start, end
        self.max_size, self.min_size, self.target = max_size, min(min_size, max_size), target_records
        self.size = min(initial, max_size)
        self.count = 0

    def __iter__(self) -> Iterator[tuple[datetime, datetime]]:
        cursor = self.start
        while cursor < self.end:
            upper = min(cursor + self.size, self.end)
            self.count += 1
            yield cursor, upper
            cursor = upper

    def observed(self, records: int) -> None:
        if records > self.target:
            self.size = max(self.min_size, self.size * (self.target / records))
        elif records * 2 < self.target:
            self.size = min(self.max_size, self.size * 2)
