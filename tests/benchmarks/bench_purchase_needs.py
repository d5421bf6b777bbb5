"""Purchase-need upsert benchmark: records/s by batch size and concurrency, against the sandbox in its own process.

Each run is ConsentioUpsertPurchaseNeedsOperator.execute() on a list of needs (load + validation + last-wins +
batching + client + HTTP), so it measures the operator's own path, not a bare HTTP loop. Before every run the
sandbox is reset, so every run creates every record (updates cost the sandbox the same, but a run should not
depend on the one before). Batch size 1 sends one request per record: it runs on a smaller sample and its rate is
reported per record, not extrapolated to a total time. Every cell is the best of --repeats runs.

    .venv/bin/python tests/benchmarks/bench_purchase_needs.py [--needs 100000] [--sample 5000] [--repeats 2]

Exit status 1 when the operator's defaults are slower than 1.5x the best setting measured.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))
# Set before airflow is imported (by the operator module): an isolated home, no example DAGs.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="bench-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_provider_consentio.demo.stack import SandboxProcess  # noqa: E402

BATCH_SIZES = (1, 100, 1000)
CONCURRENCIES = (1, 4)
UNITS = ("box", "pallet", "kg", "piece", "unknown")


def make_needs(count: int) -> list[dict[str, Any]]:
    """Needs shaped like an ERP's: exact decimals, optional codes, a small metadata object."""
    return [
        {
            "code": f"BENCH-{number:07d}",
            "reference_code": f"PRD-{number % 5000:05d}",
            "start_date": f"2025-03-{1 + number % 20:02d}",
            "end_date": f"2025-03-{1 + number % 20 + number % 5:02d}",
            "quantity": Decimal(number % 10_000) / 8,
            "quantity_unit": UNITS[number % len(UNITS)],
            "external_status": "A",
            "storage_location_code": f"WH{number % 12:02d}",
            "delivery_address_code": f"DEP{number % 40:02d}",
            "tender_kind": "standard" if number % 3 else "promotion",
            "metadata": {"priority": "high" if number % 4 else "normal", "target_price": Decimal("12.50")},
        }
        for number in range(count)
    ]


def upsert_once(sandbox: SandboxProcess, needs: list[dict[str, Any]], batch_size: int, concurrency: int) -> float:
    from airflow_provider_consentio.client import PROCESS_TOKEN_CACHE
    from airflow_provider_consentio.operators.purchase_needs import ConsentioUpsertPurchaseNeedsOperator

    sandbox.admin("POST", "/_sandbox/reset")
    PROCESS_TOKEN_CACHE.clear()  # the reset revoked every token: a stale one would cost each run a 401 and a login
    operator = ConsentioUpsertPurchaseNeedsOperator(
        task_id="bench_upsert", needs=needs, batch_size=batch_size, concurrency=concurrency, outlets=[]
    )
    try:
        started = time.perf_counter()
        summary = operator.execute({})  # no Asset outlets, so no run context is needed
        seconds = time.perf_counter() - started
    finally:
        operator.hook.close()
    # A fast run that lost records would be a wrong answer, not a fast one.
    if summary["created"] != len(needs) or summary["rejected_count"] or summary["invalid_count"]:
        raise RuntimeError(f"batch_size={batch_size} concurrency={concurrency}: unexpected summary {summary}")
    held = sandbox.admin("GET", "/_sandbox/info")["counts"]["purchase_needs"]
    if held != len(needs):
        raise RuntimeError(f"the sandbox holds {held} needs after upserting {len(needs)}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--needs", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5_000, help="records for batch size 1 (one request each)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from airflow_provider_consentio.operators.base.write_operator import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY

    # Per-batch progress lines, logins and the "outside of the Task Runner" warning would bury the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.disable(logging.WARNING)
    needs = make_needs(args.needs)
    default = (DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY)
    # The defaults get a row of their own, measured separately even when they equal a grid setting: sharing its
    # runs would give that setting twice the repeats.
    runs = [(f"{size}x{workers}", size, workers) for size in BATCH_SIZES for workers in CONCURRENCIES]
    runs.append(("defaults", *default))
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-needs-") as tmp:
        # One day of one order: the sandbox's reset regenerates its orders, which this benchmark does not use.
        extra = ("--days", "1", "--orders-per-day", "1")
        with SandboxProcess(Path(tmp), extra_args=extra) as sandbox:
            os.environ["AIRFLOW_CONN_CONSENTIO_DEFAULT"] = sandbox.connection_json()
            upsert_once(sandbox, needs[:2000], *default)  # warm-up: imports, connection pools
            # Interleaved repeats, so a slow spell of the machine does not land on one setting only.
            for _ in range(args.repeats):
                for name, size, workers in runs:
                    sample = needs[: args.sample] if size == 1 else needs
                    seconds = upsert_once(sandbox, sample, size, workers)
                    row = rows.setdefault(name, {"size": size, "workers": workers, "records": len(sample)})
                    row["seconds"] = min(row.get("seconds", float("inf")), seconds)
                    row["rate"] = row["records"] / row["seconds"]

    grid = [name for name, _, _ in runs if name != "defaults"]
    best = max(grid, key=lambda name: rows[name]["rate"])
    print(
        f"\nPurchase-need upsert: ConsentioUpsertPurchaseNeedsOperator.execute() against the sandbox (own process), "
        f"{args.needs:,} needs, best of {args.repeats}; batch size 1 on the first {args.sample:,} only"
    )
    print(f"{'batch':>6} {'concurrency':>11} {'records':>8} {'seconds':>8} {'records/s':>10}  note")
    for name, _, _ in runs:
        row = rows[name]
        notes = ["best"] if name == best else []
        notes += ["operator defaults"] if name == "defaults" else []
        notes += ["sample: rate only"] if row["size"] == 1 else []
        print(
            f"{row['size']:>6} {row['workers']:>11} {row['records']:>8,} {row['seconds']:>8.2f} {row['rate']:>10,.0f}"
            f"  {', '.join(notes)}"
        )
    ratio = rows[best]["rate"] / rows["defaults"]["rate"]
    within = ratio <= 1.5
    print(
        f"defaults (batch_size={default[0]}, concurrency={default[1]}): the best setting ({best}) is "
        f"{ratio:.2f}x their rate; within 1.5x of the best: {'yes' if within else 'NO'}"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
