"""DAGs the catalogue operator tests run with dag.test(): one per scenario, configured per run through params."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.catalogue import (
    ConsentioExportProductsOperator,
    ConsentioSetBasePricesOperator,
    ConsentioSyncPriceGroupsOperator,
    ConsentioUpsertProductsOperator,
)
from airflow_provider_consentio.operators.catalogue_clients import (
    ConsentioExportClientsOperator,
    ConsentioUpsertClientAddressesOperator,
    ConsentioUpsertClientsOperator,
)
from airflow_provider_consentio.operators.promoted_orders import ConsentioCreatePromotedOrdersOperator
from airflow_provider_consentio.version_compat import CronDataIntervalTimetable


def scenario_dag(dag_id: str, **params: Any) -> DAG:
    return DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        render_template_as_native_obj=True,
        params=params,
        default_args={"retries": 0},
        tags=["consentio-tests"],
    )


INPUT = {"records": None, "input_path": None, "sql": None}


def inputs() -> dict[str, Any]:
    return {
        "records": "{{ params.records }}",
        "input_path": "{{ params.input_path }}",
        "sql": "{{ params.sql }}",
        "sql_conn_id": "consentio_test_erp",
    }


for name, options in {
    "json": {},
    "csv": {"send_as": "csv", "csv_separator": ";", "decimal_separator": ",", "language": "es"},
    "decimal_comma_input": {"csv_delimiter": ";", "decimal_separator": ","},
    "tolerant": {"max_rejected": 5},
    "skip_invalid": {"on_invalid": "skip"},
    "small_batches": {"batch_size": 7, "concurrency": 3},
}.items():
    with scenario_dag(f"t_upsert_products_{name}", **INPUT):
        ConsentioUpsertProductsOperator(task_id="upsert", **inputs(), **options)

with scenario_dag("t_export_products", output_path="/tmp/unused.jsonl", start=None, end=None):
    ConsentioExportProductsOperator(
        task_id="export", output_path="{{ params.output_path }}", start="{{ params.start }}", end="{{ params.end }}"
    )

with scenario_dag("t_base_prices", **INPUT):
    ConsentioSetBasePricesOperator(task_id="upsert", **inputs(), max_rejected=5)

with scenario_dag("t_price_groups", **INPUT):
    ConsentioSyncPriceGroupsOperator(task_id="upsert", **inputs(), max_rejected=5)

with scenario_dag("t_upsert_clients", **INPUT):
    ConsentioUpsertClientsOperator(task_id="upsert", **inputs())

with scenario_dag("t_upsert_addresses", **INPUT):
    ConsentioUpsertClientAddressesOperator(task_id="upsert", **inputs(), max_rejected=5)

with scenario_dag("t_export_clients", clients_path="/tmp/unused.jsonl", addresses_path="/tmp/unused2.jsonl"):
    ConsentioExportClientsOperator(task_id="clients", output_path="{{ params.clients_path }}")
    ConsentioExportClientsOperator(task_id="addresses", output_path="{{ params.addresses_path }}", resource="addresses")

with scenario_dag("t_promoted_orders", orders=None, input_path=None):
    ConsentioCreatePromotedOrdersOperator(
        task_id="promote",
        orders="{{ params.orders }}",
        input_path="{{ params.input_path }}",
        max_rejected=5,
        # The sandbox lists new orders at once unless a test sets a lag: a 5xx before the order was applied need
        # not wait the default 10 s before the re-send.
        settle_window=0.3,
    )
