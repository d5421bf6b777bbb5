"""The workspace's request budget on the distributed stack (issue #25): two Celery workers, four runs side by side,
the sandbox limited to RATE requests/s with a burst of BURST.

The stack is test_distributed.py's (harness/production.py). Two phases read the same days, each a backfill of one DAG
of ``rate_budget_dags/`` whose runs read their day in 288 five-minute sub-windows:

* without the budget, every task finds the limit by hitting it and backs off on its own (Retry-After);
* with it (``rate_limit``, ``rate_burst``, ``rate_store_conn_id`` naming a Redis), every task on both workers draws
  from one budget kept in that Redis, which is restarted (and comes back empty) once a third of the phase's
  requests are answered.

The sandbox counts what it answered itself (GET /_sandbox/stats). Each phase prints one line: the requests answered
(429s aside), the 429s and their share of all that was sent, the wall time, the ideal (requests / rate) and their
ratio. The wall time runs from the first task's start to the last one's end as the REST API reports them: it holds
the tasks' own start-up, but not the scheduler's bookkeeping around the runs, which is not the API's time.

The store is a Redis of its own, not the Celery broker: restarting the broker would test Celery's reconnection.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_consentio.demo.stack import wait_until
from harness.production import ProductionAirflow, api_instant
from harness.services import RedisServer, servers_or_skip

pytestmark = [pytest.mark.e2e, pytest.mark.distributed]

RATE, BURST = 20, 40
WITHOUT, WITH = "consentio_rate_budget_off", "consentio_rate_budget_on"
UNBUDGETED, BUDGETED, STORE = "consentio_unbudgeted", "consentio_budgeted", "consentio_rate_store"
BUCKET = "consentio-data"
DATA_DIR = f"s3://aws_default@{BUCKET}/pipelines"
# A backfill of DAYS days from FIRST_DAY makes DAYS + 1 runs of a data-interval timetable (the interval that ends
# on FIRST_DAY too): as many as the two workers have task slots (2 x 2), so that every export runs beside the others.
FIRST_DAY, DAYS = date(2025, 2, 3), 3
WORKERS = ("worker-1", "worker-2")
SLOTS = 2 * len(WORKERS)
# The bar for the phase with the budget.
MAX_REFUSED_SHARE, MAX_IDEAL_RATIO = 0.01, 1.2
# Where the phase with the budget is when its store restarts: the share of the requests of the phase without.
RESTART_AT = 1 / 3
# The budget's keys in its store (client/rate_budget.py: budget_key).
BUDGET_KEYS = "airflow-provider-consentio:rate-budget:*"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    servers_or_skip("the distributed rate budget test")
    production = ProductionAirflow(
        tmp_path_factory.mktemp("rate-budget"),
        bundles={"rate_budget": Path(__file__).parent / "rate_budget_dags"},
        workers=WORKERS,
        bucket=BUCKET,
        variables={"consentio_data_dir": DATA_DIR},
    )
    with production:
        production.wait_for_dags({WITHOUT, WITH})
        yield production


@pytest.fixture(scope="module")
def store(stack):
    with RedisServer(stack.workdir / "rate-store") as redis:
        yield redis


def _create_connections(stack: ProductionAirflow, store: RedisServer) -> None:
    """Both Consentio connections, alike but for the budget, and the store's Redis connection."""
    sandbox = json.loads(stack.sandbox.connection_json())
    # Enough retries that no request gives up without the budget: the phases compare 429s and time, not failures.
    extras = {**sandbox["extra"], "max_retries": 100}
    budget = {"rate_limit": RATE, "rate_burst": BURST, "rate_store_conn_id": STORE}
    fields = {key: sandbox[key] for key in ("conn_type", "host", "port", "login", "password")}
    for conn_id, extra in ((UNBUDGETED, extras), (BUDGETED, {**extras, **budget})):
        body = {"connection_id": conn_id, **fields, "extra": json.dumps(extra)}
        stack.airflow.api("POST", "/api/v2/connections", json=body)
    redis = {"connection_id": STORE, "conn_type": "redis", "host": "127.0.0.1", "port": store.port}
    stack.airflow.api("POST", "/api/v2/connections", json=redis)


@dataclass(frozen=True)
class Phase:
    name: str
    runs: int
    answered: int
    refused: int
    wall: float
    files: dict[date, bytes]
    hostnames: Counter[str]
    side_by_side: int

    @property
    def refused_share(self) -> float:
        return self.refused / (self.answered + self.refused)

    @property
    def ideal(self) -> float:
        return self.answered / RATE

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal

    def line(self, note: str = "") -> str:
        return (
            f"rate budget {self.name}: runs={self.runs} side_by_side={self.side_by_side}"
            f" workers={dict(sorted(self.hostnames.items()))}"
            f" limit={RATE}/s burst={BURST} requests={self.answered} 429s={self.refused}"
            f" share={self.refused_share:.2%} wall={self.wall:.1f}s ideal={self.ideal:.1f}s ratio={self.ratio:.2f}"
            + (f" {note}" if note else "")
        )


def _answered_and_refused(stack: ProductionAirflow) -> tuple[int, int]:
    counts = stack.sandbox.admin("GET", "/_sandbox/stats")["requests"]
    refused = sum(count for key, count in counts.items() if key.endswith(" 429"))
    return sum(counts.values()) - refused, refused


def _budget_keys(store: RedisServer) -> list[bytes]:
    import redis

    return list(redis.Redis.from_url(store.url, socket_timeout=5).scan_iter(BUDGET_KEYS))


def _run_phase(stack: ProductionAirflow, dag_id: str, name: str, during: Any = None) -> Phase:
    # An empty bucket and zeroed counts for each phase; the same seed, so the same orders.
    stack.sandbox.admin("POST", "/_sandbox/reset", json={"rate_limit": RATE, "rate_burst": BURST})
    backfill = stack.backfill(dag_id, FIRST_DAY, DAYS)
    if during is not None:
        during()
    stack.wait_for_backfill(backfill, timeout=600)
    answered, refused = _answered_and_refused(stack)
    # Every run of the DAG: the backfill's own, the one more it makes included (the sandbox counted its requests).
    runs = stack.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
    assert [run["dag_run_id"] for run in runs if run["state"] != "success"] == [], name
    tis = stack.task_instances(dag_id, runs)
    assert [ti["state"] for ti in tis] == ["success"] * len(runs), name
    starts = [api_instant(ti["start_date"]) for ti in tis]
    ends = [api_instant(ti["end_date"]) for ti in tis]
    s3 = stack.s3.client()
    days = sorted(date.fromisoformat(run["data_interval_start"][:10]) for run in runs)
    files = {
        day: s3.get_object(Bucket=BUCKET, Key=f"pipelines/rate_budget/{dag_id}/{day}.jsonl")["Body"].read()
        for day in days
    }
    return Phase(
        name=name,
        runs=len(runs),
        answered=answered,
        refused=refused,
        wall=(max(ends) - min(starts)).total_seconds(),
        files=files,
        hostnames=Counter(ti["hostname"] for ti in tis),
        side_by_side=_most_at_once(starts, ends),
    )


def _most_at_once(starts: list[datetime], ends: list[datetime]) -> int:
    """The most tasks running at one instant (some task's start)."""
    spans = list(zip(starts, ends, strict=True))
    return max(sum(1 for start, end in spans if start <= moment < end) for moment in starts)


def _sale_orders(stack: ProductionAirflow, day: date) -> list[str]:
    start = datetime(day.year, day.month, day.day)
    window = {"from": f"{start.isoformat()}Z", "to": f"{(start + timedelta(days=1)).isoformat()}Z", "kind": "sale"}
    return [order["hash_id"] for order in stack.sandbox.admin("GET", "/_sandbox/orders", params=window)]


def test_a_shared_budget_keeps_runs_on_two_workers_under_the_limit_through_a_store_restart(stack, store, capfd):
    _create_connections(stack, store)
    without = _run_phase(stack, WITHOUT, "off")
    with capfd.disabled():  # the lines of figures show in `make test`'s output, as the chaos test's does
        print("\n" + without.line())

    restart: dict[str, Any] = {}

    def restart_the_store_mid_run() -> None:
        wait_until(
            lambda: _answered_and_refused(stack)[0] >= without.answered * RESTART_AT,
            300,
            f"{RESTART_AT:.0%} of the requests of the phase with the budget",
            interval=0.2,
        )
        restart["keys_before"] = _budget_keys(store)
        restart["at"] = _answered_and_refused(stack)
        store.stop()
        store.start()
        # The tasks come back to the store once it answers (the budget retries a failed store after a pause).
        restart["keys_after"] = wait_until(
            lambda: _budget_keys(store), 120, "the tasks to draw from the restarted store", interval=0.2
        )

    with_budget = _run_phase(stack, WITH, "on", during=restart_the_store_mid_run)
    answered_at_restart, refused_at_restart = restart["at"]
    note = f"store_restart_at={answered_at_restart} 429s_after_restart={with_budget.refused - refused_at_restart}"
    summary = with_budget.line(note)
    with capfd.disabled():
        print(summary)

    # Both phases: the same work, done by both workers, as many runs side by side as they have slots.
    for phase in (without, with_budget):
        assert set(phase.hostnames) == set(WORKERS), phase.line()
        assert phase.side_by_side == min(phase.runs, SLOTS), phase.line()
    assert with_budget.answered == without.answered, summary
    assert without.refused > 0, without.line()  # the limit bites without the budget

    # The results are exact: each day's file holds that day's sale orders, the same bytes in both phases.
    for day, body in without.files.items():
        assert [json.loads(line)["hash_id"] for line in body.decode().splitlines()] == _sale_orders(stack, day), day
    assert with_budget.files == without.files

    # The budget was shared through the store before its restart and again after it, mid-run.
    assert restart["keys_before"] and restart["keys_after"], restart
    assert answered_at_restart < with_budget.answered, summary

    assert with_budget.refused_share <= MAX_REFUSED_SHARE, summary
    assert with_budget.ratio <= MAX_IDEAL_RATIO, summary
