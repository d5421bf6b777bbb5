"""Property-based fuzz of the sandbox's catalogue and promoted-order endpoints: whatever a client sends, never a 5xx
(the strategies, the checks and the shared client are test_sandbox_fuzz.py's)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from test_sandbox_fuzz import FUZZ, check, instants, json_values, raw_bodies, target  # noqa: F401 (target: a fixture)

fields = st.sampled_from(
    ["sku", "name", "ean_code", "base_price", "price_unit", "sale_units", "tags", "pricegroup_id", "pricegroup_name",
     "price", "client_external_id", "client_name", "phones", "rate_id", "rates", "external_id", "street", "city",
     "postal_code", "country", "latitude", "longitude", "id", "created_at"]
)  # fmt: skip
rows = st.dictionaries(fields, json_values | st.sampled_from(["12.50", "-1", "kg", "DE", "8412345678901"]), max_size=8)
batches = st.lists(rows | json_values, min_size=0, max_size=4) | json_values
WRITES = (
    ("POST", "product", "products"),
    ("PUT", "products/baseprice", "base_prices"),
    ("POST", "pricegroups/sync", "pricegroups"),
    ("POST", "client", "clients"),
    ("POST", "client/address", "addresses"),
)


@FUZZ
@given(write=st.sampled_from(WRITES), records=batches)
def test_catalogue_batch_writes(target, write, records):  # noqa: F811
    http, partner, headers = target
    method, path, key = write
    check(http.request(method, f"{partner}/{path}", json={key: records}, headers=headers))


@FUZZ
@given(
    body=raw_bodies | st.text(max_size=120).map(str.encode),
    separator=st.sampled_from([",", ";", "\t", "", "ab", '"']),
    decimal=st.sampled_from([".", ",", "x"]),
    language=st.sampled_from(["en", "es", "xx"]),
)
def test_product_csv_import(target, body, separator, decimal, language):  # noqa: F811
    http, partner, headers = target
    params = {"csvseparator": separator, "decimalseparator": decimal, "language": language, "type": "product"}
    check(http.post(f"{partner}/product", content=body, params=params, headers={**headers, "Content-Type": "text/csv"}))


@FUZZ
@given(start=instants, end=instants, client=st.none() | st.text(max_size=10))
def test_catalogue_reads(target, start, end, client):  # noqa: F811
    http, partner, headers = target
    check(http.get(f"{partner}/products", params={"from": start, "to": end}, headers=headers))
    check(http.get(f"{partner}/client", headers=headers))
    params = {"client_external_id": client} if client is not None else {}
    check(http.get(f"{partner}/client/address", params=params, headers=headers))


items = st.lists(
    st.dictionaries(
        st.sampled_from(["sku", "ean_code", "amount", "unit"]),
        json_values | st.sampled_from(["SKU-F", "8412345678901", "2.5", "0", "kg", "crate"]),
        max_size=4,
    ),
    max_size=3,
)
orders = st.fixed_dictionaries(
    {"buyer_email": st.sampled_from(["a@b.co", "chef"]) | json_values, "items": items | json_values},
    optional={
        "external_id": json_values,
        "delivery_method": st.sampled_from(["delivery", "pickup", "drone"]),
        "delivery_date": instants | json_values,
    },
)


@FUZZ
@given(body=orders.map(lambda order: json.dumps(order).encode()) | raw_bodies)
def test_promoted_order(target, body):  # noqa: F811
    http, partner, headers = target
    product = {"sku": "SKU-F", "name": "Fuzz", "ean_code": "8412345678901", "base_price": "1.25"}
    http.post(f"{partner}/product", json={"products": [product]}, headers=headers).raise_for_status()
    check(http.post(f"{partner}/promoted-order", content=body, headers=headers))
