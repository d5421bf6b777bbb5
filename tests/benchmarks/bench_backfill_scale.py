"""Backfill at scale: consentio_seller_daily against the same DAG shape built of no-op tasks, under a real scheduler.

For each executor (LocalExecutor, and CeleryExecutor with two workers on Redis), on a Postgres metadata database
with the data directory in S3 (moto) and the ERP in Postgres, it backfills DAYS days of the no-op DAG
(tests/benchmarks/dags/consentio_seller_noop.py), then the same days of the seller DAG, and prints for each: the
wall time (backfill create to the last run's end), the ratio seller / no-op (the provider's cost over Airflow's
own), and where the time goes, from the task instances' own timestamps: queue wait (queued -> start) and run time
(start -> end) per task, and the mean per task ID. Both backfills run up to 10 runs at once (Airflow's default).

    python tests/benchmarks/bench_backfill_scale.py                    # 90 days, both executors (long)
    python tests/benchmarks/bench_backfill_scale.py --days 5 --executor local
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The harness lives beside the tests, not in the package: a script run by path finds it through this.
sys.path.insert(0, str(REPO / "tests"))

from harness.production import ProductionAirflow, api_instant  # noqa: E402
from harness.services import missing_servers  # noqa: E402

SELLER, NOOP = "consentio_seller_daily", "consentio_seller_noop"
FIRST_DAY = date(2025, 1, 1)  # the sandbox seeds 90 days from here
BUCKET = "consentio-data"


def measure(stack: ProductionAirflow, dag_id: str, days: int) -> dict[str, Any]:
    started = datetime.now().astimezone()
    runs = stack.wait_for_backfill(stack.backfill(dag_id, FIRST_DAY, days), timeout=6 * 3600)
    failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
    if failed:
        raise SystemExit(f"{dag_id}: {len(failed)} backfill run(s) failed, e.g. {failed[:3]}")
    tis = [ti for ti in stack.task_instances(dag_id, runs) if ti["state"] == "success"]
    wall = (max(api_instant(run["end_date"]) for run in runs) - started).total_seconds()
    queue_wait = [(api_instant(ti["start_date"]) - api_instant(ti["queued_when"])).total_seconds() for ti in tis]
    run_time = [ti["duration"] for ti in tis]
    per_task: dict[str, list[float]] = defaultdict(list)
    for ti in tis:
        per_task[ti["task_id"]].append(ti["duration"])
    return {
        "wall": wall,
        "tasks": len(tis),
        "queue_wait": statistics.mean(queue_wait),
        "run_time": statistics.mean(run_time),
        "busy": sum(run_time),
        "per_task": {task_id: statistics.mean(values) for task_id, values in per_task.items()},
    }


def bench(executor: str, days: int) -> dict[str, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"consentio-bench-backfill-{executor}-"))
    try:
        with ProductionAirflow(
            workdir,
            bundles={"examples": REPO / "dags", "benchmarks": REPO / "tests" / "benchmarks" / "dags"},
            executor=executor,
            bucket=BUCKET,
            variables={"consentio_data_dir": f"s3://aws_default@{BUCKET}/pipelines"},
        ) as stack:
            stack.wait_for_dags({SELLER, NOOP})
            return {dag_id: measure(stack, dag_id, days) for dag_id in (NOOP, SELLER)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(executor: str, days: int, result: dict[str, dict[str, Any]]) -> None:
    noop, seller = result[NOOP], result[SELLER]
    print(f"\n{executor} executor, {days} days, Postgres metadata DB, data in S3 (moto), ERP in Postgres")
    print(f"  {'DAG':<24}{'wall s':>8}{'tasks':>7}{'queue wait s':>14}{'run s/task':>12}{'task-s total':>14}")
    for dag_id, figures in ((NOOP, noop), (SELLER, seller)):
        print(
            f"  {dag_id:<24}{figures['wall']:>8.1f}{figures['tasks']:>7}{figures['queue_wait']:>14.2f}"
            f"{figures['run_time']:>12.2f}{figures['busy']:>14.1f}"
        )
    print(f"  ratio seller / no-op wall time: {seller['wall'] / noop['wall']:.2f}x (goal: at most 1.3x)")
    print(f"  {'mean run s per task':<24}{'no-op':>8}{'seller':>8}")
    for task_id in seller["per_task"]:
        print(f"  {task_id:<24}{noop['per_task'].get(task_id, float('nan')):>8.2f}{seller['per_task'][task_id]:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90, help="days to backfill, 1..90 (default 90)")
    parser.add_argument("--executor", nargs="+", choices=("local", "celery"), default=["local", "celery"])
    args = parser.parse_args()
    if not 1 <= args.days <= 90:
        parser.error("--days must be 1..90: the sandbox seeds 90 days of orders")
    if missing := missing_servers():
        sys.exit(f"needs {', '.join(missing)}: run `make services`")
    for executor in args.executor:
        report(executor, args.days, bench(executor, args.days))


if __name__ == "__main__":
    main()
