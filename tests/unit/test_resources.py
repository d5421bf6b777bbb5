"""The resource declarations (resources/): each names what exists, reads cheaply, and refuses bad parameters."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from airflow_provider_consentio import resources
from airflow_provider_consentio.client.endpoints import PartnerAPI, shape_of
from airflow_provider_consentio.errors import ConsentioConfigError

WINDOW = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))


@pytest.mark.parametrize("resource", resources.ALL, ids=lambda resource: resource.name)
def test_every_declaration_names_models_and_structs_that_exist(resource):
    assert resource.read or resource.write, f"{resource.name} is neither read nor written"
    if resource.read is not None:
        assert shape_of(resource).keys is resource.read.key_struct
        assert resource.read.documented_fields
    if resource.write is not None:
        model = resource.write.model_class
        assert resource.write.key_field in model.model_fields
    if resource.table is not None:
        assert resources.resolve(resource.table.model).model_fields
    assert resources.by_name(resource.name) is resource


def test_importing_the_declarations_imports_no_model():
    # DAG files import the operators, which import the declarations, at parse time.
    code = (
        "import sys, airflow_provider_consentio.resources as r; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'msgspec', "
        "'airflow_provider_consentio.models'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_listing_is_built_from_its_declaration():
    api = PartnerAPI(7, "key")
    call = api.listing(resources.ORDERS, *WINDOW, kind="sale", status="accepted").call
    assert (call.method, call.path) == ("GET", "/7/order")
    assert call.params == {
        "from": "2025-03-01T00:00:00Z",
        "to": "2025-03-02T00:00:00Z",
        "kind": "sale",
        "status": "accepted",
    }
    needs = api.listing(resources.PURCHASE_NEEDS, start_date=date(2025, 3, 1), end_date=date(2025, 3, 8)).call
    assert needs.params == {"start_date": "2025-03-01", "end_date": "2025-03-08"}
    assert api.listing(resources.CLIENTS).call.params is None


@pytest.mark.parametrize(
    ("resource", "window", "params", "message"),
    [
        (resources.ORDERS, WINDOW, {"kind": "gift"}, "kind must be one of sale, purchase, got 'gift'"),
        (resources.ORDERS, WINDOW, {}, "the orders listing needs kind"),
        (resources.ORDERS, (None, None), {"kind": "sale"}, "needs a window"),
        (resources.CLIENTS, WINDOW, {}, "takes no time window"),
        (resources.CLIENTS, (None, None), {"page": 2}, "takes no parameter page"),
        (resources.BASE_PRICES, (None, None), {}, "does not list base prices"),
        (resources.PURCHASE_NEEDS, (None, None), {"start_date": "2025-03-01", "end_date": date(2025, 3, 2)}, "a date"),
    ],
)
def test_a_bad_listing_request_names_what_is_wrong(resource, window, params, message):
    with pytest.raises(ConsentioConfigError, match=message):
        PartnerAPI(7, "key").listing(resource, *window, **params)


def test_a_write_is_built_from_its_declaration():
    from airflow_provider_consentio.models.catalogue import BasePrice

    call = PartnerAPI(7, "key").write(resources.BASE_PRICES, [BasePrice(sku="A-1", base_price="2.50")])
    assert (call.method, call.path, call.saved_key, call.idempotent) == (
        "PUT",
        "/7/products/baseprice",
        "base_prices",
        True,
    )
    assert call.body == {"base_prices": [BasePrice(sku="A-1", base_price="2.50").to_wire()]}
    with pytest.raises(ConsentioConfigError, match="at least one record"):
        PartnerAPI(7, "key").write(resources.BASE_PRICES, [])
    with pytest.raises(ConsentioConfigError, match="takes no writes of orders"):
        PartnerAPI(7, "key").write(resources.ORDERS, [object()])
    seen = PartnerAPI(7, "key").mark_seen(["h1", "h2"])
    assert seen.body == {"hash_ids": ["h1", "h2"]}
    assert PartnerAPI(7, "key").promoted_order({"reference": "R"}).idempotent is False


def test_the_asset_helpers_build_the_assets_the_declarations_name():
    from airflow_provider_consentio.operators.catalogue import catalogue_asset, products_asset
    from airflow_provider_consentio.operators.catalogue_clients import clients_asset
    from airflow_provider_consentio.operators.orders import edited_orders_asset, orders_asset
    from airflow_provider_consentio.operators.purchase_needs import purchase_needs_asset

    made = [
        orders_asset("c", "purchase"),
        edited_orders_asset("c"),
        products_asset("c"),
        catalogue_asset("c"),
        clients_asset("c", "addresses"),
        purchase_needs_asset("c"),
    ]
    assert [(asset.name, asset.uri) for asset in made] == [
        ("consentio_purchase_orders__c", "consentio://c/orders/purchase"),
        ("consentio_edited_orders__c", "consentio://c/orders/edited"),
        ("consentio_products__c", "consentio://c/products"),
        ("consentio_catalogue__c", "consentio://c/catalogue"),
        ("consentio_addresses__c", "consentio://c/addresses"),
        ("consentio_purchase_needs__c", "consentio://c/purchase-needs"),
    ]
