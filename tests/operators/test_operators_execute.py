"""Each operator's main path through ``execute()`` against the in-process sandbox: no metadata DB, no DAG run.

These run in `make unit`. The same operators' dag.test() tests (beside this file) cover what needs Airflow: templates,
XCom, Asset events stored, retries.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pendulum
from airflow.sdk import Asset

from airflow_provider_consentio.models.jsonwire import loads, split_array
from airflow_provider_consentio.operators.catalogue import (
    ConsentioExportProductsOperator,
    ConsentioUpsertProductsOperator,
)
from airflow_provider_consentio.operators.catalogue_clients import (
    ConsentioExportClientsOperator,
    ConsentioUpsertClientsOperator,
)
from airflow_provider_consentio.operators.orders import (
    ConsentioEditedOrdersOperator,
    ConsentioExportOrdersOperator,
    ConsentioMarkOrdersSeenOperator,
    ConsentioPrepareOrderOperator,
    ConsentioSyncExternalOrdersOperator,
)
from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator
from airflow_provider_consentio.operators.promoted_orders import ConsentioCreatePromotedOrdersOperator
from airflow_provider_consentio.operators.purchase_needs import (
    ConsentioExportPurchaseNeedsOperator,
    ConsentioUpsertPurchaseNeedsOperator,
)

MARCH_10 = ("2025-03-10T00:00:00Z", "2025-03-11T00:00:00Z")


def admin(sandbox, method: str, path: str, **kwargs):
    response = httpx.request(method, sandbox.base_url + path, timeout=60, **kwargs)
    response.raise_for_status()
    return response.content


def truth_lines(sandbox, start: str, end: str, status: str | None = None) -> list[bytes]:
    params = {"from": start, "to": end, "kind": "sale", **({"status": status} if status else {})}
    return [bytes(element) for element in split_array(admin(sandbox, "GET", "/_sandbox/orders", params=params))[1]]


def test_export_orders_writes_the_window_byte_for_byte_and_describes_its_asset_event(sandbox, execute, tmp_path):
    out = tmp_path / "day.jsonl"
    asset = Asset("consentio_test_orders")
    operator = ConsentioExportOrdersOperator(task_id="export", output_path=str(out), outlets=[asset])
    summary, events = execute(operator, interval=MARCH_10)
    truth = truth_lines(sandbox, *MARCH_10)
    assert len(truth) > 10 and out.read_bytes().splitlines() == truth
    assert summary["count"] == len(truth) and summary["window_start"] == "2025-03-10T00:00:00+00:00"
    assert events[asset].extra["count"] == len(truth)
    assert events[asset].extra["workspace_id"] == sandbox.workspace_id


def test_export_by_period_writes_one_exact_file_per_day(sandbox, execute, tmp_path):
    operator = ConsentioExportOrdersByPeriodOperator(
        task_id="export",
        output_path=str(tmp_path / "{day}.jsonl"),
        start="2025-03-10T00:00:00Z",
        end="2025-03-13T00:00:00Z",
    )
    execute(operator)
    for day in ("10", "11", "12"):
        start, end = f"2025-03-{day}T00:00:00Z", f"2025-03-{int(day) + 1}T00:00:00Z"
        assert (tmp_path / f"2025-03-{day}.jsonl").read_bytes().splitlines() == truth_lines(sandbox, start, end)


def test_references_are_pushed_and_a_rerun_sends_the_same_state(sandbox, execute):
    hash_ids = [loads(line)["hash_id"] for line in truth_lines(sandbox, *MARCH_10, status="accepted")[:5]]
    references = [
        {"hash_id": h, "external_id": f"ERP-{n}", "external_status": "imported"} for n, h in enumerate(hash_ids)
    ]
    for _ in range(2):
        execute(ConsentioSyncExternalOrdersOperator(task_id="sync", references=references))
    stored = loads(admin(sandbox, "GET", "/_sandbox/state"))["external_refs"]
    assert {h: stored[h] for h in hash_ids} == {
        h: {"external_id": f"ERP-{n}", "external_status": "imported"} for n, h in enumerate(hash_ids)
    }


def test_an_edit_is_fetched_then_marked_seen_and_not_fetched_again(sandbox, execute, tmp_path):
    hash_id = loads(truth_lines(sandbox, *MARCH_10, status="accepted")[0])["hash_id"]
    admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit", json={"at": "2030-01-02T00:00:00Z"})
    edited = ConsentioEditedOrdersOperator(
        task_id="edited", output_path=str(tmp_path / "edits.jsonl"), since="2030-01-01T00:00:00Z"
    )
    summary, _ = execute(edited)
    assert [order["hash_id"] for order in summary["orders"]] == [hash_id]
    execute(ConsentioMarkOrdersSeenOperator(task_id="seen", orders=summary["orders"]))
    assert hash_id not in loads(admin(sandbox, "GET", "/_sandbox/state"))["pending_edits"]
    again, _ = execute(edited)
    assert again["orders"] == []


def test_prepare_moves_an_order_to_prepared(sandbox, execute):
    hash_id = loads(truth_lines(sandbox, *MARCH_10, status="accepted")[0])["hash_id"]
    execute(ConsentioPrepareOrderOperator(task_id="prepare", hash_ids=[hash_id]))
    assert hash_id in loads(admin(sandbox, "GET", "/_sandbox/state"))["prepared"]


def test_purchase_needs_upserted_then_exported_keep_their_exact_quantities(sandbox, execute, tmp_path):
    needs = [
        {
            "code": f"PN-{n}",
            "reference_code": "PRD-00001",
            "start_date": "2025-03-01",
            "end_date": "2025-03-02",
            "quantity": Decimal("0.30000000000000004") + n,
            "quantity_unit": "kg",
            "external_status": "A",
        }
        for n in range(3)
    ]
    execute(ConsentioUpsertPurchaseNeedsOperator(task_id="upsert", needs=needs))
    out = tmp_path / "needs.jsonl"
    export = ConsentioExportPurchaseNeedsOperator(
        task_id="export", output_path=str(out), from_date="2025-03-01", to_date="2025-03-02"
    )
    execute(export)
    exported = {record["code"]: record for record in map(loads, out.read_bytes().splitlines())}
    assert [Decimal(str(exported[f"PN-{n}"]["quantity"])) for n in range(3)] == [need["quantity"] for need in needs]


def test_products_upserted_then_exported_by_their_change_window(sandbox, execute, tmp_path):
    products = [
        {"sku": f"SKU-X{n}", "name": f"Peach {n}", "base_price": Decimal("1.10"), "price_unit": "kg"} for n in range(4)
    ]
    execute(ConsentioUpsertProductsOperator(task_id="upsert", records=products))
    out = tmp_path / "products.jsonl"
    # The export's window is of change times: the last hour holds the upsert just made.
    now = pendulum.now("UTC")
    window = {"start": now.subtract(hours=1).isoformat(), "end": now.add(seconds=1).isoformat()}
    execute(ConsentioExportProductsOperator(task_id="export", output_path=str(out), **window))
    exported = {record["sku"] for record in map(loads, out.read_bytes().splitlines())}
    assert {product["sku"] for product in products} <= exported


def test_clients_upserted_then_exported(sandbox, execute, tmp_path):
    clients = [{"client_external_id": f"C-X{n}", "client_name": f"Bäckerei {n}"} for n in range(3)]
    execute(ConsentioUpsertClientsOperator(task_id="upsert", records=clients))
    out = tmp_path / "clients.jsonl"
    execute(ConsentioExportClientsOperator(task_id="clients", output_path=str(out)))
    exported = {record["client_external_id"] for record in map(loads, out.read_bytes().splitlines())}
    assert {client["client_external_id"] for client in clients} <= exported


def test_promoted_orders_are_created_once_and_a_rerun_creates_none(sandbox, execute):
    execute(
        ConsentioUpsertProductsOperator(
            task_id="products",
            records=[{"sku": "SKU-P1", "name": "Peach", "base_price": Decimal("2"), "price_unit": "kg"}],
        )
    )
    orders = [
        {
            "reference": f"ERP-PX-{n}",
            "buyer_email": "chef@example.com",
            "items": [{"sku": "SKU-P1", "amount": Decimal("2.5"), "unit": "kg"}],
            "delivery_date": "2025-03-12",
        }
        for n in range(3)
    ]
    for _ in range(2):
        execute(ConsentioCreatePromotedOrdersOperator(task_id="promote", orders=orders))
    references = [order.data["external_id"] for order in sandbox.state.orders.values()]
    assert [references.count(f"ERP-PX-{n}") for n in range(3)] == [1, 1, 1]
