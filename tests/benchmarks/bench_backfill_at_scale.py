"""Issue #24's scale: 10,000 orders a day, a 7-day backfill of the seller and buyer DAGs side by side.

On the production-shaped stack (tests/harness/production.py: Postgres, Redis, moto S3, two Celery workers), with the
sandbox seeding ``--orders-per-day`` orders a day and the ERP planning one demand line per 10 orders. Prints the
sandbox's start time and memory, each backfill's wall time, the task durations (mean and max per task ID, from the
REST API's task instances), and the ground-truth check (tests/harness/ground_truth.py): 0 lost, 0 duplicated.

    python tests/benchmarks/bench_backfill_at_scale.py                       # 10,000 a day, 7 days (long)
    python tests/benchmarks/bench_backfill_at_scale.py --orders-per-day 1000 --days 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The harness lives beside the tests, not in the package: a script run by path finds it through this.
sys.path.insert(0, str(REPO / "tests"))

from harness.ground_truth import BucketWatcher, World  # noqa: E402
from harness.production import ProductionAirflow, api_instant  # noqa: E402
from harness.services import missing_servers  # noqa: E402

SELLER, BUYER = "consentio_seller_daily", "consentio_buyer_daily"
BUCKET = "consentio-data"
FIRST_DAY = date(2025, 3, 1)
ORDERS_PER_DEMAND_LINE = 10


def rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


class PeakMemory(threading.Thread):
    """The peak RSS of one process, sampled every second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.peak = max(self.peak, rss_mb(self.pid))


def task_table(tis: list[dict[str, Any]]) -> list[str]:
    per_task: dict[str, list[float]] = defaultdict(list)
    for ti in tis:
        if ti["state"] == "success" and ti["duration"] is not None:
            per_task[ti["task_id"]].append(ti["duration"])
    ranked = sorted(per_task.items(), key=lambda item: -max(item[1]))
    return [
        f"    {task_id:<32} n={len(values):<3} mean={statistics.mean(values):7.1f}s max={max(values):7.1f}s"
        for task_id, values in ranked
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders-per-day", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (logs) afterwards")
    args = parser.parse_args()
    if missing_servers():
        raise SystemExit(f"needs {', '.join(missing_servers())}: run `make services`")
    lines_per_day = max(1, args.orders_per_day // ORDERS_PER_DEMAND_LINE)
    # Two days more than the backfill: the sandbox's last days are never empty of edits and late orders.
    sandbox_args = ("--orders-per-day", str(args.orders_per_day), "--start", str(FIRST_DAY), "--days")
    sandbox_args += (str(args.days + 2),)
    workdir = Path(tempfile.mkdtemp(prefix="consentio-scale-"))
    started = time.monotonic()
    try:
        with ProductionAirflow(
            workdir,
            bundles={"examples": REPO / "dags"},
            bucket=BUCKET,
            variables={"consentio_data_dir": f"s3://aws_default@{BUCKET}/pipelines"},
            sandbox_args=sandbox_args,
            sandbox_start_timeout=900,
        ) as stack:
            assert stack.sandbox.process is not None
            sandbox_pid = stack.sandbox.process.pid
            print(
                f"stack up in {time.monotonic() - started:.0f} s; sandbox RSS {rss_mb(sandbox_pid):.0f} MB", flush=True
            )
            stack.wait_for_dags({SELLER, BUYER})
            t = time.monotonic()
            world = World.before_backfill(stack, FIRST_DAY, args.days, lines_per_day)
            print(
                f"world snapshot + {lines_per_day * args.days} demand lines: {time.monotonic() - t:.1f} s", flush=True
            )
            watcher = BucketWatcher(stack.s3.client(), BUCKET, "pipelines/orders/", interval=2.0)
            watcher.start()
            peak = PeakMemory(sandbox_pid)
            peak.start()
            begun = datetime.now().astimezone()
            backfills = [stack.backfill(dag_id, FIRST_DAY, args.days) for dag_id in (SELLER, BUYER)]
            results = {}
            for backfill in backfills:
                runs = stack.wait_for_backfill(backfill, timeout=4 * 3600)
                wall = (max(api_instant(run["end_date"]) for run in runs if run["end_date"]) - begun).total_seconds()
                results[backfill.dag_id] = (runs, wall)
            watcher.stop()
            peak.done.set()
            for dag_id, (runs, wall) in results.items():
                failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
                tis = stack.task_instances(dag_id, runs)
                retried = sum(1 for ti in tis if ti["try_number"] > 1)
                print(f"{dag_id}: {len(runs)} runs, wall {wall:.0f} s, failed {failed}, retried tasks {retried}")
                print("\n".join(task_table(tis)))
            t = time.monotonic()
            outcome = world.check(stack, watcher)
            print(f"check took {time.monotonic() - t:.1f} s")
            print(f"sandbox RSS peak {peak.peak:.0f} MB, now {rss_mb(sandbox_pid):.0f} MB")
            print(f"ground truth: ok={outcome.ok} {outcome.figures()}")
            if args.keep:
                print(f"kept {workdir}")
            return 0 if outcome.ok else 1
    finally:
        print(f"total {timedelta(seconds=round(time.monotonic() - started))}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
