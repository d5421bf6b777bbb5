"""DAGs the lineage tests (tests/lineage) run: the only ones that emit OpenLineage events (tests/conftest.py's
emission policy selects the DAG IDs starting with ``t_lineage_``)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.catalogue import (
    ConsentioExportProductsOperator,
    ConsentioUpsertProductsOperator,
)
from airflow_provider_consentio.operators.catalogue_clients import ConsentioExportClientsOperator
from airflow_provider_consentio.operators.orders import (
    ConsentioEditedOrdersOperator,
    ConsentioExportOrdersOperator,
    ConsentioMarkOrdersSeenOperator,
)
from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator
from airflow_provider_consentio.operators.purchase_needs import ConsentioUpsertPurchaseNeedsOperator


def lineage_dag(dag_id: str, **params: object) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        render_template_as_native_obj=True,
        params=params,
        default_args={"retries": 0},
        tags=["consentio-tests"],
    )


WINDOW = {"output_path": "/tmp/unused.jsonl", "start": None, "end": None}

with lineage_dag("t_lineage_export", **WINDOW):
    ConsentioExportOrdersOperator(
        task_id="export", output_path="{{ params.output_path }}", start="{{ params.start }}", end="{{ params.end }}"
    )

with lineage_dag("t_lineage_export_by_day", **WINDOW):
    ConsentioExportOrdersByPeriodOperator(
        task_id="export", output_path="{{ params.output_path }}", start="{{ params.start }}", end="{{ params.end }}"
    )

with lineage_dag("t_lineage_upsert", input_path=None):
    ConsentioUpsertPurchaseNeedsOperator(task_id="upsert", input_path="{{ params.input_path }}")

with lineage_dag("t_lineage_edited_then_seen", output_path="/tmp/unused.jsonl", since=None):
    edited = ConsentioEditedOrdersOperator(
        task_id="edited", output_path="{{ params.output_path }}", since="{{ params.since }}"
    )
    ConsentioMarkOrdersSeenOperator(task_id="seen", orders=edited.output)

with lineage_dag("t_lineage_catalogue", input_path=None, output_dir="/tmp", start=None, end=None):
    upsert = ConsentioUpsertProductsOperator(task_id="upsert_products", input_path="{{ params.input_path }}")
    export = ConsentioExportProductsOperator(
        task_id="export_products",
        output_path="{{ params.output_dir }}/products.jsonl",
        start="{{ params.start }}",
        end="{{ params.end }}",
    )
    clients = ConsentioExportClientsOperator(
        task_id="export_clients", output_path="{{ params.output_dir }}/clients.jsonl"
    )
    upsert >> [export, clients]
