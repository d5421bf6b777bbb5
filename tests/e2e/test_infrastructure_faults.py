"""Nothing lost when the infrastructure fails: the provider's neighbours fail in the middle of backfills.

On the distributed stack (``harness.production``: Postgres, Redis, S3, two Celery workers, a scheduler, a
dag-processor, a triggerer and an api-server), with the ERP on a Postgres server of its own and a fault proxy between
Airflow and the S3 server that answers a seeded share of requests with 503 SlowDown, 500, a reset connection (before
or after the write took effect) or a slow answer, all along. Each scenario backfills its own days of the seller and
buyer DAGs side by side and, once the backfill is in its middle, fails one piece of infrastructure:

* ``metadata_postgres``: the metadata database restarts (a maintenance restart: every client is disconnected);
* ``erp_postgres``: the ERP's Postgres goes down while the load into it runs, and stays down until a run has
  failed for good (its tasks' retries spent): the owner's rerun must repair it;
* ``scheduler``: the scheduler is SIGKILLed, then started again;
* ``triggerer``: the triggerer is SIGKILLed while a deferrable sensor and an event trigger wait in it, orders arrive
  while it is down, then it is started again;
* ``redis``: the Celery broker restarts (in memory only: the messages waiting in it are gone).

A service that dies of a fault is started again, as its supervisor (systemd, Kubernetes) would; a task that fails
for good is cleared and rerun, as its owner would; the scenario's line says both. After each scenario, its days
are checked against the sandbox's ground truth (``harness.ground_truth``): every day's object exact and never
partial, every order once in the ERP with its latest edit, every reference pushed, every edit seen, purchase needs
exact: 0 lost, 0 duplicated.

Scale: ``CONSENTIO_FAULTS_ORDERS_PER_DAY`` orders a day and ``CONSENTIO_FAULTS_DAYS`` days per scenario; CI runs a
small scale, ``make faults`` 10,000 orders a day over 7-day backfills.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_consentio.demo.stack import wait_until
from harness.ground_truth import BucketWatcher, World, accepted_orders
from harness.production import FAST_RECOVERY, Backfill, ProductionAirflow, Supervisor
from harness.services import servers_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.distributed]

REPO = Path(__file__).resolve().parents[2]
E2E = Path(__file__).parent
SELLER, BUYER = "consentio_seller_daily", "consentio_buyer_daily"
SENSOR, EVENTS = "consentio_sensor_defers", "consentio_events_e2e"
BUCKET = "consentio-data"
DATA_DIR = f"s3://aws_default@{BUCKET}/pipelines"
ORDERS_PER_DAY = int(os.environ.get("CONSENTIO_FAULTS_ORDERS_PER_DAY", "150"))
DAYS = int(os.environ.get("CONSENTIO_FAULTS_DAYS", "3"))
SCENARIOS = ("metadata_postgres", "erp_postgres", "scheduler", "triggerer", "redis")
FIRST_DAY = date(2025, 3, 1)
# One purchase need a day per this many orders, and one edit per this many accepted orders.
ORDERS_PER_DEMAND_LINE = 10
EDIT_EVERY = 25
# The proxy's share of faulty S3 answers, all along: every kind, on every operation (reads, puts, multipart
# uploads, copies, deletes, listings).
S3_FAULTS = {
    "seed": 24,
    "rules": [
        {"kind": "slowdown", "probability": 0.03},
        {"kind": "internal", "probability": 0.02},
        {"kind": "reset", "probability": 0.02},
        {"kind": "reset_after", "probability": 0.01},
        {"kind": "slow", "probability": 0.02, "delay": 2.0},
    ],
}
# How long each piece of infrastructure stays down.
DOWN_FOR = 10.0
# The event DAG's trigger polls this often (tests/e2e/event_dags).
EVENT_POLL_INTERVAL = 5.0
# A backfill's time limit: generous, as the scale and the machine's load vary; a hang still fails the test.
BACKFILL_TIMEOUT = 900 + DAYS * ORDERS_PER_DAY * 0.02


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from airflow_provider_consentio.version_compat import AIRFLOW_V_3_3_PLUS

    servers_or_skip("the infrastructure faults test")
    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip("the event trigger keeps its watermark in the asset state store, new in Airflow 3.3")
    sandbox_days = DAYS * len(SCENARIOS)
    production = ProductionAirflow(
        tmp_path_factory.mktemp("faults"),
        bundles={"examples": REPO / "dags", "distributed": E2E / "distributed_dags", "events": E2E / "event_dags"},
        bucket=BUCKET,
        variables={"consentio_data_dir": DATA_DIR},
        settings={**FAST_RECOVERY, "CONSENTIO_E2E_POLL_INTERVAL": str(EVENT_POLL_INTERVAL)},
        s3_faults=True,
        sandbox_args=("--orders-per-day", str(ORDERS_PER_DAY), "--start", str(FIRST_DAY), "--days", str(sandbox_days)),
        # The sandbox generates its orders before it listens: about 10 s per 100,000.
        sandbox_start_timeout=120 + sandbox_days * ORDERS_PER_DAY / 2000,
    )
    with production:
        production.wait_for_dags({SELLER, BUYER, SENSOR, EVENTS})
        assert production.s3_proxy is not None
        production.s3_proxy.set_faults(S3_FAULTS["seed"], S3_FAULTS["rules"])
        yield production


@pytest.fixture(scope="module")
def supervisor(stack):
    """Starts again whatever Airflow process a fault ends, as systemd or Kubernetes would."""
    supervisor = Supervisor(stack)
    supervisor.start()
    yield supervisor
    supervisor.stop()


class Scenario:
    """One fault in the middle of a backfill of the seller and buyer DAGs over the scenario's own days."""

    def __init__(self, stack: ProductionAirflow, supervisor: Supervisor, name: str):
        self.stack, self.supervisor, self.name = stack, supervisor, name
        self.first = FIRST_DAY + timedelta(days=DAYS * SCENARIOS.index(name))
        self.reruns: list[str] = []
        self.backfills: list[Backfill] = []
        self.figures = ""  # the scenario's own, before the ground truth's

    def start(self) -> None:
        self.started = time.monotonic()
        self.restarts_before = len(self.supervisor.restarts)
        assert self.stack.s3_proxy is not None
        self.stack.s3_proxy.reset_stats()
        self.stack.sandbox.admin("POST", "/_sandbox/stats/reset")
        self._edit_some_orders()
        lines_per_day = max(1, ORDERS_PER_DAY // ORDERS_PER_DEMAND_LINE)
        self.world = World.before_backfill(self.stack, self.first, DAYS, lines_per_day)
        self.watcher = BucketWatcher(self.stack.s3.client(), BUCKET)
        self.watcher.start()
        self.backfills = [self.stack.backfill(dag_id, self.first, DAYS) for dag_id in (SELLER, BUYER)]

    def wait_for_the_middle(self) -> None:
        """Until the seller's backfill has tasks done and tasks running: the fault lands on work in flight."""
        seller = self.backfills[0]

        def in_the_middle() -> bool:
            states = Counter(ti["state"] for ti in self.stack.task_instances(SELLER, self.stack.backfill_runs(seller)))
            return states["success"] > 0 and states["running"] > 0

        wait_until(in_the_middle, BACKFILL_TIMEOUT, f"the middle of the {self.name} scenario's backfill", interval=1)

    def finish(self, capfd: Any) -> None:
        backfills = self.backfills
        runs = {backfill.dag_id: self.stack.wait_for_backfill(backfill, BACKFILL_TIMEOUT) for backfill in backfills}
        for dag_id, dag_runs in runs.items():
            failed = [run for run in dag_runs if run["state"] != "success"]
            if failed:
                # A fault the provider could not survive failed its task loudly (after its retries): the owner's
                # rerun must repair it.
                self.reruns += [f"{dag_id}/{run['dag_run_id']}" for run in failed]
                self.stack.rerun_failed(dag_id, failed, BACKFILL_TIMEOUT)
        tis = [ti for dag_id, dag_runs in runs.items() for ti in self.stack.task_instances(dag_id, dag_runs)]
        assert {ti["state"] for ti in tis} <= {"success", "skipped"}, self.name
        assert self.stack.s3_proxy is not None
        s3 = self.stack.s3_proxy.stats()
        api = self.stack.sandbox.admin("GET", "/_sandbox/stats")
        self.watcher.stop()
        outcome = self.world.check(self.stack, self.watcher)
        restarted = Counter(self.supervisor.restarts[self.restarts_before :])
        retried = Counter(ti["task_id"] for ti in tis if ti["try_number"] > 1)
        line = (
            f"fault {self.name}: days={DAYS} orders_per_day={ORDERS_PER_DAY} s3_requests={s3['requests']}"
            f" s3_faults={dict(sorted(s3['faults'].items()))} s3_retried={s3['retried']}"
            f" api_requests={sum(api['requests'].values())}"
            f" tasks_retried={dict(retried) or 0} restarted={dict(restarted) or 'none'}"
            f" reruns={len(self.reruns)}{self.figures} {outcome.figures()} wall={time.monotonic() - self.started:.0f}s"
        )
        with capfd.disabled():
            print("\n" + line)
        assert outcome.ok, line

    def _edit_some_orders(self) -> None:
        """Edit one accepted order in EDIT_EVERY of the scenario's days, now: the sandbox's own pending edits are
        all taken by the first scenario's edit steps, which fetch every unseen edit."""
        for offset in range(DAYS):
            for hash_id in accepted_orders(self.stack, self.first + timedelta(days=offset))[::EDIT_EVERY]:
                self.stack.sandbox.admin("POST", f"/_sandbox/orders/{hash_id}/edit")


def _failed_runs(stack: ProductionAirflow, backfill: Backfill) -> list[str]:
    return [run["dag_run_id"] for run in stack.backfill_runs(backfill) if run["state"] == "failed"]


def _ti_running(stack: ProductionAirflow, backfill: Backfill, task_id: str) -> bool:
    return any(
        ti["task_id"] == task_id and ti["state"] == "running"
        for ti in stack.task_instances(backfill.dag_id, stack.backfill_runs(backfill))
    )


def test_the_metadata_database_restarts_mid_backfill(stack, supervisor, capfd):
    scenario = Scenario(stack, supervisor, "metadata_postgres")
    scenario.start()
    scenario.wait_for_the_middle()
    stack.postgres.restart(down_for=DOWN_FOR)
    scenario.finish(capfd)


def test_the_erp_database_goes_down_during_a_load_past_the_retries_and_a_rerun_repairs(stack, supervisor, capfd):
    scenario = Scenario(stack, supervisor, "erp_postgres")
    scenario.start()
    seller = scenario.backfills[0]
    wait_until(lambda: _ti_running(stack, seller, "load_orders_into_erp"), BACKFILL_TIMEOUT, "a load into the ERP", 0.3)
    # A maintenance window that overruns: the ERP stays down until a run has failed for good (its tasks' retries
    # spent), then comes back; the owner's rerun (Scenario.finish) must repair what failed, and only that.
    with stack.erp_postgres.down():
        wait_until(lambda: _failed_runs(stack, seller), BACKFILL_TIMEOUT, "a seller run to fail for good", 2)
    scenario.finish(capfd)
    assert scenario.reruns, "no run failed for good while the ERP was down"


def test_the_scheduler_is_killed_mid_backfill(stack, supervisor, capfd):
    scenario = Scenario(stack, supervisor, "scheduler")
    scenario.start()
    scenario.wait_for_the_middle()
    with supervisor.paused():
        stack.airflow.kill("scheduler")
        time.sleep(DOWN_FOR)
        stack.airflow.restart("scheduler")
    scenario.finish(capfd)


def test_the_triggerer_is_killed_while_a_sensor_and_an_event_trigger_wait(stack, supervisor, capfd):
    airflow, sandbox = stack.airflow, stack.sandbox
    airflow.api("PATCH", f"/api/v2/dags/{EVENTS}", json={"is_paused": False})
    # The trigger's first watermark is when it starts (orders older than that are history, not news): wait for it
    # to poll twice. No other task lists orders meanwhile: the earlier scenarios' backfills are complete.
    polls = _order_polls(stack)
    wait_until(lambda: _order_polls(stack) >= polls + 2, 300, "the event trigger to poll twice", 1)
    # Before the kill: a round of new orders starts one event run, so the watermark is stored past them.
    first_round = _add_new_orders(stack, 3)
    wait_until(lambda: _exported_by_event_runs(stack) >= first_round, 300, "the event run of the first round", 2)

    # The sensor defers before the backfill takes the workers' slots.
    airflow.api("PATCH", f"/api/v2/dags/{SENSOR}", json={"is_paused": False})
    run = airflow.api("POST", f"/api/v2/dags/{SENSOR}/dagRuns", json={"logical_date": None})
    sensor = f"/api/v2/dags/{SENSOR}/dagRuns/{run['dag_run_id']}/taskInstances/wait_for_new_orders"
    wait_until(lambda: airflow.api("GET", sensor)["state"] == "deferred", 300, "the sensor to defer", interval=2)

    scenario = Scenario(stack, supervisor, "triggerer")
    scenario.start()
    scenario.wait_for_the_middle()
    with supervisor.paused():
        airflow.kill("triggerer")
        # While the triggerer is down: the sensor's order, and new orders for the event trigger.
        sandbox.admin("POST", "/_sandbox/orders", json={"created_at": "2025-06-01T09:30:00Z"})
        second_round = _add_new_orders(stack, 4)
        time.sleep(DOWN_FOR)
        airflow.restart("triggerer")

    ti = wait_until(
        lambda: (ti := airflow.api("GET", sensor))["state"] in ("success", "failed") and ti, 600, "the sensor to resume"
    )
    assert ti["state"] == "success"
    assert [t["state"] for t in airflow.api("GET", f"{sensor}/tries")["task_instances"]] == ["success"]
    everything = first_round | second_round
    wait_until(lambda: _exported_by_event_runs(stack) >= everything, 600, "the event run of the second round", 2)
    # The watermark survived: each new order exported once, by one run or the other, none twice.
    exported = _event_exports(stack)
    scenario.figures = f" event_orders={len(set(exported))}/{len(everything)} event_exports={len(exported)}"
    scenario.finish(capfd)
    assert Counter(exported) == Counter(everything), exported


def test_the_celery_broker_restarts_mid_backfill(stack, supervisor, capfd):
    scenario = Scenario(stack, supervisor, "redis")
    scenario.start()
    scenario.wait_for_the_middle()
    assert stack.redis is not None
    stack.redis.restart(down_for=DOWN_FOR)
    scenario.finish(capfd)


def _order_polls(stack: ProductionAirflow) -> int:
    requests = stack.sandbox.admin("GET", "/_sandbox/stats")["requests"]
    return sum(count for key, count in requests.items() if key.startswith("GET /{ws}/order "))


def _add_new_orders(stack: ProductionAirflow, count: int) -> set[str]:
    """``count`` accepted orders created now: news for the event trigger."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    added = stack.sandbox.admin("POST", "/_sandbox/orders", json={"created_at": now, "count": count})
    return {order["hash_id"] for order in added}


def _event_exports(stack: ProductionAirflow) -> list[str]:
    """The hash ID of every order in every event run's export."""
    import json

    client = stack.s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="pipelines/new-orders/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", []) if "/." not in item["Key"]]
    bodies = (client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys)
    return [json.loads(line)["hash_id"] for body in bodies for line in body.splitlines() if line.strip()]


def _exported_by_event_runs(stack: ProductionAirflow) -> set[str]:
    return set(_event_exports(stack))
