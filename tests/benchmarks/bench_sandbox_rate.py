"""How fast the sandbox serves orders: GET /order on one core, cold (first encoding) and warm.

The sandbox runs in its own process pinned to one core; this process (the client) is pinned to another when the
machine has one. Each pass reads every order of the data set once, in windows of 1 hour, 1 day or 7 days; the
first pass is cold (each order is encoded to JSON on first serving), the others warm (encoded bytes reused).
Besides wall-clock orders/s it reports orders per second of the sandbox's own CPU time (from /proc), which is the
figure "on one core" means, whatever the client costs (shown once the pass used enough CPU time to measure).
Target: at least 20,000 orders/s.

    .venv/bin/python tests/benchmarks/bench_sandbox_rate.py [--days 20] [--orders-per-day 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_consentio.demo.stack import SandboxProcess  # noqa: E402

TARGET = 20_000
START = date(2025, 1, 1)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def one_pass(http: httpx.Client, headers: dict[str, str], days: int, step: timedelta) -> tuple[int, int]:
    orders = size = 0
    cursor = datetime(START.year, START.month, START.day, tzinfo=UTC)
    end = cursor + timedelta(days=days)
    while cursor < end:
        upper = min(cursor + step, end)
        params = {"from": cursor.isoformat(), "to": upper.isoformat(), "kind": "sale"}
        response = http.get("/order", params=params, headers=headers)
        response.raise_for_status()
        size += len(response.content)
        orders += response.content.count(b'"hash_id"')  # one per order: items carry no hash_id
        cursor = upper
    return orders, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--orders-per-day", type=int, default=10_000)
    parser.add_argument("--warm-passes", type=int, default=2)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_core, client_core = cores[0], cores[-1]
    os.sched_setaffinity(0, {server_core})  # the sandbox inherits this core...
    extra = ("--start", START.isoformat(), "--days", str(args.days), "--orders-per-day", str(args.orders_per_day))
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-sandbox-") as workdir,
        SandboxProcess(Path(workdir), extra_args=extra, start_timeout=900) as sandbox,
    ):
        os.sched_setaffinity(0, {client_core})  # ...and the client moves to another one, if there is one
        pid = sandbox.process.pid  # type: ignore[union-attr]
        info = sandbox.info
        base = f"{sandbox.base_url}/v2/partner/{info['workspace_id']}"
        with httpx.Client(base_url=base, timeout=300) as http:
            token = http.post("/login", json={"api_key": info["api_key"]}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            passes = [("cold", timedelta(days=1))] + [
                ("warm", step)
                for step in (timedelta(hours=1), timedelta(days=1), timedelta(days=7))
                for _ in range(args.warm_passes)
            ]
            for label, step in passes:
                cpu_before, started = cpu_seconds(pid), time.perf_counter()
                orders, size = one_pass(http, headers, args.days, step)
                wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
                rows.append((label, step, orders, size, wall, cpu))

    print(
        f"\nSandbox serving rate: {args.days} days x {args.orders_per_day:,} orders/day, server on core {server_core},"
        f" client on core {client_core}"
    )
    print(f"{'pass':<5} {'window':>8} {'orders':>9} {'MB':>7} {'wall s':>7} {'orders/s':>9} {'server CPU s':>12}"
          f" {'orders/CPU-s':>12} {'MB/s':>6}")  # fmt: skip
    for label, step, orders, size, wall, cpu in rows:
        window = f"{step.days}d" if step.days else f"{step.seconds // 3600}h"
        print(
            f"{label:<5} {window:>8} {orders:>9,} {size / 1e6:>7.1f} {wall:>7.2f} {orders / wall:>9,.0f}"
            f" {cpu:>12.2f} {f'{orders / cpu:,.0f}' if cpu >= 0.05 else '-':>12} {size / 1e6 / wall:>6.0f}"
        )
    worst_wall = min(orders / wall for _, _, orders, _, wall, _ in rows)
    print(f"slowest pass: {worst_wall:,.0f} orders/s wall clock (target >= {TARGET:,}):", end=" ")
    print("PASS" if worst_wall >= TARGET else "FAIL")
    return 0 if worst_wall >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
