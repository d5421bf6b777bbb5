"""The bad-input matrix for the catalogue and promoted-order operators: each case is refused up front with an error
naming the record and what is wrong, and nothing is sent (not even a login). The checks are test_bad_input.py's."""

from __future__ import annotations

from typing import Any

import pytest
import test_bad_input as matrix
from test_bad_input import DagCase, sandbox  # noqa: F401 (the matrix's sandbox fixture: data kept, counters zeroed)

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioValidationError

PRODUCT = {"sku": "SKU-OK", "name": "Tomates", "base_price": "2.50", "price_unit": "kg"}
BASE_PRICE = {"sku": "SKU-OK", "base_price": "2.50"}
PRICE_GROUP = {"pricegroup_id": "G1", "pricegroup_name": "Horeca", "sku": "SKU-OK", "price": "2.10"}
CLIENT = {"client_external_id": "C-OK", "client_name": "Café Zürich", "phones": ["+41 44 000"]}
ADDRESS = {
    "external_id": "A-OK",
    "client_external_id": "C-OK",
    "street": "Bahnhofstrasse 1",
    "city": "Zürich",
    "postal_code": "8001",
    "country": "CH",
}
ORDER = {"reference": "ERP-OK", "buyer_email": "chef@example.com", "items": [{"sku": "SKU-OK", "amount": "2"}]}
PRODUCTS_CSV_HEADER = "sku,name,base_price,price_unit"


def bad(dag_id: str, valid: dict[str, Any], *fragments: str, key: str = "records", **changes: Any) -> DagCase:
    """A run given ``valid`` and a copy with ``changes`` (None removes a field): refused, naming the copy."""
    broken = {k: v for k, v in {**valid, **changes}.items() if v is not None}
    message = ("1 of 2 records from records are invalid", "Nothing was sent", *fragments)
    return DagCase(dag_id, {key: [valid, broken]}, ConsentioValidationError, message)


def products_file(name: str, content: bytes, *fragments: str) -> DagCase:
    return DagCase(
        "t_upsert_products_json",
        {"input_path": "{in}"},
        ConsentioValidationError,
        fragments,
        input_file=(name, content),
    )


CASES = [
    # --- products
    pytest.param(
        bad(
            "t_upsert_products_json",
            PRODUCT,
            "SKU-BAD: base_price must be a number, got 'two'",
            sku="SKU-BAD",
            base_price="two",
        ),
        id="product-price-not-a-number",
    ),
    pytest.param(
        bad("t_upsert_products_json", PRODUCT, "SKU-BAD: name is required", sku="SKU-BAD", name=None),
        id="product-missing-name",
    ),
    pytest.param(
        bad("t_upsert_products_json", PRODUCT, "sku string should have at most 64 characters", sku="S" * 65),
        id="product-sku-over-64",
    ),
    pytest.param(
        bad(
            "t_upsert_products_json",
            PRODUCT,
            "SKU-BAD: price_unit input should be 'box', 'pallet', 'kg' or 'piece', got 'litre'",
            sku="SKU-BAD",
            price_unit="litre",
        ),
        id="product-unknown-price-unit",
    ),
    pytest.param(
        bad(
            "t_upsert_products_json",
            PRODUCT,
            "SKU-BAD: ean_code string should match pattern",
            sku="SKU-BAD",
            ean_code="84-12",
        ),
        id="product-ean-not-digits",
    ),
    pytest.param(
        bad(
            "t_upsert_products_json",
            PRODUCT,
            "SKU-BAD: sale_units.1 input should be 'box'",
            sku="SKU-BAD",
            sale_units="kg,crate",
        ),
        id="product-unknown-sale-unit",
    ),
    pytest.param(
        bad("t_upsert_products_json", PRODUCT, "record #2: sku input should be a valid string", sku=12345),
        id="product-sku-a-number",
    ),
    pytest.param(
        products_file(
            "products.csv",
            b"sku;name;base_price;price_unit\nSKU-1;Tomates;2.50;kg\n",
            "products.csv: missing required column(s) sku, name (found: sku;name;base_price;price_unit)",
        ),
        id="products-csv-wrong-separator",
    ),
    pytest.param(
        products_file(
            "products.csv",
            b"sku;name;base_price;price_unit\nSKU-1;Tomates;2,50;kg\n",
            "products.csv line 2: more values than the header has columns",
        ),
        id="products-csv-wrong-separator-decimal-comma",
    ),
    pytest.param(
        products_file(
            "products.csv",
            f"{PRODUCTS_CSV_HEADER}\nSKU-1,Tomates,2.50,kg\nSKU-2,Café,1.00,kg\n".encode("latin-1"),
            "line 3: not UTF-8 text",
            "save the file as UTF-8",
        ),
        id="products-csv-latin-1",
    ),
    # --- base prices and price groups
    pytest.param(
        bad("t_base_prices", BASE_PRICE, "record #2: names no product: give sku or ean_code", sku=None),
        id="base-price-names-no-product",
    ),
    pytest.param(
        bad(
            "t_base_prices",
            BASE_PRICE,
            "SKU-BAD: base_price input should be greater than or equal to 0",
            sku="SKU-BAD",
            base_price="-1",
        ),
        id="base-price-negative",
    ),
    pytest.param(
        bad("t_base_prices", BASE_PRICE, "SKU-BAD: price_unit input should be 'box'", sku="SKU-BAD", price_unit="ton"),
        id="base-price-unknown-unit",
    ),
    pytest.param(
        bad("t_price_groups", PRICE_GROUP, "?/SKU-OK: pricegroup_id is required", pricegroup_id=None),
        id="price-group-missing-id",
    ),
    pytest.param(
        bad(
            "t_price_groups",
            PRICE_GROUP,
            "G2/SKU-OK: price must be a number, got 'cheap'",
            pricegroup_id="G2",
            price="cheap",
        ),
        id="price-group-price-not-a-number",
    ),
    pytest.param(
        bad(
            "t_price_groups",
            PRICE_GROUP,
            "pricegroup_id string should have at most 64 characters",
            pricegroup_id="G" * 65,
        ),
        id="price-group-id-over-64",
    ),
    # --- clients and addresses
    pytest.param(
        bad("t_upsert_clients", CLIENT, "C-BAD: client_name is required", client_external_id="C-BAD", client_name=None),
        id="client-missing-name",
    ),
    pytest.param(
        bad(
            "t_upsert_clients", CLIENT, "client_external_id string should have at most 64", client_external_id="C" * 65
        ),
        id="client-id-over-64",
    ),
    pytest.param(
        bad(
            "t_upsert_clients",
            CLIENT,
            "C-BAD: phones.0 string should have at most 32 characters",
            client_external_id="C-BAD",
            phones=["+34 " + "9" * 40],
        ),
        id="client-phone-over-32",
    ),
    pytest.param(
        bad(
            "t_upsert_addresses",
            ADDRESS,
            "A-BAD: country must be an ISO 3166-1 alpha-2 code such as ES, got 'Spain'",
            external_id="A-BAD",
            country="Spain",
        ),
        id="address-country-not-iso",
    ),
    pytest.param(
        bad(
            "t_upsert_addresses",
            ADDRESS,
            "A-BAD: latitude input should be less than or equal to 90",
            external_id="A-BAD",
            latitude="123.5",
        ),
        id="address-latitude-out-of-range",
    ),
    pytest.param(
        bad(
            "t_upsert_addresses",
            ADDRESS,
            "A-BAD: client_external_id is required",
            external_id="A-BAD",
            client_external_id=None,
        ),
        id="address-missing-client",
    ),
    # --- promoted orders
    pytest.param(
        bad(
            "t_promoted_orders",
            ORDER,
            "ERP-BAD: buyer_email must be an e-mail address, got 'chef'",
            key="orders",
            reference="ERP-BAD",
            buyer_email="chef",
        ),
        id="promoted-order-bad-email",
    ),
    pytest.param(
        bad(
            "t_promoted_orders",
            ORDER,
            "ERP-BAD: items list should have at least 1 item",
            key="orders",
            reference="ERP-BAD",
            items=[],
        ),
        id="promoted-order-no-items",
    ),
    pytest.param(
        bad(
            "t_promoted_orders",
            ORDER,
            "ERP-BAD: items.0.amount input should be greater than 0",
            key="orders",
            reference="ERP-BAD",
            items=[{"sku": "SKU-OK", "amount": "0"}],
        ),
        id="promoted-order-zero-amount",
    ),
    pytest.param(
        bad("t_promoted_orders", ORDER, "record #2: reference is required", key="orders", reference=None),
        id="promoted-order-no-reference",
    ),
    # --- exports
    pytest.param(
        DagCase(
            "t_export_products",
            {"output_path": "{out}", "start": "yesterday", "end": "2025-03-02T00:00:00Z"},
            ConsentioConfigError,
            ("start='yesterday' is not an ISO 8601 date",),
        ),
        id="export-products-start-garbage",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_catalogue_input_is_refused_up_front(case, run_dag, sandbox, consentio_connection, monkeypatch, tmp_path):  # noqa: F811
    matrix.test_bad_operator_input_is_refused_up_front(
        case, run_dag, sandbox, consentio_connection, monkeypatch, tmp_path
    )
