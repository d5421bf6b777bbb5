"""Event-driven runs under a real triggerer and scheduler: ConsentioOrdersEventTrigger in an AssetWatcher.

Orders are added through the sandbox's admin API in five rounds. Each round must start exactly one DAG run within two
poll intervals, the runs together must export every added order exactly once, and no run may start while nothing
changes. The trigger's watermark lives in the asset state store (Airflow 3.3); before 3.3 it is in memory, which
this test does not need, but the store is what makes restarts safe, so the test requires 3.3.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_provider_consentio.demo.stack import AirflowEnv, AirflowServices, SandboxProcess, wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "consentio_events_e2e"
POLL_INTERVAL = 10.0
ROUNDS = (3, 1, 4, 2, 5)  # orders added per round


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from airflow_provider_consentio.version_compat import AIRFLOW_V_3_3_PLUS

    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip("the trigger keeps its watermark in the asset state store, new in Airflow 3.3")
    workdir = tmp_path_factory.mktemp("event-driven")
    with SandboxProcess(workdir / "sandbox") as sandbox:
        env = AirflowEnv(
            home=workdir / "airflow",
            dags_folder=Path(__file__).parent / "event_dags",
            connections={"consentio_default": sandbox.connection_json()},
            variables={"consentio_data_dir": str(workdir / "data")},
            settings={"CONSENTIO_E2E_POLL_INTERVAL": str(POLL_INTERVAL)},
        )
        env.prepare()
        with AirflowServices(env) as services:
            yield sandbox, services, workdir


def order_polls(sandbox) -> int:
    requests = sandbox.admin("GET", "/_sandbox/stats")["requests"]
    return sum(count for key, count in requests.items() if key.startswith("GET /{ws}/order "))


def runs(services) -> list[dict]:
    answer = services.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"limit": 100, "order_by": "run_after"})
    return answer["dag_runs"]


def test_each_round_of_new_orders_starts_one_run_that_exports_exactly_them(stack, capfd):
    sandbox, services, workdir = stack
    wait_until(
        lambda: any(dag["dag_id"] == DAG_ID for dag in services.api("GET", "/api/v2/dags")["dags"]),
        180,
        "the dag-processor to parse the DAG",
    )
    services.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    polls = order_polls(sandbox)
    wait_until(lambda: order_polls(sandbox) >= polls + 2, 180, "the triggerer to poll twice")  # its watermark is set
    assert runs(services) == []  # no run while nothing changed

    added: list[int] = []
    delays = []
    for number, count in enumerate(ROUNDS, start=1):
        before = len(runs(services))
        now = datetime.now(UTC).isoformat()
        added_at = time.time()
        # All of a round's orders at once: a poll between two of them would announce the round in two events.
        body = {"created_at": now, "status": "accepted", "count": count}
        added.extend(order["id"] for order in sandbox.admin("POST", "/_sandbox/orders", json=body))
        new_run = wait_until(lambda seen=before: runs(services)[seen:], 4 * POLL_INTERVAL, f"round {number}'s run", 0.5)
        queued = datetime.fromisoformat(new_run[0]["queued_at"]).timestamp()
        delays.append(round(queued - added_at, 1))
        wait_until(
            lambda: all(run["state"] in ("success", "failed") for run in runs(services)), 300, "the run to finish"
        )
    # Nothing changes now: three more polls and no new run.
    polls = order_polls(sandbox)
    wait_until(lambda: order_polls(sandbox) >= polls + 3, 120, "three more polls")
    final = runs(services)

    with capfd.disabled():  # the figures, in make test's output
        print(f"\nevent-driven: {len(ROUNDS)} rounds, runs started {delays} s after the orders were added "
              f"(poll interval {POLL_INTERVAL:.0f} s)")  # fmt: skip
    assert [run["state"] for run in final] == ["success"] * len(ROUNDS)
    assert all(delay <= 2 * POLL_INTERVAL for delay in delays), delays
    exported = [
        json.loads(line)["id"]
        for path in sorted((workdir / "data" / "new-orders").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert len(list((workdir / "data" / "new-orders").glob("*.jsonl"))) == len(ROUNDS)
    assert sorted(exported) == sorted(added)  # every order exactly once across all runs
