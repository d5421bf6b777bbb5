"""When the API drifts from what the provider assumes, each affected operator fails with a ConsentioSchemaDriftError
naming the endpoint and the field (never a KeyError or TypeError later on), and writes no file.

op.execute() against the in-process sandbox answering with one assumption changed (sandbox/drift.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from airflow_provider_consentio.errors import ConsentioResponseError, ConsentioSchemaDriftError
from airflow_provider_consentio.models import PurchaseNeed
from airflow_provider_consentio.models.catalogue import Product
from airflow_provider_consentio.operators.catalogue import ConsentioExportProductsOperator
from airflow_provider_consentio.operators.orders import ConsentioEditedOrdersOperator, ConsentioExportOrdersOperator
from airflow_provider_consentio.operators.purchase_needs import ConsentioExportPurchaseNeedsOperator
from airflow_provider_consentio.sandbox import SandboxConfig

NEED_DAY = date(2025, 3, 10)


@pytest.fixture
def drift(sandbox, consentio_connection, make_client):
    """Sets the session sandbox drifting (with products and purchase needs in it); undone after the test."""

    def start(*modes: str):
        sandbox.sandbox.reset(SandboxConfig(seed=42, drift=modes))
        client = make_client()
        assert not client.upsert_products(
            [Product(sku=f"SKU-{n}", name="Tomato", base_price="1.25") for n in range(12)]
        ).errors
        need = {"reference_code": "8410000000001", "start_date": NEED_DAY, "end_date": NEED_DAY, "quantity": "2.5"}
        needs = [PurchaseNeed(code=f"PN-{n}", quantity_unit="kg", external_status="open", **need) for n in range(12)]
        assert not client.upsert_purchase_needs(needs).errors

    yield start
    sandbox.sandbox.reset(SandboxConfig(seed=42))


def export_orders(out):
    return ConsentioExportOrdersOperator(
        task_id="export",
        output_path=str(out),
        start="2025-03-01T00:00:00Z",
        end="2025-03-02T00:00:00Z",
        window_size=timedelta(days=1),  # one answer of ~36 orders: more than the cap of 10
        durable=False,
    )


def export_products(out):
    now = datetime.now(UTC)
    return ConsentioExportProductsOperator(
        task_id="products",
        output_path=str(out),
        start=(now - timedelta(hours=1)).isoformat(),
        end=(now + timedelta(hours=1)).isoformat(),
        durable=False,
    )


def export_needs(out):
    return ConsentioExportPurchaseNeedsOperator(
        task_id="needs", output_path=str(out), from_date=str(NEED_DAY), to_date=str(NEED_DAY)
    )


def edited_orders(out):
    return ConsentioEditedOrdersOperator(task_id="edited", output_path=str(out), since="2025-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("mode", "operator", "path", "difference"),
    [
        ("renamed_key", export_orders, "/order", "id: missing (the record has fields the "
         "provider does not know: order_id, channel)"),
        ("renamed_key", export_needs, "/purchase-needs", "code: missing"),
        ("renamed_key", edited_orders, "/order/edited", "id: missing"),
        ("amount_as_string", export_orders, "/order", "price: is a string, assumed a JSON "
         "number (e.g. '"),
        ("amount_as_string", export_needs, "/purchase-needs", "quantity: is a string, assumed "
         "a JSON number (e.g. '2.5')"),
        ("amount_as_number", export_products, "/products", 'base_price: is a number, assumed '
         'a number written as a string ("12.50") (e.g. 1.25)'),
        ("data_envelope", export_orders, "/order", "(envelope): the answer is an object "
         "(keys: data), assumed a bare JSON array"),
        ("data_envelope", edited_orders, "/order/edited", "(envelope): the answer is an "
         "object (keys: data)"),
        ("capped", export_orders, "/order", "(paging): header x-total-count: "),
        ("capped", export_products, "/products", "(paging): header x-total-count: 12, with 10 "
         "records in the answer"),
    ],
)  # fmt: skip
def test_the_operator_fails_naming_the_endpoint_and_the_difference(drift, tmp_path, mode, operator, path, difference):
    drift(mode)
    out = tmp_path / "export.jsonl"
    with pytest.raises(ConsentioSchemaDriftError) as raised:
        operator(out).execute({})
    message = str(raised.value)
    assert message.startswith(f"GET /v2/partner/1001{path} -> HTTP 200: the answer differs"), message
    assert difference in message, message
    assert "airflow consentio check" in message
    assert isinstance(raised.value, ConsentioResponseError)  # what callers catching the older class still see
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("operator", [export_orders, export_needs, edited_orders, export_products])
def test_without_drift_the_same_operators_succeed(drift, execute, tmp_path, operator):
    drift()
    out = tmp_path / "export.jsonl"
    summary, _ = execute(operator(out))
    assert summary["count"] > 0 and out.read_bytes().count(b"\n") >= summary["count"]
