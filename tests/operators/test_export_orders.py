"""ConsentioExportOrdersOperator in a real Airflow (dag.test) against the sandbox."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_consentio.models.jsonwire import loads, split_array


def ground_truth_lines(sandbox, start, end, status=None):
    """Each order of the window exactly as the API serves it (the sandbox answers on one line)."""
    params = {"from": start, "to": end, "kind": "sale", **({"status": status} if status else {})}
    body = httpx.get(f"{sandbox.base_url}/_sandbox/orders", params=params, timeout=60).content
    return [bytes(element) for element in split_array(body)[1]]


def file_lines(path):
    return path.read_bytes().splitlines()


def test_a_month_exported_equals_the_ground_truth_byte_for_byte(run_dag, sandbox, tmp_path):
    out = tmp_path / "march.jsonl"
    result = run_dag(
        "t_export_six_hourly", output_path=str(out), start="2025-03-01T00:00:00Z", end="2025-04-01T00:00:00Z"
    )
    assert result.succeeded, result.output
    truth = ground_truth_lines(sandbox, "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z")
    exported = file_lines(out)
    assert len(truth) > 1000
    assert [loads(line)["id"] for line in exported] == [loads(line)["id"] for line in truth]
    assert exported == truth  # every field, every digit, in the API's own formatting
    weights = [loads(line)["weight"] for line in exported]
    assert any(len(str(weight).replace(".", "")) > 17 for weight in weights)  # more digits than a float holds
    summary = result.xcoms["export"]
    assert summary.pop("sub_windows") >= 31 * 4  # never longer than six hours
    assert summary == {
        "path": str(out),
        "count": len(truth),
        "kind": "sale",
        "statuses": [],
        "window_start": "2025-03-01T00:00:00+00:00",
        "window_end": "2025-04-01T00:00:00+00:00",
    }


def test_two_runs_of_one_interval_write_identical_files(run_dag, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (first, second):
        assert run_dag("t_export_hourly", output_path=str(out)).succeeded
    assert first.read_bytes() == second.read_bytes() and first.stat().st_size > 0


def test_window_defaults_to_the_runs_data_interval(run_dag, sandbox, tmp_path):
    out = tmp_path / "day.jsonl"
    result = run_dag("t_export_hourly", logical_date="2025-03-11", output_path=str(out))
    assert result.xcoms["export"]["window_start"] == "2025-03-10T00:00:00+00:00"
    assert result.xcoms["export"]["sub_windows"] >= 24
    assert file_lines(out) == ground_truth_lines(sandbox, "2025-03-10T00:00:00Z", "2025-03-11T00:00:00Z")


def test_an_order_created_exactly_at_a_window_edge_is_exported_once(run_dag, sandbox, tmp_path):
    edges = ["2025-03-10T00:00:00Z", "2025-03-10T06:00:00Z", "2025-03-11T00:00:00Z"]
    added = [
        httpx.post(f"{sandbox.base_url}/_sandbox/orders", json={"created_at": at, "status": "accepted"}).json()["id"]
        for at in edges
    ]
    day_10, day_11 = tmp_path / "10.jsonl", tmp_path / "11.jsonl"
    assert run_dag("t_export_six_hourly", logical_date="2025-03-11", output_path=str(day_10)).succeeded
    assert run_dag("t_export_six_hourly", logical_date="2025-03-12", output_path=str(day_11)).succeeded
    ids_10 = [loads(line)["id"] for line in file_lines(day_10)]
    ids_11 = [loads(line)["id"] for line in file_lines(day_11)]
    assert [ids_10.count(added[0]), ids_10.count(added[1]), ids_10.count(added[2])] == [1, 1, 0]
    assert ids_11.count(added[2]) == 1
    assert not set(ids_10) & set(ids_11)


def test_status_filter_fetches_each_status(run_dag, sandbox, tmp_path):
    out = tmp_path / "filtered.jsonl"
    window = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-04T00:00:00Z"}
    result = run_dag("t_export_six_hourly", output_path=str(out), statuses=["canceled", "pending"], **window)
    assert result.succeeded, result.output
    expected = {
        loads(line)["id"]
        for status in ("canceled", "pending")
        for line in ground_truth_lines(sandbox, window["start"], window["end"], status)
    }
    exported = [loads(line) for line in file_lines(out)]
    assert {order["id"] for order in exported} == expected and len(exported) == len(expected)
    assert {order["status"] for order in exported} == {"canceled", "pending"}


def test_zero_length_interval_fails_with_an_explanation_and_writes_nothing(run_dag, tmp_path):
    out = tmp_path / "never.jsonl"
    result = run_dag("t_export_trigger_timetable", output_path=str(out))
    assert result.state == "failed"
    assert "is empty" in result.output and "CronDataIntervalTimetable" in result.output
    assert not out.exists()


def test_zero_length_interval_with_lookback_exports_the_day_before(run_dag, sandbox, tmp_path):
    out = tmp_path / "lookback.jsonl"
    result = run_dag("t_export_trigger_timetable_lookback", logical_date="2025-03-11", output_path=str(out))
    assert result.succeeded, result.output
    assert result.xcoms["export"]["window_start"] == "2025-03-10T00:00:00+00:00"
    assert file_lines(out) == ground_truth_lines(sandbox, "2025-03-10T00:00:00Z", "2025-03-11T00:00:00Z")


@pytest.mark.parametrize("bad", [{"start": "2025-13-01"}, {"start": "2025-03-05", "end": "2025-03-01"}])
def test_bad_windows_are_refused_before_anything_is_written(run_dag, tmp_path, bad):
    out = tmp_path / "bad.jsonl"
    result = run_dag("t_export_hourly", output_path=str(out), **{"start": None, "end": None, **bad})
    assert result.state == "failed"
    assert ("is not an ISO 8601" in result.output) or ("is after end" in result.output)
    assert not out.exists()


def test_an_export_that_fails_midway_leaves_no_file_and_the_retry_completes(run_dag, sandbox, tmp_path):
    out = tmp_path / "crash.jsonl"
    window = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-03T00:00:00Z"}
    # The 20th window answers garbage (not retryable): the task fails after writing 19 sub-windows.
    httpx.put(
        f"{sandbox.base_url}/_sandbox/faults", json={"rules": [{"kind": "garbage", "every": 20}], "paths": "/order$"}
    ).raise_for_status()
    failed = run_dag("t_export_hourly", output_path=str(out), **window)
    assert failed.state == "failed" and "not a JSON array" in failed.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no partial file left beside it either
    httpx.delete(f"{sandbox.base_url}/_sandbox/faults").raise_for_status()
    assert run_dag("t_export_hourly", output_path=str(out), **window).succeeded
    assert file_lines(out) == ground_truth_lines(sandbox, window["start"], window["end"])


def test_the_export_records_an_asset_event_with_its_summary(run_dag, sandbox, tmp_path):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    out = tmp_path / "asset.jsonl"
    assert run_dag("t_export_hourly", output_path=str(out)).succeeded
    with create_session() as session:
        event = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == "consentio://consentio_default/orders/sale")
            .order_by(AssetEvent.id.desc())
            .first()
        )
        assert event is not None and event.extra["path"] == str(out) and event.extra["count"] > 0
        assert event.extra["workspace_id"] == sandbox.workspace_id
        asset = session.query(AssetModel).filter(AssetModel.uri == "consentio://consentio_default/orders/sale").one()
        assert (asset.group, asset.extra) == (
            "consentio",
            {"connection": "consentio_default", "resource": "orders/sale"},
        )


def test_an_export_that_finds_no_orders_says_so_with_the_window_and_workspace(run_dag, sandbox, tmp_path):
    out = tmp_path / "empty.jsonl"
    result = run_dag("t_export_hourly", output_path=str(out), start="2024-06-01T00:00:00Z", end="2024-06-02T00:00:00Z")
    assert result.succeeded, result.output
    assert file_lines(out) == []
    [warning] = [line for line in result.output.splitlines() if "No sale orders" in line]
    assert "warn" in warning.lower()
    assert (
        f"in workspace {sandbox.workspace_id} created in [2024-06-01T00:00:00+00:00, 2024-06-02T00:00:00+00:00)"
        in warning
    )
