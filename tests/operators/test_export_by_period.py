"""ConsentioExportOrdersByPeriodOperator in a real Airflow (dag.test) against the sandbox: one run, one file a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from airflow_provider_consentio.operators.partitioned_export import LISTED_PARTITIONS, partition_files

FIRST_DAY = date(2025, 2, 1)
DAYS = 30


def test_thirty_days_in_one_run_equal_the_thirty_daily_exports_byte_for_byte(run_dag, tmp_path):
    by_day, daily = tmp_path / "by-day", tmp_path / "daily"
    last_day = FIRST_DAY + timedelta(days=DAYS - 1)
    result = run_dag(
        "t_export_by_day",
        output_path=str(by_day / "orders" / "{day}.jsonl"),
        start=FIRST_DAY.isoformat(),
        end=(last_day + timedelta(days=1)).isoformat(),
    )
    assert result.succeeded, result.output
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        run = run_dag(
            "t_export_hourly",
            logical_date=(day + timedelta(days=1)).isoformat(),
            output_path=str(daily / f"{day}.jsonl"),
        )
        assert run.succeeded, run.output

    written = sorted(path.name for path in (by_day / "orders").iterdir())
    assert written == [f"{FIRST_DAY + timedelta(days=offset)}.jsonl" for offset in range(DAYS)]
    for name in written:
        assert (by_day / "orders" / name).read_bytes() == (daily / name).read_bytes(), name
    counts = [len((daily / name).read_bytes().splitlines()) for name in written]
    assert min(counts) > 0

    summary = result.xcoms["export"]
    assert summary["count"] == sum(counts)
    assert summary["files"] == DAYS and summary["period_seconds"] == 86400
    assert summary["partitions"][0] == {
        "start": "2025-02-01T00:00:00+00:00",
        "path": str(by_day / "orders" / "2025-02-01.jsonl"),
        "count": counts[0],
    }
    assert [entry["count"] for entry in summary["partitions"]] == counts
    assert [path for _, path in partition_files(summary)] == [entry["path"] for entry in summary["partitions"]]


def test_a_rerun_rewrites_the_same_files_with_the_same_bytes(run_dag, tmp_path):
    conf = {"output_path": str(tmp_path / "{day}.jsonl"), "start": "2025-03-01", "end": "2025-03-04"}
    assert run_dag("t_export_by_day", **conf).succeeded
    first = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    (tmp_path / "2025-03-02.jsonl").write_bytes(b"damaged\n")
    (tmp_path / ".2025-03-03.jsonl.partial-0123456789ab").write_bytes(b"left by a killed attempt")

    assert run_dag("t_export_by_day", **conf).succeeded

    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == first
    assert len(first) == 3 and all(first.values())


def test_the_summary_stays_bounded_and_still_names_every_file(run_dag, tmp_path):
    hours = LISTED_PARTITIONS + 80
    end = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=hours)
    result = run_dag(
        "t_export_by_hour", output_path=str(tmp_path / "{start}.jsonl"), start="2025-03-01", end=end.isoformat()
    )
    assert result.succeeded, result.output
    summary = result.xcoms["export"]
    assert summary["files"] == hours and len(summary["partitions"]) == LISTED_PARTITIONS
    paths = [path for _, path in partition_files(summary)]
    assert len(paths) == hours and sorted(paths) == sorted(str(path) for path in tmp_path.iterdir())
    assert sum(len(Path(path).read_bytes().splitlines()) for path in paths) == summary["count"]


def test_a_path_without_a_period_or_a_window_off_the_day_boundary_fails_before_any_request(run_dag, tmp_path):
    one_file = run_dag("t_export_by_day", output_path=str(tmp_path / "all.jsonl"), start="2025-03-01", end="2025-03-03")
    assert not one_file.succeeded
    assert "names no period ({day} or {start}): every period would overwrite the same file" in one_file.output

    off_boundary = run_dag(
        "t_export_by_day", output_path=str(tmp_path / "{day}.jsonl"), start="2025-03-01T06:00:00Z", end="2025-03-03"
    )
    assert not off_boundary.succeeded
    assert "window start 2025-03-01T06:00:00+00:00 is not on a period boundary" in off_boundary.output
    assert not list(tmp_path.iterdir())
