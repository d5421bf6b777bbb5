"""Crash safety: a worker killed with SIGKILL mid-task, then the task rerun: nothing lost, nothing doubled.

The first attempt runs in its own process (`airflow dags test`, as a worker would run it) against a sandbox that
answers slowly, so the kill lands mid-way; the rerun is a normal dag.test() in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_consentio.operators.base.storage import PARTIAL_MARKER
from airflow_provider_consentio.sandbox.faults import FaultPlan

WINDOW = {"start": "2025-02-01T00:00:00Z", "end": "2025-02-21T00:00:00Z"}


def slow(paths: str, delay: float) -> FaultPlan:
    return FaultPlan.parse({"paths": paths, "rules": [{"kind": "slow", "probability": 1.0, "delay": delay}]})


def kill_worker_when(
    dag_id: str, conf: dict, ready: Callable[[], bool], log: Path, timeout: float = 120
) -> subprocess.Popen:
    """Start `airflow dags test` for ``dag_id`` and SIGKILL it (and its children) once ``ready()`` holds."""
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id, "2025-03-11", "--conf", json.dumps(conf)]
    with log.open("wb") as output:
        worker = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if worker.poll() is not None:
                pytest.fail(f"the worker ended (status {worker.returncode}) before the kill point:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the kill point was not reached in {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    return worker


def partials(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if PARTIAL_MARKER in path.name]


def line_ids(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def worker_env(airflow_db, consentio_connection):
    """The subprocess worker inherits the test's Airflow home, bundles and connection (environment variables)."""
    return consentio_connection


def kill_export_mid_way(sandbox, output, tmp_path) -> None:
    """Slow the order answers down, start the hourly export and SIGKILL it once it has written a while."""
    sandbox.sandbox.faults = slow(r"/order$", 0.05)
    kill_worker_when(
        "t_export_hourly",
        {"output_path": str(output), **WINDOW, "statuses": None},
        ready=lambda: bool(partials(tmp_path)) and sandbox.state.stats.faults["slow"] > 20,
        log=tmp_path / "worker.log",
    )


def test_export_killed_mid_way_leaves_no_file_and_the_rerun_is_exact(sandbox, run_dag, worker_env, tmp_path):
    output = tmp_path / "orders.jsonl"
    truth = [o.data["id"] for o in sandbox.state.window(*_window(), "sale", None)]
    kill_export_mid_way(sandbox, output, tmp_path)
    assert not output.exists(), "a killed export must leave nothing at the final path"
    assert partials(tmp_path), "the killed attempt was writing (beside the final path, under a hidden name)"

    sandbox.sandbox.faults = FaultPlan()
    assert run_dag("t_export_hourly", output_path=str(output), **WINDOW).succeeded
    assert line_ids(output) == truth
    assert partials(tmp_path) == [], "the rerun cleans up what the killed attempt left"


def test_rerun_killed_mid_way_keeps_the_previous_complete_file(sandbox, run_dag, worker_env, tmp_path):
    output = tmp_path / "orders.jsonl"
    assert run_dag("t_export_hourly", output_path=str(output), **WINDOW).succeeded
    first = output.read_bytes()
    kill_export_mid_way(sandbox, output, tmp_path)
    assert output.read_bytes() == first


def test_upsert_killed_mid_way_then_rerun_holds_each_need_once(sandbox, run_dag, worker_env, tmp_path):
    needs = [
        {
            "code": f"CRASH-{number:04d}",
            "reference_code": f"SKU-{number % 37}",
            "start_date": "2025-03-12",
            "end_date": "2025-03-14",
            "quantity": f"{number}.125",
            "quantity_unit": "box",
            "external_status": "planned",
        }
        for number in range(300)
    ]
    sandbox.sandbox.faults = slow(r"/purchase-needs$", 0.1)

    kill_worker_when(
        "t_upsert_needs_small_batches",
        {"needs": needs, "input_path": None, "sql": None},
        ready=lambda: 20 <= len(sandbox.state.needs) < 200,
        log=tmp_path / "worker.log",
    )
    stored_before_rerun = len(sandbox.state.needs)
    assert 0 < stored_before_rerun < len(needs)

    sandbox.sandbox.faults = FaultPlan()
    result = run_dag("t_upsert_needs_small_batches", needs=needs)
    assert result.succeeded
    summary = result.xcoms["upsert"]
    assert (summary["created"], summary["updated"]) == (len(needs) - stored_before_rerun, stored_before_rerun)
    stored = sandbox.state.needs
    assert sorted(stored) == [need["code"] for need in needs]
    assert len({need["id"] for need in stored.values()}) == len(needs)
    assert all(str(stored[need["code"]]["quantity"]).endswith(need["quantity"]) for need in needs)


def test_worker_killed_between_edited_and_seen_redelivers_every_edit(sandbox, run_dag, worker_env, tmp_path):
    state = sandbox.state
    accepted = [o for o in state.index["sale"][1] if o.data["status"] == "accepted"]
    edited = [state.edit(o.data["hash_id"]).data["hash_id"] for o in accepted[:300:30]]
    since = "2026-01-01T00:00:00Z"  # only the edits made here (the seeded ones are older)
    conf = {"output_path": str(tmp_path / "edited.jsonl"), "since": since, "fail_apply": False}
    sandbox.sandbox.faults = slow(r"/order/seen$", 30)

    kill_worker_when("t_edited_then_seen", conf, ready=lambda: state.stats.faults["slow"] > 0, log=tmp_path / "w.log")
    assert (tmp_path / "edited.jsonl").exists(), "the edited orders were fetched before the kill"
    assert all(state.orders[hash_id].pending_edit for hash_id in edited), "no edit is lost by the crash"

    sandbox.sandbox.faults = FaultPlan()
    result = run_dag("t_edited_then_seen", **conf)
    assert result.succeeded
    assert sorted(order["hash_id"] for order in result.xcoms["edited"]["orders"]) == sorted(edited)
    assert not any(state.orders[hash_id].pending_edit for hash_id in edited)


def _window():
    from airflow_provider_consentio.operators.base.windows import parse_instant

    return parse_instant(WINDOW["start"], "start"), parse_instant(WINDOW["end"], "end")
