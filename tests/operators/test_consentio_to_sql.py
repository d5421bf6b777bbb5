"""ConsentioToSqlOperator against real Postgres (the Debian package, `make services`) and a SQLite file.

Most tests drive ``op.execute(context)`` directly (no DAG run is needed to read files into tables); one dag.test runs
the export by period and the load together for templating, XCom and the Assets. The export files are the sandbox's
own bytes (what the export operators write, as tests/operators/test_export_orders.py shows).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_consentio.models.jsonwire import loads
from airflow_provider_consentio.sandbox import SandboxConfig
from airflow_provider_consentio.sandbox.data import recompute_totals

REPO = Path(__file__).resolve().parents[2]
ORDER_COLUMNS = "id, hash_id, status, counterpart_id, currency, price, created_at, updated_at"
ITEM_COLUMNS = "order_id, item_id, line, sku, amount, price, total_price, served_amount"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    from harness.services import PostgresServer, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.fail("Postgres is not installed: run `make services`")
    server = PostgresServer(tmp_path_factory.mktemp("postgres-log")).start()
    yield server
    server.stop()


class Warehouse:
    """The test's database: an Airflow connection `warehouse` and a way to read it back."""

    def __init__(self, kind: str, connect: Any, connection: str):
        self.kind, self._connect, self.connection = kind, connect, connection

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(self._connect()) as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
            conn.commit()
            return rows


@pytest.fixture(params=["postgres", "sqlite"])
def warehouse(request, tmp_path, monkeypatch):
    if request.param == "postgres":
        import psycopg2

        server = request.getfixturevalue("postgres")
        name = f"w{uuid.uuid4().hex[:10]}"
        server.create_database(name)
        db = Warehouse("postgres", lambda: psycopg2.connect(server.dsn(name)), server.airflow_connection(name))
    else:
        import sqlite3

        path = tmp_path / "warehouse.db"
        db = Warehouse("sqlite", lambda: sqlite3.connect(path), json.dumps({"conn_type": "sqlite", "host": str(path)}))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", db.connection)
    return db


def load(input_path: Any, **options: Any) -> dict[str, Any]:
    from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

    operator = ConsentioToSqlOperator(task_id="load", input_path=input_path, sql_conn_id="warehouse", **options)
    # Airflow's own accessor: Airflow 3.1's Assets do not hash (they hold their extra dict), so no plain dict.
    events = OutletEventAccessors()
    summary = operator.execute({"outlet_events": events})
    summary["asset_events"] = {asset.name: events[asset].extra for asset in operator.outlets}
    return summary


def write_lines(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def instant(value: Any) -> datetime:
    """A timestamp column's value (Postgres: a datetime; SQLite: UTC text) as an aware datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def table_orders(db: Warehouse, prefix: str = "") -> dict[int, tuple[Any, ...]]:
    rows = db.query(f"SELECT {ORDER_COLUMNS} FROM {prefix}orders")
    return {row[0]: (*row[1:5], str(row[5]), instant(row[6]), instant(row[7])) for row in rows}


def table_items(db: Warehouse, prefix: str = "") -> dict[tuple[int, int], tuple[Any, ...]]:
    rows = db.query(f"SELECT {ITEM_COLUMNS} FROM {prefix}order_items")
    return {(row[0], row[1]): (row[2], row[3], *(str(value) for value in row[4:])) for row in rows}


def truth_orders(stored: list[Any]) -> dict[int, tuple[Any, ...]]:
    orders = [loads(order.json) for order in stored]
    return {
        order["id"]: (
            order["hash_id"],
            order["status"],
            order["counterpart_id"],
            order["currency"],
            str(order["price"]),
            instant(order["created_at"].replace("Z", "+00:00")),
            instant(order["updated_at"].replace("Z", "+00:00")),
        )
        for order in orders
    }


def truth_items(stored: list[Any]) -> dict[tuple[int, int], tuple[Any, ...]]:
    return {
        (order["id"], item["id"]): (
            line,
            item["sku"],
            *(str(item[name]) for name in ("amount", "price", "total_price", "served_amount")),
        )
        for order in (loads(stored_order.json) for stored_order in stored)
        for line, item in enumerate(order["items"], start=1)
    }


def test_ten_thousand_orders_then_two_thousand_edited_equal_the_ground_truth(sandbox, warehouse, tmp_path):
    state = sandbox.sandbox.state
    sandbox.sandbox.reset(SandboxConfig(seed=42, orders_per_day=125))
    stored = state.window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC), "sale", None)[:10_000]
    assert len(stored) == 10_000
    first = write_lines(tmp_path / "first.jsonl", [order.json for order in stored])

    summary = load(first)
    assert summary["tables"]["orders"] == {"inserted": 10_000, "updated": 0, "unchanged": 0, "rejected": 0}
    assert table_orders(warehouse) == truth_orders(stored)
    assert table_items(warehouse) == truth_items(stored)

    # 2,000 accepted orders edited (one more unit of an item); in 200 of them an item is removed as well.
    accepted = [order for order in stored if order.data["status"] == "accepted"][:2000]
    for number, order in enumerate(accepted):
        state.edit(order.data["hash_id"])
        if number % 10 == 0 and len(order.data["items"]) > 1:
            order.data["items"].pop(0)
            recompute_totals(order.data)
            order.changed()
    edited = write_lines(tmp_path / "edited.jsonl", [order.json for order in accepted])
    summary = load(edited)
    assert summary["tables"]["orders"] == {"inserted": 0, "updated": 2000, "unchanged": 0, "rejected": 0}
    assert summary["tables"]["order_items"]["deleted"] > summary["tables"]["order_items"]["updated"]
    assert table_orders(warehouse) == truth_orders(stored)
    assert table_items(warehouse) == truth_items(stored)

    # A rerun, then the older file loaded last: nothing changes.
    assert load(edited)["tables"]["orders"] == {"inserted": 0, "updated": 0, "unchanged": 2000, "rejected": 0}
    older = load(first)["tables"]
    assert older["orders"] == {"inserted": 0, "updated": 0, "unchanged": 10_000, "rejected": 0}
    assert older["order_items"]["inserted"] == older["order_items"]["updated"] == older["order_items"]["deleted"] == 0
    assert table_orders(warehouse) == truth_orders(stored)
    assert table_items(warehouse) == truth_items(stored)


EXACT = (
    b'{"id":123456789012345678,"hash_id":"exact","status":"accepted","counterpart_id":"C-1","currency":"EUR",'
    b'"price":0.30000000000000004,"created_at":"2025-03-10T00:00:00Z","updated_at":"2025-03-10T08:00:00.123456Z",'
    b'"new_field":{"deep":1.10},"items":[{"id":987654321098765432,"sku":"S","amount":123456789012345678,'
    b'"price":"0.10","total_price":12345678901234567.8}]}'
)


def test_eighteen_digit_integers_and_long_decimals_come_back_exactly(warehouse, tmp_path):
    summary = load(write_lines(tmp_path / "exact.jsonl", [EXACT]))
    assert summary["tables"]["orders"]["inserted"] == 1
    [(order_id, price, updated_at)] = warehouse.query("SELECT id, price, updated_at FROM orders")
    assert order_id == 123456789012345678
    assert str(price) == "0.30000000000000004"
    assert instant(updated_at) == datetime(2025, 3, 10, 8, 0, 0, 123456, tzinfo=UTC)
    [(item_id, amount, unit_price, total)] = warehouse.query(
        "SELECT item_id, amount, price, total_price FROM order_items"
    )
    assert (item_id, str(amount), str(unit_price), str(total)) == (
        987654321098765432,
        "123456789012345678",
        "0.10",
        "12345678901234567.8",
    )
    # The raw column keeps every field, the unknown ones too, every digit.
    if warehouse.kind == "postgres":
        [(raw_price_text, deep)] = warehouse.query("SELECT raw->>'price', raw->'new_field'->>'deep' FROM orders")
        assert (raw_price_text, deep) == ("0.30000000000000004", "1.10")
    else:
        [(raw,)] = warehouse.query("SELECT raw FROM orders")
        assert raw.encode() == EXACT


def order_line(order_id: int, **fields: Any) -> bytes:
    record = {"id": order_id, "hash_id": f"h{order_id}", "status": "accepted", "updated_at": "2025-03-10T00:00:00Z"}
    record.update(fields)
    return json.dumps({key: value for key, value in record.items() if value is not None}).encode()


def test_bad_rows_are_named_and_over_max_rejected_nothing_is_written(warehouse, tmp_path):
    from airflow_provider_consentio.operators.base.common import ConsentioInvalidRecordsError

    lines = [
        order_line(1),
        order_line(2, id=None),  # no key
        order_line(3, price="12,50"),  # not a decimal
        order_line(4, updated_at="yesterday"),  # not a timestamp
        order_line(5, items=[{"id": 1, "amount": "lots"}]),  # an item's value
        order_line(6, items=[{"sku": "no-id"}]),  # an item without its key
        order_line(7),
    ]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ConsentioInvalidRecordsError) as failure:
        load(path, max_rejected=4)
    message = str(failure.value)
    for line, key, reason in [
        (2, "id=?", "has no id"),
        (3, "id=3", "$.price"),
        (4, "id=4", "$.updated_at"),
        (5, "id=5", "$.items[0].amount"),
        (6, "id=6", "$.items[0] has no id"),
    ]:
        assert f"{path} line {line} ({key}): " in message and reason in message, (line, message)
    assert "5 of 7 records cannot be loaded (max_rejected=4); nothing was written" in message
    assert warehouse.query("SELECT COUNT(*) FROM orders") == [(0,)]

    summary = load(path, max_rejected=5)
    assert summary["tables"]["orders"] == {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 5}
    assert summary["rejected_count"] == 5 and len(summary["rejected"]) == 5
    assert sorted(row[0] for row in warehouse.query("SELECT id FROM orders")) == [1, 7]


def test_tables_prefix_schema_user_columns_and_create_tables_off(warehouse, tmp_path):
    from airflow_provider_consentio.errors import ConsentioConfigError

    path = write_lines(tmp_path / "v1.jsonl", [order_line(1, currency="EUR")])
    schema = None
    if warehouse.kind == "postgres":
        schema = "staging"
        warehouse.query("CREATE SCHEMA staging")
    with pytest.raises(ConsentioConfigError, match="does not exist"):
        load(path, table_prefix="erp_", schema=schema, create_tables=False)
    load(path, table_prefix="erp_", schema=schema)
    table = f"{schema}.erp_orders" if schema else "erp_orders"
    warehouse.query(f"ALTER TABLE {table} ADD COLUMN erp_number TEXT")
    warehouse.query(f"UPDATE {table} SET erp_number = 'ERP-1'")
    newer = write_lines(tmp_path / "v2.jsonl", [order_line(1, currency="USD", updated_at="2025-03-11T00:00:00Z")])
    summary = load(newer, table_prefix="erp_", schema=schema, create_tables=False)
    assert summary["tables"]["orders"]["updated"] == 1
    assert warehouse.query(f"SELECT currency, erp_number FROM {table}") == [("USD", "ERP-1")]
    assert set(summary["asset_events"]) == {
        f"consentio_sql__warehouse__{schema + '.' if schema else ''}erp_{name}" for name in ("orders", "order_items")
    }


def test_the_other_resources_load_into_their_tables(warehouse, tmp_path):
    need = {
        "id": 1,
        "code": "PN-1",
        "reference_code": "SKU-1",
        "start_date": "2025-03-10",
        "end_date": "2025-03-12",
        "quantity": 2.50,
        "quantity_unit": "box",
        "external_status": "A",
        "metadata": {"k": "v"},
        "updated_at": "2025-03-01T00:00:00Z",
    }
    cases = {
        "purchase_needs": (need, "SELECT code, quantity, start_date FROM purchase_needs"),
        "products": ({"sku": "SKU-1", "name": "Apples", "base_price": "1.10"}, "SELECT sku, base_price FROM products"),
        "clients": ({"client_external_id": "C-1", "client_name": "Ana"}, "SELECT client_external_id FROM clients"),
        "addresses": ({"external_id": "A-1", "latitude": 40.41}, "SELECT external_id, latitude FROM addresses"),
    }
    for resource, (record, sql) in cases.items():
        path = write_lines(tmp_path / f"{resource}.jsonl", [json.dumps(record).encode()])
        assert load(path, resource=resource)["tables"][resource]["inserted"] == 1
        [row] = warehouse.query(sql)
        assert [str(value) for value in row] == [str(record[name]) for name in sql[7 : sql.index(" FROM")].split(", ")]


KILLED_LOAD = r"""
import sys
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

ConsentioToSqlOperator(task_id="load", input_path=sys.argv[1], sql_conn_id="warehouse").execute(
    {"outlet_events": OutletEventAccessors()}
)
print("committed")
"""


def test_a_load_killed_inside_its_transaction_leaves_the_tables_as_before(sandbox, postgres, tmp_path, monkeypatch):
    import psycopg2

    name = f"w{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres.airflow_connection(name))
    db = Warehouse("postgres", lambda: psycopg2.connect(postgres.dsn(name)), postgres.airflow_connection(name))
    state = sandbox.sandbox.state
    stored = state.window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 20, tzinfo=UTC), "sale", "accepted")
    load(write_lines(tmp_path / "first.jsonl", [order.json for order in stored]))
    before = table_orders(db), table_items(db)
    for order in stored:
        state.edit(order.data["hash_id"])
    edited = write_lines(tmp_path / "edited.jsonl", [order.json for order in stored])

    # Hold the items table: the load upserts the orders, then waits for it inside its transaction.
    blocker = psycopg2.connect(postgres.dsn(name))
    blocker.cursor().execute("LOCK TABLE order_items IN SHARE MODE")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOAD, edited], env=os.environ.copy(), start_new_session=True, cwd=REPO
    )
    try:
        watcher = psycopg2.connect(postgres.dsn(name))
        watcher.autocommit = True
        waiting = _wait_for_waiting_writer(watcher, child)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)
    blocker.rollback()  # the killed load's backend wakes up, finds its client gone and rolls back
    _wait_until_gone(watcher, waiting)
    blocker.close()
    watcher.close()
    assert (table_orders(db), table_items(db)) == before


def _wait_for_waiting_writer(watcher: Any, child: subprocess.Popen[bytes]) -> int:
    """The backend of the load once it has written the orders and waits for the items table (a blocking wait on
    Postgres' lock queue, asked again as soon as the answer changes: pg_blocking_pids)."""
    import time

    cursor = watcher.cursor()
    deadline = time.monotonic() + 120
    while True:
        assert child.poll() is None, "the load ended before it reached the items table"
        assert time.monotonic() < deadline, "the load never waited for the items table with the orders written"
        cursor.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'order_items'"
            " AND NOT l.granted AND EXISTS (SELECT 1 FROM pg_locks o JOIN pg_class oc ON oc.oid = o.relation"
            " WHERE o.pid = l.pid AND oc.relname = 'orders' AND o.mode = 'RowExclusiveLock' AND o.granted)"
        )
        row = cursor.fetchone()
        if row:
            return int(row[0])
        cursor.execute("SELECT pg_sleep(0.05)")  # not there yet: ask again (the state itself, every 50 ms)


def _wait_until_gone(watcher: Any, pid: int) -> None:
    cursor = watcher.cursor()
    while True:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        if cursor.fetchone()[0] == 0:
            return
        cursor.execute("SELECT pg_sleep(0.05)")


def test_export_by_period_into_sql_under_dag_test(run_dag, sandbox, tmp_path, monkeypatch):
    import sqlite3

    db_path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(db_path)}))
    result = run_dag("t_export_days_into_sql", data_dir=str(tmp_path / "data"))
    assert result.succeeded, result.task_states
    stored = sandbox.sandbox.state.window(
        datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC), "sale", None
    )
    summary = result.xcoms["load"]
    assert summary["files"] == 3
    assert summary["tables"]["orders"] == {"inserted": len(stored), "updated": 0, "unchanged": 0, "rejected": 0}
    db = Warehouse("sqlite", lambda: sqlite3.connect(db_path), "")
    assert table_orders(db, "wh_") == truth_orders(stored)
    assert table_items(db, "wh_") == truth_items(stored)
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = {
            asset.name: event.extra
            for event, asset in session.query(AssetEvent, AssetModel).join(
                AssetModel, AssetEvent.asset_id == AssetModel.id
            )
            if asset.name.startswith("consentio_sql__warehouse__wh_")
        }
    assert events["consentio_sql__warehouse__wh_orders"]["inserted"] == len(stored)
    assert events["consentio_sql__warehouse__wh_order_items"]["inserted"] == len(truth_items(stored))


def test_a_nul_character_is_named_on_postgres_instead_of_failing_the_copy(warehouse, tmp_path):
    path = write_lines(tmp_path / "nul.jsonl", [order_line(1), order_line(2, status="a\u0000b")])
    if warehouse.kind == "sqlite":  # SQLite stores it
        assert load(path)["tables"]["orders"]["inserted"] == 2
        return
    summary = load(path, max_rejected=1)
    assert summary["rejected"] == [
        f"{path} line 2 (id=2): holds the character U+0000, which Postgres cannot store in text or JSONB"
    ]
    assert warehouse.query("SELECT id FROM orders") == [(1,)]


def test_a_key_twice_in_one_first_load_keeps_its_newest_version(warehouse, tmp_path):
    newer = order_line(1, currency="USD", updated_at="2025-03-11T00:00:00Z")
    path = write_lines(tmp_path / "twice.jsonl", [order_line(2), newer, order_line(1, currency="EUR")])
    assert load(path)["tables"]["orders"] == {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    assert warehouse.query("SELECT id, currency FROM orders ORDER BY id") == [(1, "USD"), (2, None)]
