"""DAGs the durable export tests (tests/operators/test_durable_export.py) run: one retry, checkpoints after every
sub-window (checkpoint_interval=0) or every period; the changed-products export in 5-minute sub-windows."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.catalogue import ConsentioExportProductsOperator
from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator

PARAMS = {"output_path": "/tmp/unused.jsonl", "start": None, "end": None}
for dag_id, operator, options in (
    ("t_export_durable", ConsentioExportOrdersOperator, {}),
    ("t_export_by_day_durable", ConsentioExportOrdersByPeriodOperator, {}),
    ("t_export_products_durable", ConsentioExportProductsOperator, {"window_size": timedelta(minutes=5)}),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        render_template_as_native_obj=True,
        params=PARAMS,
        default_args={"retries": 1, "retry_delay": timedelta(0)},
        tags=["consentio-tests"],
    ):
        operator(
            task_id="export",
            output_path="{{ params.output_path }}",
            start="{{ params.start }}",
            end="{{ params.end }}",
            checkpoint_interval=0,
            **options,
        )
