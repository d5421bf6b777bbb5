"""
### Consentio seller catalogue, nightly

Every night at 23:00 UTC, an hour before the seller's order export (`consentio_seller_daily`, midnight UTC), the
seller's catalogue goes from the ERP to Consentio, so that the next day's orders are placed against it:

1. **customers** become Consentio clients (matched by their ERP code), then their **addresses**;
2. **items** become products (matched by SKU), then the day's **price list** sets their base prices, then the
   **price groups** set the prices each group of clients pays (a client joins a group through `rate_id`);
3. **catalogue_ready** records an event on the Asset `consentio://consentio_default/catalogue`: schedule what
   needs an up-to-date catalogue on it (see `catalogue_asset()`).

Every step reads the whole table and is safe to repeat: records are matched by their keys, so a rerun changes
nothing, and an unchanged record keeps its version. A bad row fails its step and names the row; nothing of that
step is sent. The run's data interval is not used (whole tables, not a day's changes): any logical date works
from *Trigger*.

Connections: `consentio_default` (Consentio) and `consentio_erp` (the ERP database).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_consentio.operators.catalogue import (
    ConsentioSetBasePricesOperator,
    ConsentioSyncPriceGroupsOperator,
    ConsentioUpsertProductsOperator,
    catalogue_asset,
)
from airflow_provider_consentio.operators.catalogue_clients import (
    ConsentioUpsertClientAddressesOperator,
    ConsentioUpsertClientsOperator,
)
from airflow_provider_consentio.timetables import CronDataIntervalTimetable

ERP_CONN_ID = "consentio_erp"
# 23:00 UTC: an hour before consentio_seller_daily (midnight UTC) exports the day's orders.
CATALOGUE_CRON = "0 23 * * *"


@dag(
    schedule=CronDataIntervalTimetable(CATALOGUE_CRON, timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["consentio", "example"],
    doc_md=__doc__,
)
def consentio_catalogue_daily() -> None:
    clients = ConsentioUpsertClientsOperator(
        task_id="upsert_clients",
        sql="SELECT customer_code, name, phones, price_group FROM erp_customers ORDER BY customer_code",
        sql_conn_id=ERP_CONN_ID,
        column_map={"client_external_id": "customer_code", "client_name": "name", "rate_id": "price_group"},
        outlets=[],
    )
    addresses = ConsentioUpsertClientAddressesOperator(
        task_id="upsert_addresses",
        sql="SELECT address_code, customer_code, street, city, zip, country, lat, lon FROM erp_customer_addresses",
        sql_conn_id=ERP_CONN_ID,
        column_map={
            "external_id": "address_code",
            "client_external_id": "customer_code",
            "postal_code": "zip",
            "latitude": "lat",
            "longitude": "lon",
        },
        outlets=[],
    )
    products = ConsentioUpsertProductsOperator(
        task_id="upsert_products",
        sql="SELECT item_code, description, ean, unit, sale_units, tags FROM erp_items ORDER BY item_code",
        sql_conn_id=ERP_CONN_ID,
        column_map={"sku": "item_code", "name": "description", "ean_code": "ean", "price_unit": "unit"},
        outlets=[],
    )
    base_prices = ConsentioSetBasePricesOperator(
        task_id="set_base_prices",
        sql="SELECT item_code, price FROM erp_price_list ORDER BY item_code",
        sql_conn_id=ERP_CONN_ID,
        column_map={"sku": "item_code", "base_price": "price"},
        outlets=[],
    )
    price_groups = ConsentioSyncPriceGroupsOperator(
        task_id="sync_price_groups",
        sql="SELECT group_code, group_name, item_code, price, unit FROM erp_price_groups",
        sql_conn_id=ERP_CONN_ID,
        column_map={
            "pricegroup_id": "group_code",
            "pricegroup_name": "group_name",
            "sku": "item_code",
            "price_unit": "unit",
        },
        outlets=[],
    )

    @task(outlets=[catalogue_asset()])
    def catalogue_ready(
        clients: dict[str, Any],
        addresses: dict[str, Any],
        products: dict[str, Any],
        base_prices: dict[str, Any],
        price_groups: dict[str, Any],
    ) -> dict[str, int]:
        """What each step saved; its event on the catalogue Asset tells downstream DAGs the catalogue is current."""
        return {
            "clients": clients["saved"],
            "addresses": addresses["saved"],
            "products": products["saved"],
            "base_prices": base_prices["saved"],
            "price_groups": price_groups["saved"],
        }

    clients >> addresses
    products >> base_prices >> price_groups
    catalogue_ready(
        clients=clients.output,
        addresses=addresses.output,
        products=products.output,
        base_prices=base_prices.output,
        price_groups=price_groups.output,
    )


consentio_catalogue_daily()
