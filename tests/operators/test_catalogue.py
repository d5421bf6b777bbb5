"""The catalogue operators in a real Airflow (dag.test) against the sandbox over loopback HTTP; the sandbox's admin
view is the ground truth of what Consentio holds."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.models.catalogue import (
    BasePrice,
    Client,
    ClientAddress,
    PriceGroupPrice,
    Product,
    price_group_line,
)
from airflow_provider_consentio.models.jsonwire import dumps, loads


def catalogue(sandbox) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.base_url}/_sandbox/catalogue", timeout=60)
    response.raise_for_status()
    return loads(response.content)


def as_conf(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records a run's conf can carry (JSON): decimals as their exact text."""
    return json.loads(dumps(records), parse_float=str)


def write_jsonl(path, records) -> str:
    path.write_text("".join(dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def product(n: int, version: int = 1) -> dict[str, Any]:
    return {
        "sku": f"SKU-{n:05d}",
        "name": f"Pêches plates {n} v{version}",
        "ean_code": f"84{n:011d}",
        "base_price": Decimal(n) / 100 + version,
        "price_unit": "kg",
        "sale_units": ["kg", "box"] if n % 2 else "box",
        "tags": ["fresh", f"v{version}"],
        "origin": "ES",
    }


def client(n: int, version: int = 1) -> dict[str, Any]:
    return {
        "client_external_id": f"C-{n:05d}",
        "client_name": f"Bäckerei {n} v{version}",
        "phones": [f"+34 600 {n:05d}"],
        "rate_id": f"G{n % 10}",
    }


def address(n: int, version: int = 1) -> dict[str, Any]:
    return {
        "external_id": f"A-{n:05d}",
        "client_external_id": f"C-{n:05d}",
        "street": f"Calle Mayor {n} (v{version})",
        "city": "Sevilla",
        "postal_code": "41001",
        "country": "ES",
        "latitude": Decimal("37.3890924") + version,
    }


def base_price(n: int, version: int = 1) -> dict[str, Any]:
    return {"sku": f"SKU-{n:05d}", "base_price": Decimal("0.005") * n + version}


def price_group(n: int, version: int = 1) -> dict[str, Any]:
    return {
        "pricegroup_id": f"G{n % 10}",
        "pricegroup_name": f"Horeca {n % 10}",
        "sku": f"SKU-{n:05d}",
        "price": Decimal("1.0001") * n + version,
        "price_unit": "kg",
    }


def seed(make_client, count: int, *kinds: str) -> None:
    api = make_client()
    for start in range(0, count, 2000):
        numbers = range(start, min(start + 2000, count))
        if "products" in kinds:
            api.upsert_products([Product.model_validate(product(n)) for n in numbers])
        if "clients" in kinds:
            api.upsert_clients([Client.model_validate(client(n)) for n in numbers])


@dataclass
class Resource:
    dag_id: str
    make: Callable[..., dict[str, Any]]
    model: Any
    stored: Callable[[dict[str, Any]], dict[str, Any]]  # the sandbox's catalogue -> records by key
    key: Callable[[dict[str, Any]], str]
    prerequisites: tuple[str, ...] = ()
    wire_subset: bool = True


def wire(model, record) -> dict[str, Any]:
    if model is PriceGroupPrice:
        record = price_group_line(record)
    return model.model_validate(record).to_wire()


RESOURCES = {
    "products": Resource("t_upsert_products_json", product, Product, lambda c: c["products"], lambda r: r["sku"], ()),
    "base_prices": Resource(
        "t_base_prices", base_price, BasePrice, lambda c: c["products"], lambda r: r["sku"], ("products",)
    ),
    "price_groups": Resource(
        "t_price_groups",
        price_group,
        PriceGroupPrice,
        lambda c: c["price_groups"],
        lambda r: f"{r['pricegroup_id']}/{r['sku']}",
        ("products",),
    ),
    "clients": Resource("t_upsert_clients", client, Client, lambda c: c["clients"], lambda r: r["client_external_id"]),
    "addresses": Resource(
        "t_upsert_addresses", address, ClientAddress, lambda c: c["addresses"], lambda r: r["external_id"], ("clients",)
    ),
}


@pytest.mark.parametrize("name", list(RESOURCES))
def test_ten_thousand_then_two_thousand_changed_then_a_rerun_changes_nothing(
    name, run_dag, sandbox, make_client, tmp_path
):
    resource = RESOURCES[name]
    seed(make_client, 10_000, *resource.prerequisites)
    first = [resource.make(n) for n in range(10_000)]
    result = run_dag(resource.dag_id, input_path=write_jsonl(tmp_path / "all.jsonl", first))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert [summary[k] for k in ("read", "submitted", "saved", "rejected_count", "batches")] == [
        10_000,
        10_000,
        10_000,
        0,
        10,
    ]

    changed = [resource.make(n, version=2) for n in range(0, 10_000, 5)]
    result = run_dag(resource.dag_id, input_path=write_jsonl(tmp_path / "changed.jsonl", changed))
    assert result.succeeded, result.output[-3000:]
    assert (result.xcoms["upsert"]["saved"], result.xcoms["upsert"]["rejected_count"]) == (2000, 0)

    stored = resource.stored(catalogue(sandbox))
    assert len(stored) == 10_000
    latest = {resource.key(r): r for r in first} | {resource.key(r): r for r in changed}
    for key, record in latest.items():
        expected = wire(resource.model, record)
        assert {field: stored[key].get(field) for field in expected} == expected, key

    before = catalogue(sandbox)
    again = run_dag(resource.dag_id, input_path=str(tmp_path / "changed.jsonl"))
    assert again.succeeded, again.output[-3000:]
    assert catalogue(sandbox) == before  # versions (updated_at) included: nothing changed


def test_json_csv_and_a_decimal_comma_csv_file_give_the_same_products(run_dag, sandbox, tmp_path):
    records = [product(n) for n in range(300)]
    path = write_jsonl(tmp_path / "products.jsonl", records)
    states = {}
    for dag_id in ("t_upsert_products_json", "t_upsert_products_csv"):
        sandbox.sandbox.reset()
        result = run_dag(dag_id, input_path=path)
        assert result.succeeded, result.output[-3000:]
        states[dag_id] = catalogue(sandbox)["products"]
    # A CSV file as an ERP writes it in Spain: semicolons, decimal commas, lists as comma-separated texts.
    csv_path = tmp_path / "products.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["sku", "name", "ean_code", "base_price", "price_unit", "sale_units", "tags", "origin"])
        for r in records:
            units = ",".join(r["sale_units"]) if isinstance(r["sale_units"], list) else r["sale_units"]
            price = str(r["base_price"]).replace(".", ",")
            row = [r["sku"], r["name"], r["ean_code"], price, "kg", units, ",".join(r["tags"]), "ES"]
            writer.writerow(row)
    sandbox.sandbox.reset()
    result = run_dag("t_upsert_products_decimal_comma_input", input_path=str(csv_path))
    assert result.succeeded, result.output[-3000:]
    states["csv file"] = catalogue(sandbox)["products"]

    def values(state):
        return {sku: {k: v for k, v in p.items() if k not in ("created_at", "updated_at")} for sku, p in state.items()}

    assert len(states["t_upsert_products_json"]) == 300
    assert values(states["t_upsert_products_csv"]) == values(states["t_upsert_products_json"])
    assert values(states["csv file"]) == values(states["t_upsert_products_json"])
    assert states["csv file"]["SKU-00123"]["base_price"] == "2.23"
    csv_posts = [key for key in sandbox.sandbox.stats.requests if key.startswith("POST /{ws}/product 200")]
    assert csv_posts


def test_per_row_rejections_are_named_and_counted_against_max_rejected(run_dag, sandbox, make_client, tmp_path):
    seed(make_client, 10, "products")
    prices = [base_price(n) for n in range(10)] + [
        {"sku": "SKU-404", "base_price": 1},
        {"ean_code": "8499999999999", "base_price": "2.5"},
    ]
    result = run_dag("t_base_prices", records=as_conf(prices))
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["upsert"]["rejected"] == [
        {"key": "SKU-404", "reason": "product SKU-404 not found"},
        {"key": "8499999999999", "reason": "product 8499999999999 not found"},
    ]
    products = [product(n) for n in range(3)] + [{**product(3), "name": "nul\x00byte"}]
    result = run_dag("t_upsert_products_json", records=as_conf(products))
    assert result.state == "failed"
    assert "Consentio rejected 1 of 4 products (max_rejected=0)" in result.output
    assert "- SKU-00003: control characters are not allowed" in result.output


def test_invalid_products_are_named_and_nothing_is_sent(run_dag, sandbox, tmp_path):
    records = [
        product(1),
        {**product(2), "price_unit": "litre"},
        {**product(3), "sku": "S" * 65},
        {**product(4), "base_price": "two"},
        {**product(5), "tags": ["a,b"]},
    ]
    result = run_dag("t_upsert_products_json", records=as_conf(records))
    assert result.state == "failed"
    assert "4 of 5 records from records are invalid" in result.output
    assert "- SKU-00002: price_unit input should be 'box', 'pallet', 'kg' or 'piece', got 'litre'" in result.output
    assert f"- {'S' * 65}: sku string should have at most 64 characters" in result.output
    assert "- SKU-00004: base_price must be a number, got 'two'" in result.output
    assert "- SKU-00005: tags value error" not in result.output and "must not hold a comma" in result.output
    assert catalogue(sandbox)["products"] == {}


def test_changed_products_export_is_exact_atomic_and_repeatable(run_dag, sandbox, make_client, tmp_path):
    seed(make_client, 1200, "products")
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    out = tmp_path / "products.jsonl"
    result = run_dag("t_export_products", output_path=str(out), **window)
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["export"]["count"] == 1200
    lines = out.read_bytes().splitlines()
    stored = catalogue(sandbox)["products"]
    assert [loads(line) for line in lines] == sorted(stored.values(), key=lambda p: (p["updated_at"], p["sku"]))
    first_bytes = out.read_bytes()
    again = run_dag("t_export_products", output_path=str(out), **window)
    assert again.succeeded and out.read_bytes() == first_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["products.jsonl"]  # no partial file left


def test_clients_and_addresses_export(run_dag, sandbox, make_client, tmp_path):
    seed(make_client, 20, "clients")
    api = make_client()
    api.upsert_addresses([ClientAddress.model_validate(address(n)) for n in range(20)])
    paths = {"clients_path": str(tmp_path / "clients.jsonl"), "addresses_path": str(tmp_path / "addresses.jsonl")}
    result = run_dag("t_export_clients", **paths)
    assert result.succeeded, result.output[-3000:]
    assert (result.xcoms["clients"]["count"], result.xcoms["addresses"]["count"]) == (20, 20)
    exported = [loads(line) for line in (tmp_path / "addresses.jsonl").read_bytes().splitlines()]
    assert exported[0]["latitude"] == Decimal("38.3890924")
    assert {c["client_external_id"] for c in map(loads, (tmp_path / "clients.jsonl").read_bytes().splitlines())} == {
        f"C-{n:05d}" for n in range(20)
    }


def test_exported_clients_addresses_and_products_upsert_back_unchanged_and_change_nothing(
    run_dag, sandbox, make_client, tmp_path
):
    """A round trip: each exported file, with a field the API added and the read-only ones, is sent back as is."""
    seed(make_client, 20, "products", "clients")
    make_client().upsert_addresses([ClientAddress.model_validate(address(n)) for n in range(20)])
    held = sandbox.state.catalogue
    for number, record in enumerate([*held.clients.values(), *held.addresses.values()]):
        record["x_crm"] = {"segment": "horeca", "score": number}  # a field the API added, unknown to the provider
    for product_record in held.products.values():
        product_record["x_crm"] = "CRM-7"  # products keep unknown fields (sent back as they came)
    before = catalogue(sandbox)
    now = datetime.now(UTC)
    exports = {
        "clients_path": str(tmp_path / "clients.jsonl"),
        "addresses_path": str(tmp_path / "addresses.jsonl"),
    }
    assert run_dag("t_export_clients", **exports).succeeded
    products_path = str(tmp_path / "products.jsonl")
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    assert run_dag("t_export_products", output_path=products_path, **window).succeeded
    assert all(b'"x_crm"' in line for line in (tmp_path / "clients.jsonl").read_bytes().splitlines())

    runs = {
        "t_upsert_clients": exports["clients_path"],
        "t_upsert_addresses": exports["addresses_path"],
        "t_upsert_products_json": products_path,
    }
    for dag_id, path in runs.items():
        result = run_dag(dag_id, input_path=path)
        assert result.succeeded, result.output[-3000:]
        assert result.xcoms["upsert"]["invalid_count"] == 0 and result.xcoms["upsert"]["rejected"] == []
        not_sent = [line for line in result.output.splitlines() if "Not sent (Consentio sets them" in line]
        assert len(not_sent) == 1, (dag_id, not_sent)  # one line for the run, not one per record
        if dag_id != "t_upsert_products_json":
            assert "unknown fields x_crm (20)" in not_sent[0], not_sent
        assert "created_at (20)" in not_sent[0] and "updated_at (20)" in not_sent[0], not_sent
    assert catalogue(sandbox) == before  # nothing changed: not a value, not one updated_at


def test_a_misspelt_field_is_still_an_error_naming_the_record(run_dag, sandbox):
    records = [{**client(1), "client_nmae": "Bäckerei Typo"}, {**client(2), "x_crm": "dropped"}]
    result = run_dag("t_upsert_clients", records=records)
    assert result.state == "failed"
    assert "- C-00001: client_nmae is not a known field (did you mean client_name?)" in result.output
    assert "1 of 2 records" in result.output and "Nothing was sent" in result.output
    assert catalogue(sandbox)["clients"] == {}


# --- promoted orders ----------------------------------------------------------------------------------------------


def promoted(reference: str, sku: str = "SKU-00001") -> dict[str, Any]:
    return {
        "reference": reference,
        "buyer_email": "chef@example.com",
        "items": [{"sku": sku, "amount": Decimal("2.5"), "unit": "kg"}],
        "delivery_date": "2025-03-12",
    }


def orders_with(sandbox, reference: str) -> int:
    return sum(1 for order in sandbox.state.orders.values() if order.data["external_id"] == reference)


def set_faults(sandbox, *rules: dict[str, Any]) -> None:
    plan = {"paths": "promoted-order", "rules": list(rules)}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()


def test_a_dropped_connection_after_the_order_was_applied_creates_exactly_one_order(run_dag, sandbox, make_client):
    seed(make_client, 5, "products")
    set_faults(sandbox, {"kind": "drop", "every": 1})
    result = run_dag("t_promoted_orders", orders=as_conf([promoted("ERP-1"), promoted("ERP-2")]))
    assert result.succeeded, result.output[-3000:]
    assert (orders_with(sandbox, "ERP-1"), orders_with(sandbox, "ERP-2")) == (1, 1)
    assert "the read-back found it created" in result.output
    assert sandbox.state.stats.faults["drop"] == 2  # each order was sent once, and its answer lost


def test_a_5xx_before_the_order_was_applied_sends_it_again_once(run_dag, sandbox, make_client):
    seed(make_client, 5, "products")
    set_faults(sandbox, {"kind": "500", "every": 2})
    orders = as_conf([promoted(f"ERP-{n}") for n in range(3)])
    result = run_dag("t_promoted_orders", orders=orders)
    assert result.succeeded, result.output[-3000:]
    assert [orders_with(sandbox, f"ERP-{n}") for n in range(3)] == [1, 1, 1]
    assert result.xcoms["promote"]["created"] == 3
    assert "the read-back found none within" in result.output and "sending it again" in result.output

    httpx.delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10).raise_for_status()
    again = run_dag("t_promoted_orders", orders=orders)
    assert again.succeeded, again.output[-3000:]
    assert (again.xcoms["promote"]["created"], again.xcoms["promote"]["found_existing"]) == (0, 3)
    assert again.xcoms["promote"]["already_existed"] == 3  # the former name of found_existing still works
    assert [orders_with(sandbox, f"ERP-{n}") for n in range(3)] == [1, 1, 1]


def test_a_refused_promoted_order_is_named(run_dag, sandbox, make_client):
    seed(make_client, 5, "products")
    result = run_dag("t_promoted_orders", orders=as_conf([promoted("ERP-OK"), promoted("ERP-BAD", sku="SKU-99999")]))
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["promote"]["rejected"] == [
        {"reference": "ERP-BAD", "reason": "item 1: product SKU-99999 not found"}
    ]
    assert (orders_with(sandbox, "ERP-OK"), orders_with(sandbox, "ERP-BAD")) == (1, 0)


def test_thirty_orders_under_chaos_become_exactly_thirty_orders(run_dag, sandbox, make_client):
    seed(make_client, 5, "products")
    plan = {
        "seed": 13,
        "paths": "promoted-order|/order$",
        "rules": [
            {"kind": "drop", "probability": 0.25},
            {"kind": "500", "probability": 0.1},
            {"kind": "503", "every": 11, "burst": 2},
            {"kind": "429", "probability": 0.1, "retry_after": 0.05},
        ],
    }
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()
    orders = as_conf([promoted(f"ERP-C{n:02d}") for n in range(30)])
    result = run_dag("t_promoted_orders", orders=orders)
    assert result.succeeded, result.output[-3000:]
    faults = sandbox.state.stats.faults
    assert faults["drop"] >= 3 and faults["500"] + faults["503"] >= 3, dict(faults)
    assert [orders_with(sandbox, f"ERP-C{n:02d}") for n in range(30)] == [1] * 30
    assert result.xcoms["promote"]["created"] == 30
