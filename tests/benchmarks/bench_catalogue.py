"""Product upsert benchmark: records/s by batch size and concurrency (JSON), and the CSV import at the defaults,
against the sandbox in its own process.

Each run is ConsentioUpsertProductsOperator.execute() on a list of products (load + validation + last-wins +
batching + wire form + HTTP). The sandbox is reset before every run, so every run creates every product. Every
cell is the best of --repeats runs, interleaved so a slow spell of the machine does not land on one setting.

    .venv/bin/python tests/benchmarks/bench_catalogue.py [--products 100000] [--repeats 2]

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

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
if "AIRFLOW_HOME" not in os.environ:  # before airflow is imported: an isolated home
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="bench-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_provider_consentio.demo.stack import SandboxProcess  # noqa: E402

BATCH_SIZES = (100, 1000, 5000)
CONCURRENCIES = (1, 4)


def make_products(count: int) -> list[dict[str, Any]]:
    return [
        {
            "sku": f"SKU-{number:07d}",
            "name": f"Tomates cherry {number}",
            "ean_code": f"84{number:011d}",
            "base_price": Decimal(number % 4000) / 100,
            "price_unit": "kg",
            "sale_units": ["kg", "box"],
            "tags": ["fresh", "bio"],
            "origin": "ES",
        }
        for number in range(count)
    ]


def upsert_once(sandbox: SandboxProcess, products: list[dict[str, Any]], size: int, workers: int, as_: str) -> float:
    from airflow_provider_consentio.client import PROCESS_TOKEN_CACHE
    from airflow_provider_consentio.operators.catalogue import ConsentioUpsertProductsOperator

    sandbox.admin("POST", "/_sandbox/reset")
    PROCESS_TOKEN_CACHE.clear()  # the reset revoked every token
    operator = ConsentioUpsertProductsOperator(
        task_id="bench", records=products, batch_size=size, concurrency=workers, send_as=as_, outlets=[]
    )
    try:
        started = time.perf_counter()
        summary = operator.execute({})
        seconds = time.perf_counter() - started
    finally:
        operator.hook.close()
    held = sandbox.admin("GET", "/_sandbox/info")["counts"]["products"]
    if summary["saved"] != len(products) or held != len(products):
        raise RuntimeError(f"{size}x{workers} {as_}: saved {summary['saved']}, the sandbox holds {held}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from airflow_provider_consentio.operators.base.write_operator import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.disable(logging.WARNING)
    products = make_products(args.products)
    default = (DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY)
    runs = [(f"{size}x{workers}", size, workers, "json") for size in BATCH_SIZES for workers in CONCURRENCIES]
    runs += [("defaults", *default, "json"), ("defaults csv", *default, "csv")]
    best_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as tmp:
        extra = ("--days", "1", "--orders-per-day", "1")  # the reset regenerates orders this does not use
        with SandboxProcess(Path(tmp), extra_args=extra) as sandbox:
            os.environ["AIRFLOW_CONN_CONSENTIO_DEFAULT"] = sandbox.connection_json()
            upsert_once(sandbox, products[:2000], *default, "json")  # warm-up
            for _ in range(args.repeats):
                for name, size, workers, as_ in runs:
                    seconds = upsert_once(sandbox, products, size, workers, as_)
                    best_seconds[name] = min(best_seconds.get(name, float("inf")), seconds)

    rate = {name: args.products / seconds for name, seconds in best_seconds.items()}
    grid = [name for name, *_ in runs if not name.startswith("defaults")]
    best = max(grid, key=rate.__getitem__)
    print(
        f"\nProduct upsert: ConsentioUpsertProductsOperator.execute() against the sandbox (own process), "
        f"{args.products:,} products, best of {args.repeats}"
    )
    print(f"{'batch':>6} {'concurrency':>11} {'body':>5} {'seconds':>8} {'records/s':>10}  note")
    for name, size, workers, as_ in runs:
        note = "best" if name == best else ("operator defaults" if name.startswith("defaults") else "")
        print(f"{size:>6} {workers:>11} {as_:>5} {best_seconds[name]:>8.2f} {rate[name]:>10,.0f}  {note}")
    ratio = rate[best] / rate["defaults"]
    print(
        f"defaults (batch_size={default[0]}, concurrency={default[1]}): the best setting ({best}) is {ratio:.2f}x "
        f"their rate; within 1.5x of the best: {'yes' if ratio <= 1.5 else 'NO'}"
    )
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
