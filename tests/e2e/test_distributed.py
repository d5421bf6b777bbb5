"""The example pipelines in production shape: Postgres, CeleryExecutor on Redis, two workers, data in S3.

The stack, all on 127.0.0.1 and free ports, each process in its own session and stopped through it:
* Postgres (Debian package): Airflow's metadata database, the Celery result backend, and the ERP (database `erp`,
  reached through the postgres provider);
* Redis (Debian package): the Celery broker;
* moto's S3 server: the data directory is ``s3://aws_default@consentio-data/pipelines``, reached through an
  Airflow ``aws`` connection whose extra names the endpoint;
* api-server, scheduler, dag-processor, triggerer, and two Celery workers, each with its own working folder,
  TMPDIR, AIRFLOW_HOME and hostname: tasks share nothing but S3 and the databases.

Scenario: a 14-day backfill of the seller DAG and the buyer DAG, while a thread reads every S3 object as soon as it
is listed (none may ever be partial or later replaced by other bytes); then a 7-day backfill during which one
worker is SIGKILLed (with its task processes) while it runs tasks.

How a killed worker's tasks come back: the task supervisor heartbeats each running task instance to the API
server every few seconds; the scheduler fails a running task instance whose last heartbeat is older than
``[scheduler] task_instance_heartbeat_timeout`` (default 300 s; 60 s here, checked every 5 s: FAST_RECOVERY), and
the task's retries put it back in the queue, where the surviving worker takes it (after the DAG's 30 s retry
delay). The Celery message of a killed task stays unacknowledged in Redis (``task_acks_late``), but Redis
redelivers it only after ``visibility_timeout`` (24 h by default), so it never races the retry. A task the dead
worker had received but not started stays "queued" and is re-queued after ``[scheduler] task_queued_timeout``
(180 s here).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from airflow_provider_consentio.demo.stack import wait_until
from harness.ground_truth import BucketWatcher, World
from harness.production import FAST_RECOVERY, ProductionAirflow, api_instant
from harness.services import servers_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.distributed]

REPO = Path(__file__).resolve().parents[2]
SELLER, BUYER, SENSOR = "consentio_seller_daily", "consentio_buyer_daily", "consentio_sensor_defers"
BUCKET = "consentio-data"
DATA_DIR = f"s3://aws_default@{BUCKET}/pipelines"
FIRST_DAY, DAYS, SECOND_DAYS = date(2025, 3, 1), 14, 7
DEMAND_LINES_PER_DAY = 10
WORKERS = ("worker-1", "worker-2")
# The seller's tasks that call the API, and how long each API answer takes while worker-1 is killed.
API_TASKS = {"export_accepted_orders", "fetch_edited_orders", "mark_edits_seen", "push_erp_references"}
KILL_WINDOW_DELAY = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    servers_or_skip("the distributed test")
    production = ProductionAirflow(
        tmp_path_factory.mktemp("distributed"),
        bundles={"examples": REPO / "dags", "distributed": Path(__file__).parent / "distributed_dags"},
        workers=WORKERS,
        bucket=BUCKET,
        variables={"consentio_data_dir": DATA_DIR},
        settings=FAST_RECOVERY,
    )
    with production:
        production.wait_for_dags({SELLER, BUYER, SENSOR})
        yield production


def test_the_deferrable_sensor_waits_in_the_triggerer_and_resumes_on_a_worker(stack):
    airflow = stack.airflow
    airflow.api("PATCH", f"/api/v2/dags/{SENSOR}", json={"is_paused": False})
    run = airflow.api("POST", f"/api/v2/dags/{SENSOR}/dagRuns", json={"logical_date": None})
    path = f"/api/v2/dags/{SENSOR}/dagRuns/{run['dag_run_id']}/taskInstances/wait_for_new_orders"
    wait_until(lambda: airflow.api("GET", path)["state"] == "deferred", 300, "the sensor to defer", interval=2)
    stack.sandbox.admin("POST", "/_sandbox/orders", json={"created_at": "2025-06-01T09:30:00Z"})
    ti = wait_until(
        lambda: (ti := airflow.api("GET", path))["state"] in ("success", "failed") and ti, 300, "the sensor to resume"
    )
    assert ti["state"] == "success"
    assert ti["hostname"] in WORKERS
    triggers = airflow.api("GET", f"{path}/tries")["task_instances"]
    assert [t["state"] for t in triggers] == ["success"]  # one try: it resumed, it did not retry


def test_backfills_on_two_workers_survive_a_killed_worker_exactly(stack, capfd):
    sandbox = stack.sandbox
    world = World.before_backfill(stack, FIRST_DAY, DAYS, DEMAND_LINES_PER_DAY)
    watcher = BucketWatcher(stack.s3.client(), BUCKET, "pipelines/orders/")
    watcher.start()
    try:
        seller, buyer = (stack.backfill(dag_id, FIRST_DAY, DAYS) for dag_id in (SELLER, BUYER))
        first_runs = stack.wait_for_backfill(seller, timeout=900)
        buyer_runs = stack.wait_for_backfill(buyer, timeout=600)

        # Second backfill: kill worker-1 while it runs tasks of it. Every API answer takes KILL_WINDOW_DELAY
        # meanwhile, so a task of the API that the victim has just started is still running when the kill lands.
        second = stack.backfill(SELLER, FIRST_DAY + timedelta(days=DAYS), SECOND_DAYS)
        victim, survivor = stack.workers

        def running_on_victim():
            tis = stack.task_instances(SELLER, stack.backfill_runs(second))
            return [ti for ti in tis if ti["state"] == "running" and ti["hostname"] == victim.name]

        def victim_just_started_an_api_task():
            now = datetime.now(UTC)
            return any(
                ti["task_id"] in API_TASKS and now - api_instant(ti["start_date"]) < timedelta(seconds=1)
                for ti in running_on_victim()
            )

        slow = {"kind": "slow", "probability": 1.0, "delay": KILL_WINDOW_DELAY}
        sandbox.admin("PUT", "/_sandbox/faults", json={"seed": 1, "rules": [slow]})
        wait_until(victim_just_started_an_api_task, 600, f"{victim.name} to start a task of the second backfill", 0.3)
        victim.kill()
        killed = running_on_victim()  # nothing can change their state now but the scheduler's heartbeat check
        sandbox.admin("DELETE", "/_sandbox/faults")
        assert killed, f"the kill of {victim.name} landed after its tasks had finished"
        second_runs = stack.wait_for_backfill(second, timeout=900)
    finally:
        watcher.stop()

    # Every run and task instance succeeded (or was skipped: prepare is off).
    for dag_id, runs in ((SELLER, first_runs + second_runs), (BUYER, buyer_runs)):
        assert [r["dag_run_id"] for r in runs if r["state"] != "success"] == [], dag_id
    seller_tis = stack.task_instances(SELLER, first_runs + second_runs)
    buyer_tis = stack.task_instances(BUYER, buyer_runs)
    assert {ti["state"] for ti in seller_tis + buyer_tis} <= {"success", "skipped"}
    ran = [ti for ti in seller_tis + buyer_tis if ti["state"] == "success"]
    tasks_per_worker = dict(sorted(Counter(ti["hostname"] for ti in ran).items()))
    first_tis = stack.task_instances(SELLER, first_runs) + buyer_tis
    assert {ti["hostname"] for ti in first_tis if ti["state"] == "success"} == set(WORKERS)
    second_tis = stack.task_instances(SELLER, second_runs)
    retried = [ti for ti in second_tis if ti["try_number"] > 1]
    killed_keys = {(ti["dag_run_id"], ti["task_id"], ti["map_index"]) for ti in killed}
    for ti in second_tis:
        if (ti["dag_run_id"], ti["task_id"], ti["map_index"]) in killed_keys:
            assert ti["try_number"] > 1 and ti["hostname"] == survivor.name, ti

    # S3, the ERP, edits and purchase needs against the sandbox's ground truth (harness/ground_truth.py).
    outcome = world.check(stack, watcher, days=DAYS + SECOND_DAYS)
    orders_per_day = outcome.orders_per_day
    summary = (
        f"distributed: days={DAYS}+{SECOND_DAYS} orders={sum(orders_per_day)} (per day {min(orders_per_day)}"
        f"-{max(orders_per_day)}) objects={outcome.objects} parts_seen={outcome.parts_seen}"
        f" erp_rows={outcome.erp_rows} refs={outcome.refs}"
        f" edits_seen={outcome.edits_seen}/{outcome.edits_expected} needs={outcome.needs}/{outcome.needs_expected}"
        f" tasks_per_worker={tasks_per_worker} killed_running={len(killed)} retried={len(retried)}"
        f" lost={outcome.lost} duplicated={outcome.duplicated}"
    )
    with capfd.disabled():  # the line of counts shows in `make test`'s output, as the chaos test's does
        print("\n" + summary)
    assert (outcome.broken, outcome.leftover_parts, outcome.replaced) == ([], [], {}), summary
    assert (outcome.lost, outcome.duplicated) == (0, 0), summary
    assert outcome.stale_examples == [], summary  # each edited order in the ERP at its latest version
    assert outcome.objects == DAYS + SECOND_DAYS and len(retried) >= len(killed) >= 1, summary
