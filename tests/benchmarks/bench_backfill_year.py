"""Backfill benchmark: a year of seller orders into the ERP, three ways, under a real scheduler.

For each order rate (the sandbox's default 40 a day, and 2,000 a day) it starts the sandbox with a year of orders
and a real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite, parallelism 4), then:

* (a) ``airflow backfill create`` of consentio_seller_daily, one run at a time (``--max-active-runs 1``);
* (b) the same backfill with runs side by side (``--max-active-runs 4``);
* (c) one run of consentio_seller_history over the whole year, triggered through the REST API.

(a) and (b) cover ``--sample-days`` days each (disjoint ranges, so each starts from orders nobody loaded) and are
extrapolated to the year linearly: a run's cost is Airflow starting its tasks, whatever the day holds. (c) is
measured over the whole year; the ERP is emptied before it. After each, the ERP is compared with the sandbox's
ground truth for the days covered: every accepted order once, at its current version, with its ERP number pushed
back to Consentio. Wall time is from the request to the last run finished.

    .venv/bin/python tests/benchmarks/bench_backfill_year.py [--rates 40,2000] [--sample-days 30]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_consentio.demo.erp import sqlite_connection  # noqa: E402
from airflow_provider_consentio.demo.stack import (  # noqa: E402
    AirflowEnv,
    AirflowServices,
    SandboxProcess,
    wait_until,
)
from airflow_provider_consentio.sandbox.config import SandboxConfig  # noqa: E402

YEAR_START = date(2025, 1, 1)
DAILY, HISTORY = "consentio_seller_daily", "consentio_seller_history"
GOAL_SECONDS = 300


def backfill(env: AirflowEnv, services: AirflowServices, first: date, days: int, max_active_runs: int) -> dict:
    began = time.perf_counter()
    last = first + timedelta(days=days - 1)
    env.airflow(
        "backfill",
        "create",
        "--dag-id",
        DAILY,
        "--from-date",
        first.isoformat(),
        "--to-date",
        last.isoformat(),
        "--max-active-runs",
        str(max_active_runs),
    )

    wanted = {(first + timedelta(days=offset)).isoformat() for offset in range(days)}

    def finished() -> list[dict[str, Any]] | None:
        # Matched by the day each run covers (its data interval start), not its logical date, whose relation to
        # the interval depends on the timetable.
        runs = services.api("GET", f"/api/v2/dags/{DAILY}/dagRuns", params={"run_type": "backfill", "limit": 1000})[
            "dag_runs"
        ]
        runs = [run for run in runs if run["data_interval_start"][:10] in wanted]
        done = len(runs) == days and all(run["state"] in ("success", "failed") for run in runs)
        return runs if done else None

    runs = wait_until(finished, 3600, f"{days} backfill runs of {DAILY}", interval=2)
    seconds = time.perf_counter() - began
    # The scheduler marks a backfill complete a moment after its last run; until then it refuses the next one.
    wait_until(
        lambda: all(
            backfill["completed_at"]
            for backfill in services.api("GET", "/api/v2/backfills", params={"dag_id": DAILY})["backfills"]
        ),
        300,
        f"the backfill of {DAILY} to be marked complete",
        interval=1,
    )
    failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
    if failed:
        raise RuntimeError(f"backfill runs failed: {failed}")
    return {"seconds": seconds, "most_at_once": most_at_once(runs)}


def most_at_once(runs: list[dict[str, Any]]) -> int:
    """The most runs that were running at the same moment (from their start and end times)."""
    edges = sorted(
        [(datetime.fromisoformat(run["start_date"]), 1) for run in runs]
        + [(datetime.fromisoformat(run["end_date"]), -1) for run in runs]
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def history(services: AirflowServices, first: date, days: int) -> dict:
    began = time.perf_counter()
    conf = {"start": first.isoformat(), "end": (first + timedelta(days=days)).isoformat()}
    run = services.api("POST", f"/api/v2/dags/{HISTORY}/dagRuns", json={"logical_date": None, "conf": conf})
    path = f"/api/v2/dags/{HISTORY}/dagRuns/{run['dag_run_id']}"

    def final_state() -> str | None:
        state = services.api("GET", path)["state"]
        return state if state in ("success", "failed") else None

    state = wait_until(final_state, 3600, f"the {HISTORY} run", interval=1)
    seconds = time.perf_counter() - began
    if state != "success":
        raise RuntimeError(f"{HISTORY} run {run['dag_run_id']} ended {state}")
    return {"seconds": seconds, "most_at_once": 1}


def erp_equals_truth(sandbox: SandboxProcess, erp: Path, first: date, days: int) -> int:
    """Every accepted order of the days is in the ERP once, at its current version, its ERP number pushed back.

    Returns how many orders that is; raises on the first difference."""
    total = 0
    with closing(sqlite3.connect(erp)) as db:
        for offset in range(days):
            day = first + timedelta(days=offset)
            low, high = f"{day}T00:00:00Z", f"{day + timedelta(days=1)}T00:00:00Z"
            truth = sandbox.admin(
                "GET", "/_sandbox/orders", params={"from": low, "to": high, "kind": "sale", "status": "accepted"}
            )
            rows = db.execute(
                "SELECT hash_id, erp_number, strftime('%Y-%m-%dT%H:%M:%SZ', updated_at) FROM erp_orders"
                " WHERE created_at >= datetime(?) AND created_at < datetime(?)",
                (low, high),
            ).fetchall()
            in_erp = {hash_id: (number, updated) for hash_id, number, updated in rows}
            expected = {order["hash_id"]: (f"ERP-{order['id']:08d}", order["updated_at"]) for order in truth}
            pushed = {order["hash_id"]: (order["external_id"], order["updated_at"]) for order in truth}
            if len(rows) != len(truth) or in_erp != expected or pushed != expected:
                raise AssertionError(f"{day}: the ERP or the pushed references differ from the sandbox")
            total += len(truth)
    return total


def run_rate(orders_per_day: int, year_days: int, sample_days: int, parallel: int, work: Path) -> list[dict]:
    extra = ("--start", YEAR_START.isoformat(), "--days", str(year_days), "--orders-per-day", str(orders_per_day))
    rows = []
    erp, data = work / "erp.db", work / "data"
    with SandboxProcess(work / "sandbox", extra_args=extra, start_timeout=1800) as sandbox:
        env = AirflowEnv(
            home=work / "airflow",
            dags_folder=REPO / "dags",
            connections={"consentio_default": sandbox.connection_json(), "consentio_erp": sqlite_connection(erp)},
            variables={"consentio_data_dir": str(data)},
        )
        env.prepare()
        with AirflowServices(env) as services:
            wait_until(lambda: parsed(services), 300, "the dag-processor to parse the example DAGs", interval=2)
            for dag_id in (DAILY, HISTORY):
                services.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            scenarios = [
                (
                    "(a) daily backfill, 1 run at a time",
                    YEAR_START,
                    sample_days,
                    lambda f, d: backfill(env, services, f, d, 1),
                ),
                (
                    f"(b) daily backfill, {parallel} runs at a time",
                    YEAR_START + timedelta(days=sample_days),
                    sample_days,
                    lambda f, d: backfill(env, services, f, d, parallel),
                ),
                ("(c) history, one run", YEAR_START, year_days, lambda f, d: history(services, f, d)),
            ]
            for label, first, days, run in scenarios:
                if label.startswith("(c)"):
                    with closing(sqlite3.connect(erp)) as db:
                        db.execute("DELETE FROM erp_orders")
                        db.execute("DELETE FROM erp_order_items")
                        db.commit()
                    shutil.rmtree(data, ignore_errors=True)
                measured = run(first, days)
                orders = erp_equals_truth(sandbox, erp, first, days)
                seconds = measured["seconds"]
                rows.append(
                    {
                        "rate": orders_per_day,
                        "scenario": label,
                        "days": days,
                        "seconds": seconds,
                        "orders": orders,
                        "at_once": measured["most_at_once"],
                        "year_seconds": seconds * year_days / days,
                        "year_orders": orders * year_days / days,
                    }
                )
                print(format_row(rows[-1], year_days), flush=True)
    return rows


def parsed(services: AirflowServices) -> bool:
    dags = services.api("GET", "/api/v2/dags", params={"dag_id_pattern": "consentio"})["dags"]
    return {DAILY, HISTORY} <= {dag["dag_id"] for dag in dags}


HEADER = (
    f"| {'orders/day':>10} | {'scenario':<38} | {'days':>4} | {'wall s':>7} | {'orders':>7} | {'orders/s':>8} "
    f"| {'runs at once':>12} | {'365 days, s':>12} | ERP == truth |"
)


def format_row(row: dict, year_days: int) -> str:
    extrapolated = "" if row["days"] == year_days else " (extrap.)"
    year = f"{row['year_seconds']:.0f}{extrapolated}"
    return (
        f"| {row['rate']:>10} | {row['scenario']:<38} | {row['days']:>4} | {row['seconds']:>7.1f} | {row['orders']:>7} "
        f"| {row['orders'] / row['seconds']:>8.1f} | {row['at_once']:>12} | {year:>12} | yes          |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="40,2000", help="orders per day, comma-separated")
    parser.add_argument("--days", type=int, default=365, help="the year's length")
    parser.add_argument("--sample-days", type=int, default=30, help="days measured for (a) and (b)")
    parser.add_argument("--parallel", type=int, default=4, help="runs at a time in (b)")
    args = parser.parse_args()
    rows = []
    for rate in (int(value) for value in args.rates.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-backfill-") as work:
            print(f"\n{rate} orders/day over {args.days} days\n{HEADER}", flush=True)
            rows += run_rate(rate, args.days, args.sample_days, args.parallel, Path(work))
    print(f"\n{HEADER}")
    for row in rows:
        print(format_row(row, args.days))
    default_rate = SandboxConfig().orders_per_day
    history_rows = [row for row in rows if row["scenario"].startswith("(c)") and row["rate"] == default_rate]
    if not history_rows:
        print(f"\nGoal: not measured (it is for the default rate, {default_rate} orders/day)")
        return 0
    met = all(row["seconds"] <= GOAL_SECONDS for row in history_rows)
    print(f"\nGoal: (c) loads the year at the default rate in <= {GOAL_SECONDS} s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
