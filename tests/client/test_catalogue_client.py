"""The catalogue and promoted-order methods of ConsentioClient against the sandbox over loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from airflow_provider_consentio.errors import ConsentioTransientError
from airflow_provider_consentio.models.catalogue import (
    BasePrice,
    Client,
    ClientAddress,
    PriceGroupPrice,
    Product,
    PromotedOrder,
    products_csv,
)
from airflow_provider_consentio.models.jsonwire import loads


def catalogue(sandbox) -> dict:
    return loads(httpx.get(f"{sandbox.base_url}/_sandbox/catalogue", timeout=10).content)


def products(count: int = 3) -> list[Product]:
    return [
        Product(
            sku=f"SKU-{n}",
            name=f"Pêches {n}",
            ean_code=f"84{n:011d}",
            base_price=Decimal("1.10") + n,
            price_unit="kg",
            sale_units=["kg", "box"],
            tags=["fresh", "bio"],
            origin="ES",
            weight=Decimal("0.125"),
        )
        for n in range(count)
    ]


def test_the_wire_form_sends_numbers_and_lists_as_strings():
    (product,) = products(1)
    assert product.to_wire() == {
        "sku": "SKU-0",
        "name": "Pêches 0",
        "ean_code": "8400000000000",
        "base_price": "1.10",
        "price_unit": "kg",
        "sale_units": "kg,box",
        "tags": "fresh,bio",
        "origin": "ES",
        "weight": "0.125",
    }
    assert Product(sku="S", name="n", base_price=Decimal("1E-7")).to_wire()["base_price"] == "0.0000001"
    assert products_csv([product], separator=";", decimal_separator=",").decode() == (
        "sku;name;ean_code;base_price;price_unit;sale_units;tags;origin;weight\n"
        "SKU-0;Pêches 0;8400000000000;1,10;kg;kg,box;fresh,bio;ES;0.125\n"
    )


@pytest.mark.parametrize(("separator", "decimal_separator"), [(",", "."), (";", ",")])
def test_json_and_csv_imports_store_the_same_products(sandbox, make_client, separator, decimal_separator):
    client = make_client()
    result = client.upsert_products(products())
    assert (len(result.saved), result.errors) == (3, [])
    by_json = catalogue(sandbox)["products"]
    sandbox.sandbox.reset()
    result = client.upsert_products_csv(
        products(), separator=separator, decimal_separator=decimal_separator, language="es"
    )
    assert (len(result.saved), result.errors) == (3, [])
    strip = ("created_at", "updated_at")
    assert {k: {f: v for f, v in p.items() if f not in strip} for k, p in catalogue(sandbox)["products"].items()} == {
        k: {f: v for f, v in p.items() if f not in strip} for k, p in by_json.items()
    }


def test_base_prices_price_groups_clients_and_addresses(sandbox, make_client):
    client = make_client()
    client.upsert_products(products(2))
    result = client.set_base_prices(
        [BasePrice(sku="SKU-0", base_price=Decimal("9.990")), BasePrice(ean_code="8400000000001", base_price=3)]
    )
    assert result.errors == []
    result = client.sync_price_groups(
        [PriceGroupPrice(pricegroup_id="G1", pricegroup_name="Horeca", sku="SKU-9", price=Decimal("1.5"))]
    )
    assert [str(error) for error in result.errors] == [
        "G1/SKU-9: product SKU-9 not found (create products before their price groups)"
    ]
    client.upsert_clients([Client(client_external_id="C-1", client_name="Bäckerei", phones="+49 1, +49 2")])
    client.upsert_addresses(
        [
            ClientAddress(
                external_id="A-1",
                client_external_id="C-1",
                street="Hauptstraße 5",
                city="München",
                postal_code="80331",
                country="DE",
                latitude=Decimal("48.1371540"),
            )
        ]
    )
    stored = catalogue(sandbox)
    assert (stored["products"]["SKU-0"]["base_price"], stored["products"]["SKU-1"]["base_price"]) == ("9.990", "3")
    assert stored["clients"]["C-1"]["phones"] == ["+49 1", "+49 2"]
    assert [r.keys.client_external_id for r in client.get_raw_clients()] == ["C-1"]
    (address,) = client.get_raw_addresses("C-1")
    assert b'"latitude":48.1371540' in bytes(address.raw)


def test_changed_products_come_back_raw_keyed_by_sku(sandbox, make_client):
    client = make_client()
    client.upsert_products(products(2))
    now = datetime.now(UTC)
    records = client.get_raw_changed_products(now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert [record.keys.id for record in records] == ["SKU-0", "SKU-1"]
    assert loads(bytes(records[0].raw))["base_price"] == "1.10"


def test_a_promoted_order_is_not_resent_after_a_drop_and_is_found_by_its_reference(sandbox, make_client):
    client = make_client()
    client.upsert_products(products(1))
    order = PromotedOrder(reference="ERP-7", buyer_email="chef@example.com", items=[{"sku": "SKU-0", "amount": 2}])
    plan = {"paths": "promoted-order", "rules": [{"kind": "drop", "every": 1}]}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()
    with pytest.raises(ConsentioTransientError):
        client.create_promoted_order(order)
    now = datetime.now(UTC)
    found = client.find_orders_by_reference(now - timedelta(hours=1), now + timedelta(minutes=1))
    assert list(found) == ["ERP-7"]
    requests = sandbox.sandbox.stats.requests
    assert sum(count for key, count in requests.items() if key.startswith("POST /{ws}/promoted-order")) == 1
