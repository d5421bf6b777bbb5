"""The workspace's request budget against a rate-limited API: K concurrent workers send M requests each to the
sandbox limited to RATE requests/s with a burst of BURST (its leaky bucket answers 429 + Retry-After).

Without the budget every worker finds the limit by hitting it and backs off on its own (the client honours
Retry-After); with it they draw from one budget of the same rate and burst. Each line gives the 429s the sandbox
answered (its own count), the wall time and the wall time over the ideal (requests / rate).

    .venv/bin/python tests/benchmarks/bench_rate_budget.py [--workers 8] [--requests 40] [--rate 20] [--burst 40]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_consentio.client import (  # noqa: E402
    ConsentioClient,
    ConsentioSettings,
    RateBudget,
    RateLimit,
    RetryPolicy,
)
from airflow_provider_consentio.sandbox.config import SandboxConfig  # noqa: E402
from airflow_provider_consentio.sandbox.server import SandboxServer  # noqa: E402


def run(server: SandboxServer, workers: int, requests: int, budget: RateBudget | None) -> tuple[int, float]:
    """(429s answered, wall seconds) for ``workers`` threads sending ``requests`` each."""
    server.sandbox.stats.clear()
    # Enough retries that no worker gives up: the comparison is of 429s and time, not of failures.
    settings = ConsentioSettings(
        workspace_id=server.workspace_id, base_url=server.base_url, retry=RetryPolicy(max_retries=100)
    )

    def work() -> None:
        with ConsentioClient(settings, rate_budget=budget) as client:
            for _ in range(requests):
                client.get_export_template_methods()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    refused = sum(count for key, count in server.sandbox.stats.requests.items() if key.endswith(" 429"))
    return refused, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="per worker")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=40)
    args = parser.parse_args()
    total = args.workers * args.requests
    ideal = total / args.rate
    config = SandboxConfig(days=1, rate_limit=args.rate, rate_burst=args.burst)
    with SandboxServer(config) as server:
        for name, budget in (
            ("without budget", None),
            ("with budget   ", RateBudget(RateLimit(args.rate, args.burst), "bench:rate-budget")),
        ):
            server.sandbox.reset()  # an empty bucket for each run
            refused, elapsed = run(server, args.workers, args.requests, budget)
            print(
                f"{name}: {args.workers} workers x {args.requests} = {total} requests at {args.rate:g}/s burst "
                f"{args.burst}: {refused} 429s ({100 * refused / (total + refused):.1f}% of sent), "
                f"{elapsed:.1f}s wall, {elapsed / ideal:.2f}x the ideal {ideal:.1f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
