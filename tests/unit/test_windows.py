import itertools
from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.base.windows import AdaptiveWindows, parse_instant, resolve_window

MARCH_1 = datetime(2025, 3, 1, tzinfo=UTC)
MARCH_2 = datetime(2025, 3, 2, tzinfo=UTC)


def fixed_windows(start: datetime, end: datetime, size: timedelta) -> AdaptiveWindows:
    """Sub-windows of ``size`` each: with nothing observed, adaptive windows keep their initial size."""
    return AdaptiveWindows(start, end, max_size=size, target_records=1, initial=size)


@pytest.mark.parametrize(
    "value",
    [
        "2025-03-01",
        "2025-03-01T00:00:00Z",
        "2025-03-01T01:00:00+01:00",
        "2025-03-01 00:00:00+00:00",
        date(2025, 3, 1),
        datetime(2025, 3, 1),
        pendulum.datetime(2025, 3, 1),
    ],
)
def test_parse_instant_accepts_the_usual_forms(value):
    assert parse_instant(value, "start") == MARCH_1


@pytest.mark.parametrize("value", ["2025-13-01", "yesterday", "", 20250301, None])
def test_parse_instant_names_the_parameter_and_value(value):
    with pytest.raises(ConsentioConfigError, match=r"start=.* is not an ISO 8601"):
        parse_instant(value, "start")


def test_pendulum_values_become_plain_utc_datetimes():
    value = parse_instant(pendulum.datetime(2025, 3, 1, 1, tz="Europe/Madrid"), "start")
    assert type(value) is datetime and value == MARCH_1 and value.tzinfo is UTC
    assert len(list(fixed_windows(value, value + timedelta(days=1), timedelta(hours=1)))) == 24


def test_window_defaults_to_the_data_interval():
    context = {"data_interval_start": pendulum.instance(MARCH_1), "data_interval_end": pendulum.instance(MARCH_2)}
    assert resolve_window(context) == (MARCH_1, MARCH_2)
    assert resolve_window(context, start="2025-03-01T12:00:00Z") == (MARCH_1 + timedelta(hours=12), MARCH_2)


def test_zero_length_interval_fails_by_default_and_explains():
    context = {"data_interval_start": MARCH_2, "data_interval_end": MARCH_2}
    with pytest.raises(ConsentioConfigError, match="CronDataIntervalTimetable"):
        resolve_window(context, task="export")


def test_zero_length_interval_with_lookback_takes_the_day_before():
    context = {"data_interval_start": MARCH_2, "data_interval_end": MARCH_2}
    assert resolve_window(context, empty_interval="lookback") == (MARCH_1, MARCH_2)


def test_missing_interval_and_reversed_window_are_errors():
    with pytest.raises(ConsentioConfigError, match="no data interval"):
        resolve_window({"data_interval_start": None, "data_interval_end": None})
    with pytest.raises(ConsentioConfigError, match="is after end"):
        resolve_window({}, start=MARCH_2, end=MARCH_1)
    with pytest.raises(ConsentioConfigError, match="empty_interval must be one of"):
        resolve_window({}, start=MARCH_1, end=MARCH_2, empty_interval="ignore")


@given(
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=70)),
    size=st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=3)),
)
def test_sub_windows_cover_the_window_exactly_once(span, size):
    end = MARCH_1 + span
    split = fixed_windows(MARCH_1, end, size)
    windows = list(split)
    assert len(windows) == split.count
    if span:
        assert windows[0][0] == MARCH_1 and windows[-1][1] == end
    for (_, upper), (lower, _) in itertools.pairwise(windows):
        assert upper == lower
    assert all(lower < upper and upper - lower <= size for lower, upper in windows)


@given(
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
    answers=st.lists(st.integers(min_value=0, max_value=50_000), min_size=1, max_size=50),
)
def test_adaptive_windows_cover_the_window_exactly_once_whatever_the_answers(span, answers):
    end = MARCH_1 + span
    # A minute's floor, not the default second's: the property is the same, and a span of dense answers stays at
    # thousands of windows instead of the 864,000 seconds of ten days.
    windows = AdaptiveWindows(
        MARCH_1, end, max_size=timedelta(hours=1), min_size=timedelta(minutes=1), target_records=2000
    )
    seen = []
    for number, window in enumerate(windows):
        seen.append(window)
        windows.observed(answers[number % len(answers)])
        assert window[1] - window[0] <= timedelta(hours=1)
    assert [lower for lower, _ in seen[1:]] == [upper for _, upper in seen[:-1]]
    assert (seen[0][0], seen[-1][1]) == (MARCH_1, end) if span else seen == []


def test_adaptive_windows_grow_when_sparse_and_shrink_when_dense():
    windows = AdaptiveWindows(MARCH_1, MARCH_2, max_size=timedelta(hours=1), target_records=2000)
    assert windows.size == timedelta(minutes=5)
    for _ in range(5):
        windows.observed(10)
    assert windows.size == timedelta(hours=1)
    windows.observed(8000)
    assert windows.size == timedelta(minutes=15)
    windows.observed(1500)
    assert windows.size == timedelta(minutes=15)
