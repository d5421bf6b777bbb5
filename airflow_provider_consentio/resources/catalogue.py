"""The seller's catalogue: products, base prices, price groups, clients and their addresses.

Documented for the catalogue: numbers travel as strings. ASSUMPTIONS (see models/catalogue.py and the sandbox's
catalogue.py): the bodies and answer keys below; ``from``/``to`` select products by ``updated_at`` over
``[from, to)``. Every write is keyed (sku, price group + product, client_external_id, the address's external_id):
repeating a batch sets the same values again, so each is safe to retry.
"""

from __future__ import annotations

from datetime import timedelta

from airflow_provider_consentio.resources._declaration import MODELS, AssetName, Read, Resource, TableSpec, Write

CATALOGUE = f"{MODELS}.catalogue"
_STAMPS = dict.fromkeys(("created_at", "updated_at"), "timestamp")
# Every catalogue write updates this one Asset: what depends on an up-to-date catalogue is scheduled on it.
CATALOGUE_ASSET = AssetName("consentio_catalogue", "catalogue")

PRODUCTS = Resource(
    name="products",
    noun="product",
    nouns="products",
    lineage="catalogue/products",
    read=Read(
        path="/products",
        keys=f"{MODELS}:ProductKeys",
        typed={"base_price": "decimal-string", **_STAMPS},
        documented=f"{CATALOGUE}:Product",
        window=("from", "to"),
        records_per_request=5000,
        window_size=timedelta(hours=6),
        asset=AssetName("consentio_products", "products"),
        readers=("ConsentioExportProductsOperator",),
        title="changed products",
    ),
    write=Write(
        "POST",
        "/product",
        model=f"{CATALOGUE}:Product",
        key_field="sku",
        body_key="products",
        saved_key="products",
        asset=CATALOGUE_ASSET,
    ),
    table=TableSpec(name="products", key=("sku",), model=f"{CATALOGUE}:Product"),
)

BASE_PRICES = Resource(
    name="base_prices",
    noun="base price",
    nouns="base prices",
    lineage="catalogue/base-prices",
    write=Write(
        "PUT",
        "/products/baseprice",
        model=f"{CATALOGUE}:BasePrice",
        key_field="sku",
        body_key="base_prices",
        saved_key="base_prices",
        asset=CATALOGUE_ASSET,
    ),
)

PRICE_GROUPS = Resource(
    name="price_groups",
    noun="price group price",
    nouns="price group prices",
    lineage="catalogue/price-groups",
    # Keyed "<pricegroup_id>/<sku or ean_code>" (models.catalogue.price_group_line): how errors name a row.
    write=Write(
        "POST",
        "/pricegroups/sync",
        model=f"{CATALOGUE}:PriceGroupPrice",
        key_field="line",
        body_key="pricegroups",
        saved_key="pricegroups",
        asset=CATALOGUE_ASSET,
    ),
)

CLIENTS = Resource(
    name="clients",
    noun="client",
    nouns="clients",
    lineage="catalogue/clients",
    read=Read(
        path="/client",
        keys=f"{MODELS}:ClientKeys",
        typed={"consentio_client_id": "integer", "workspace_id": "integer", **_STAMPS},
        documented=f"{CATALOGUE}:Client",
        asset=AssetName("consentio_clients", "clients"),
        readers=("ConsentioExportClientsOperator",),
    ),
    write=Write(
        "POST",
        "/client",
        model=f"{CATALOGUE}:Client",
        key_field="client_external_id",
        body_key="clients",
        saved_key="clients",
        asset=CATALOGUE_ASSET,
    ),
    table=TableSpec(name="clients", key=("client_external_id",), model=f"{CATALOGUE}:Client"),
)

ADDRESSES = Resource(
    name="addresses",
    noun="address",
    nouns="addresses",
    lineage="catalogue/addresses",
    read=Read(
        path="/client/address",
        keys=f"{MODELS}:AddressKeys",
        typed={"latitude": "number", "longitude": "number", **_STAMPS},
        documented=f"{CATALOGUE}:ClientAddress",
        params={"client_external_id": None},
        asset=AssetName("consentio_addresses", "addresses"),
        readers=("ConsentioExportClientsOperator(resource='addresses')",),
    ),
    write=Write(
        "POST",
        "/client/address",
        model=f"{CATALOGUE}:ClientAddress",
        key_field="external_id",
        body_key="addresses",
        saved_key="addresses",
        asset=CATALOGUE_ASSET,
    ),
    table=TableSpec(name="addresses", key=("external_id",), model=f"{CATALOGUE}:ClientAddress"),
)
