"""SQL transfer benchmark: a year of per-day order files (2,000 orders a day) into Postgres (`make services`).

Measures, each into fresh, empty tables of one throwaway Postgres cluster:
* operator: ConsentioToSqlOperator.execute() over the 365 day files (read, type, COPY into staging, one merge);
* floor: the same rows (prepared beforehand, not timed) COPY'd straight into the same tables: the least a load can do;
* hand-written: what a user writes in a PythonOperator: json.loads per line, DbApiHook.insert_rows(replace=True) per
  file into orders and items. It is slow, so it runs on the first ``--hand-days`` days and its rate is extrapolated
  (the table says so).
Operator and floor alternate ``--repeats`` times and the best of each counts. Prints rows/s (orders + items) and
the ratios (goals: operator <= 1.5x the floor, hand-written >= 5x the operator).

    .venv/bin/python tests/benchmarks/bench_sql_transfer.py [--days 365] [--per-day 2000] [--hand-days 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2]))
# The harness lives beside the tests, not in the package: a script run by path finds it through this.
sys.path.insert(0, str(HERE.parents[1]))

START = date(2025, 1, 1)


def write_day_files(folder: Path, days: int, per_day: int) -> list[str]:
    """The day files as the export by period writes them (the sandbox's exact bytes), generated once and kept."""
    from airflow_provider_consentio.sandbox.config import SandboxConfig
    from airflow_provider_consentio.sandbox.data import Generator
    from airflow_provider_consentio.sandbox.wire import encode

    folder.mkdir(parents=True, exist_ok=True)
    generator = Generator(SandboxConfig(seed=7, orders_per_day=per_day, days=1))
    paths, order_id = [], 100_000
    for offset in range(days):
        day = START + timedelta(days=offset)
        path = folder / f"{day}.jsonl"
        paths.append(str(path))
        if path.exists():
            order_id += per_day
            continue
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        with path.open("wb") as out:
            for number in range(per_day):
                created = midnight + timedelta(seconds=number * 86400 // per_day)
                out.write(encode(generator.order(order_id, created, "sale", "accepted")) + b"\n")
                order_id += 1
    return paths


def fresh_database(server: Any, name: str) -> str:
    server.create_database(name)
    os.environ["AIRFLOW_CONN_BENCH"] = server.airflow_connection(name)
    return name


def count_rows(server: Any, name: str, prefix: str = "") -> tuple[int, int]:
    import psycopg2

    with closing(psycopg2.connect(server.dsn(name))) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT count(*) FROM {prefix}orders), (SELECT count(*) FROM {prefix}order_items)")
        orders, items = cursor.fetchone()
        return int(orders), int(items)


def run_operator(paths: list[str]) -> float:
    from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

    operator = ConsentioToSqlOperator(task_id="load", input_path=paths, sql_conn_id="bench")
    started = time.perf_counter()
    operator.execute({"outlet_events": defaultdict(SimpleNamespace)})  # type: ignore[arg-type]
    return time.perf_counter() - started


def run_floor(server: Any, name: str, paths: list[str]) -> float:
    """COPY the rows (built before the clock runs, day by day) straight into the tables the operator created."""
    import psycopg2

    from airflow_provider_consentio.transfers.dialects import SqlDialect
    from airflow_provider_consentio.transfers.sql_load import RowBuilder
    from airflow_provider_consentio.transfers.tables import table_for

    table = table_for("orders")
    assert table.child is not None
    builder = RowBuilder(table, SqlDialect(SimpleNamespace(dialect_name="postgresql")))
    order_columns = ", ".join(f'"{name}"' for name in table.all_columns)
    item_columns = ", ".join(f'"{name}"' for name in table.child.all_columns)
    elapsed = 0.0
    with closing(psycopg2.connect(server.dsn(name))) as conn, conn.cursor() as cursor:
        for path in paths:
            orders, items = [], []
            with open(path, "rb") as lines:
                for line in lines:
                    row, children, _ = builder.rows(line.strip())
                    orders.append("\t".join(row) + "\n")
                    items.extend("\t".join(child) + "\n" for child in children)
            order_text, item_text = io.BytesIO("".join(orders).encode()), io.BytesIO("".join(items).encode())
            started = time.perf_counter()
            cursor.copy_expert(f"COPY orders ({order_columns}) FROM STDIN", order_text)
            cursor.copy_expert(f"COPY order_items ({item_columns}) FROM STDIN", item_text)
            conn.commit()
            elapsed += time.perf_counter() - started
    return elapsed


def truncate(server: Any, name: str) -> None:
    import psycopg2

    with closing(psycopg2.connect(server.dsn(name))) as conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE orders, order_items")
        conn.commit()


def run_hand_written(paths: list[str]) -> float:
    """A PythonOperator's load as users write it: json.loads each line, DbApiHook.insert_rows(replace=True) per file
    into tables like the operator's (same columns, made by the operator's own DDL, prefixed ``hand_``)."""
    from airflow.sdk import BaseHook

    from airflow_provider_consentio.transfers.dialects import SqlDialect
    from airflow_provider_consentio.transfers.sql_load import TableLoader
    from airflow_provider_consentio.transfers.tables import table_for

    hook = BaseHook.get_connection("bench").get_hook(hook_params={"log_sql": False})
    table = table_for("orders")
    assert table.child is not None
    with closing(hook.get_conn()) as conn:
        TableLoader(table, SqlDialect(hook), prefix="hand_").ensure_tables(
            conn, create=True, log=SimpleNamespace(info=lambda *args: None)
        )
    order_fields = [column.path for column in table.columns]
    item_fields = [column.path for column in table.child.columns]
    started = time.perf_counter()
    for path in paths:
        with open(path, encoding="utf-8") as lines:
            orders = [(json.loads(line, parse_float=Decimal), line.strip()) for line in lines if line.strip()]
        hook.insert_rows(
            "hand_orders",
            [(*(order.get(field) for field in order_fields), raw) for order, raw in orders],
            target_fields=list(table.all_columns),
            replace=True,
            replace_index=list(table.key),
        )
        hook.insert_rows(
            "hand_order_items",
            [
                (order["id"], line, *(item.get(field) for field in item_fields))
                for order, _ in orders
                for line, item in enumerate(order["items"], start=1)
            ],
            target_fields=list(table.child.all_columns),
            replace=True,
            replace_index=list(table.child.key),
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--hand-days", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-sql-airflow-"))

    from harness.services import PostgresServer

    folder = Path(tempfile.gettempdir()) / f"consentio-bench-sql-{args.days}x{args.per_day}"
    began = time.perf_counter()
    paths = write_day_files(folder, args.days, args.per_day)
    print(f"{len(paths)} day files in {folder} ({time.perf_counter() - began:.0f}s to generate or find)")
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-sql-log-"))).start()
    try:
        name = fresh_database(server, "bench_operator")
        operator_times, floor_times, rerun_seconds = [], [], 0.0
        for repeat in range(args.repeats):  # interleaved, best of each: the machine is shared
            truncate(server, name) if repeat else None
            operator_times.append(run_operator(paths))
            orders, items = count_rows(server, name)
            if repeat == 0:
                rerun_seconds = run_operator(paths)
            truncate(server, name)
            floor_times.append(run_floor(server, name, paths))
            assert count_rows(server, name) == (orders, items)
        operator_seconds, floor_seconds = min(operator_times), min(floor_times)
        rows = orders + items
        fresh_database(server, "bench_hand")
        hand_paths = paths[: args.hand_days]
        hand_seconds = run_hand_written(hand_paths)
        hand_rows = sum(count_rows(server, "bench_hand", "hand_"))
    finally:
        server.stop()

    def line(label: str, count: int, seconds: float, note: str = "") -> str:
        return f"{label:<34} {count:>10,} {seconds:>9.1f} {count / seconds:>12,.0f}  {note}"

    hand_rate = hand_rows / hand_seconds
    operator_rate = rows / operator_seconds
    print(f"\n{len(paths)} days x {args.per_day} orders: {orders:,} orders + {items:,} items = {rows:,} rows")
    print(f"{'load':<34} {'rows':>10} {'seconds':>9} {'rows/s':>12}")
    print(line("operator (first load)", rows, operator_seconds, f"(best of {len(operator_times)})"))
    print(line("operator (rerun: all unchanged)", rows, rerun_seconds))
    print(line("floor: COPY into the tables", rows, floor_seconds, f"(best of {len(floor_times)}; rows built untimed)"))
    print(line("hand-written insert_rows", hand_rows, hand_seconds, f"(first {len(hand_paths)} days only)"))
    print(f"\noperator / floor time: {operator_seconds / floor_seconds:.2f}x (goal <= 1.5x)")
    print(f"operator / hand-written speed: {operator_rate / hand_rate:.1f}x (goal >= 5x)")
    print(f"hand-written, whole year extrapolated: {rows / hand_rate / 60:.0f} min")


if __name__ == "__main__":
    main()
