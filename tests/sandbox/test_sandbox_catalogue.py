"""The sandbox's catalogue contract over loopback HTTP (plain httpx): products (JSON and CSV), changed products,
base prices, price groups, clients, addresses and promoted orders, with per-row errors and fault injection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from airflow_provider_consentio.models.jsonwire import loads


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def partner(sandbox):
    return f"/v2/partner/{sandbox.workspace_id}"


@pytest.fixture
def auth(http, sandbox):
    response = http.post(f"/v2/partner/{sandbox.workspace_id}/login", json={"api_key": sandbox.api_key})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def catalogue(http) -> dict:
    return loads(http.get("/_sandbox/catalogue").content)


def product(sku: str, **overrides) -> dict:
    record = {"sku": sku, "name": f"Tomates {sku}", "ean_code": "8412345678901", "base_price": "2.50"}
    record |= {"price_unit": "kg", "sale_units": "kg,box", "tags": "fresh,local"}
    return {k: v for k, v in {**record, **overrides}.items() if v is not None}


def post_products(http, partner, auth, *records) -> dict:
    response = http.post(f"{partner}/product", json={"products": list(records)}, headers=auth)
    assert response.status_code == 200, response.text
    return loads(response.content)


def test_products_are_upserted_by_sku_with_numbers_as_strings(http, partner, auth):
    answer = post_products(http, partner, auth, product("A-1"), product("A-2", base_price="10.000"))
    assert answer["errors"] == [] and [p["sku"] for p in answer["products"]] == ["A-1", "A-2"]
    first = catalogue(http)["products"]["A-1"]
    assert first["base_price"] == "2.50" and first["sale_units"] == "kg,box"

    again = post_products(http, partner, auth, product("A-1", base_price="2.75"), product("A-2", base_price="10.000"))
    stored = catalogue(http)["products"]
    assert stored["A-1"]["base_price"] == "2.75" and stored["A-1"]["id"] == first["id"]
    assert stored["A-1"]["updated_at"] > first["updated_at"]
    # Nothing changed for A-2: its version stays, so a changed-products export does not list it again.
    assert again["products"][1]["updated_at"] == answer["products"][1]["updated_at"]


def test_products_report_per_row_errors_with_http_200(http, partner, auth):
    rows = [
        product("OK-1"),
        product("BAD-PRICE", base_price=2.5),
        product("BAD-UNIT", price_unit="litre"),
        product("S" * 65),
        product("BAD-EAN", ean_code="12ab"),
        product("BAD-UNITS", sale_units="kg,crate"),
        {"name": "no sku"},
    ]
    answer = post_products(http, partner, auth, *rows)
    assert [p["sku"] for p in answer["products"]] == ["OK-1"]
    assert answer["errors"] == [
        'BAD-PRICE: base_price must be a number written as a string (e.g. "12.50"), got a number',
        "BAD-UNIT: price_unit must be one of box, pallet, kg, piece",
        f"{'S' * 65}: sku must be a string of 1 to 64 characters",
        "BAD-EAN: ean_code must be 8 to 14 digits",
        "BAD-UNITS: each of sale_units must be one of box, pallet, kg, piece",
        "#7: sku is required",
    ]


@pytest.mark.parametrize(("separator", "decimal"), [(",", "."), (";", ","), ("\t", ",")])
def test_a_product_csv_gives_the_same_state_as_json(http, partner, auth, separator, decimal):
    price = "2,50" if decimal == "," else "2.50"
    text = separator.join(["sku", "name", "base_price", "sale_units"]) + "\n"
    text += separator.join(["C-1", "Äpfel", price, '"kg,box"' if separator == "," else "kg,box"]) + "\n"
    response = http.post(
        f"{partner}/product",
        content=text.encode(),
        params={"language": "es", "type": "product", "csvseparator": separator, "decimalseparator": decimal},
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert loads(response.content)["errors"] == []
    stored = catalogue(http)["products"]["C-1"]
    assert (stored["name"], stored["base_price"], stored["sale_units"]) == ("Äpfel", "2.50", "kg,box")


def test_a_csv_read_with_the_wrong_separator_is_refused_naming_it(http, partner, auth):
    response = http.post(
        f"{partner}/product",
        content=b"sku;name\nC-1;Apples\n",
        params={"csvseparator": ","},
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert response.status_code == 400
    assert "no sku column" in response.json()["message"] and "csvseparator" in response.json()["message"]
    latin = http.post(
        f"{partner}/product",
        content="sku,name\nC-1,Café\n".encode("latin-1"),
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert latin.status_code == 400 and "not UTF-8" in latin.json()["message"]
    assert catalogue(http)["products"] == {}


def test_changed_products_are_listed_by_half_open_window(http, partner, auth):
    post_products(http, partner, auth, product("W-1"), product("W-2"))
    stored = catalogue(http)["products"]
    first = datetime.strptime(stored["W-1"]["updated_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    window = {"from": first.isoformat(), "to": (first + timedelta(minutes=1)).isoformat()}
    listed = loads(http.get(f"{partner}/products", params=window, headers=auth).content)
    assert [p["sku"] for p in listed] == ["W-1", "W-2"]
    before = {"from": (first - timedelta(minutes=1)).isoformat(), "to": first.isoformat()}
    assert loads(http.get(f"{partner}/products", params=before, headers=auth).content) == []


def test_base_prices_match_by_sku_or_ean_code_and_stay_exact(http, partner, auth):
    post_products(http, partner, auth, product("B-1"), product("B-2", ean_code="8400000000017"))
    response = http.put(
        f"{partner}/products/baseprice",
        json={
            "base_prices": [
                {"sku": "B-1", "base_price": "3.1000"},
                {"ean_code": "8400000000017", "base_price": "0.005", "price_unit": "box"},
                {"sku": "NOPE", "base_price": "1"},
                {"sku": "B-1", "base_price": "-1"},
            ]
        },
        headers=auth,
    )
    answer = loads(response.content)
    assert answer["errors"] == ["NOPE: product NOPE not found", "B-1: base_price must not be negative"]
    stored = catalogue(http)["products"]
    assert (stored["B-1"]["base_price"], stored["B-2"]["base_price"], stored["B-2"]["price_unit"]) == (
        "3.1000",
        "0.005",
        "box",
    )


def test_price_groups_need_their_products_and_keep_exact_prices(http, partner, auth):
    post_products(http, partner, auth, product("P-1"))
    rows = [
        {"pricegroup_id": "G1", "pricegroup_name": "Horeca", "sku": "P-1", "price": "1.999", "price_unit": "kg"},
        {"pricegroup_id": "G1", "pricegroup_name": "Horeca", "sku": "P-404", "price": "1"},
        {"pricegroup_id": "G2", "pricegroup_name": "Retail", "sku": "P-1", "price": "2", "price_unit": "litre"},
    ]
    answer = loads(http.post(f"{partner}/pricegroups/sync", json={"pricegroups": rows}, headers=auth).content)
    assert answer["errors"] == [
        "G1/P-404: product P-404 not found (create products before their price groups)",
        "G2/P-1: price_unit must be one of box, pallet, kg, piece",
    ]
    assert catalogue(http)["price_groups"]["G1/P-1"]["price"] == "1.999"


def test_clients_and_addresses_upsert_and_list(http, partner, auth):
    clients = [
        {"client_external_id": "C-1", "client_name": "Bäckerei Müller", "phones": ["+49 89 123"], "rate_id": "G1"},
        {"client_external_id": "C-2", "client_name": "Café Zürich"},
        {"client_external_id": "C-3"},
    ]
    answer = loads(http.post(f"{partner}/client", json={"clients": clients}, headers=auth).content)
    assert answer["errors"] == ["C-3: client_name is required"]
    listed = loads(http.get(f"{partner}/client", headers=auth).content)
    assert [(c["client_external_id"], c["rate_id"], c["consentio_client_id"]) for c in listed] == [
        ("C-1", "G1", None),
        ("C-2", None, None),
    ]
    address = {"external_id": "A-1", "client_external_id": "C-1", "street": "Marienplatz 1", "city": "München"}
    address |= {"postal_code": "80331", "country": "DE", "latitude": Decimal("48.137154")}
    orphan = {**address, "external_id": "A-2", "client_external_id": "C-9"}
    body = {"addresses": [address, orphan, {**address, "external_id": "A-3", "country": "Germany"}]}
    answer = loads(http.post(f"{partner}/client/address", content=_json(body), headers=auth).content)
    assert answer["errors"] == [
        "A-2: client C-9 not found (create clients before their addresses)",
        "A-3: country must be an ISO 3166-1 alpha-2 code (e.g. ES)",
    ]
    listed = loads(http.get(f"{partner}/client/address", params={"client_external_id": "C-1"}, headers=auth).content)
    assert [(a["external_id"], a["latitude"]) for a in listed] == [("A-1", Decimal("48.137154"))]


def _json(value) -> bytes:
    from airflow_provider_consentio.models.jsonwire import dumps

    return dumps(value).encode()


def test_a_promoted_order_is_a_pending_sale_carrying_the_callers_reference(http, partner, auth):
    post_products(http, partner, auth, product("O-1", base_price="4.20"))
    order = {
        "external_id": "ERP-PROMO-1",
        "buyer_email": "chef@example.com",
        "items": [{"sku": "O-1", "amount": "3", "unit": "kg"}],
        "delivery_method": "delivery",
        "delivery_date": "2025-03-12",
    }
    response = http.post(f"{partner}/promoted-order", json=order, headers=auth)
    assert response.status_code == 201, response.text
    created = loads(response.content)
    assert (created["status"], created["external_id"], created["price"]) == ("pending", "ERP-PROMO-1", Decimal("12.60"))
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    found = loads(http.get(f"{partner}/order", params={**window, "kind": "sale"}, headers=auth).content)
    assert [o["hash_id"] for o in found if o["external_id"] == "ERP-PROMO-1"] == [created["hash_id"]]

    unknown_item = {**order, "items": [{"sku": "X", "amount": "1"}]}
    unknown = http.post(f"{partner}/promoted-order", json=unknown_item, headers=auth)
    assert unknown.status_code == 400 and "product X not found" in unknown.json()["message"]


def test_a_dropped_connection_after_a_promoted_order_leaves_the_order_created(http, sandbox, partner, auth):
    post_products(http, partner, auth, product("D-1"))
    plan = {"paths": "promoted-order", "rules": [{"kind": "drop", "every": 1}]}
    http.put("/_sandbox/faults", json=plan).raise_for_status()
    order = {"external_id": "ERP-DROP", "buyer_email": "a@b.co", "items": [{"sku": "D-1", "amount": "1"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{partner}/promoted-order", json=order, headers=auth)
    orders = sandbox.state.orders.values()
    assert sum(1 for o in orders if o.data["external_id"] == "ERP-DROP") == 1


def test_catalogue_routes_need_a_token_and_keep_workspaces_apart(http, sandbox, partner, auth):
    assert http.get(f"{partner}/client").status_code == 401
    post_products(http, partner, auth, product("WS-1"))
    other = http.post(
        f"/v2/partner/{sandbox.sandbox.config.other_workspace_id}/login",
        json={"api_key": sandbox.sandbox.config.other_api_key},
    ).json()["access_token"]
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    path = f"/v2/partner/{sandbox.sandbox.config.other_workspace_id}/products"
    assert http.get(path, params=window, headers={"Authorization": f"Bearer {other}"}).json() == []
