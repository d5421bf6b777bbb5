"""The DAG the metrics test (tests/metrics) runs with its StatsD listener: an export and a write, so that every
metric of the README's list has something to count."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.operators.purchase_needs import ConsentioUpsertPurchaseNeedsOperator

with DAG(
    "t_metrics",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    render_template_as_native_obj=True,
    params={"output_path": "/tmp/unused.jsonl", "start": None, "end": None, "needs": []},
    default_args={"retries": 0},
    tags=["consentio-tests"],
):
    export = ConsentioExportOrdersOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
        window_size=timedelta(hours=6),
    )
    upsert = ConsentioUpsertPurchaseNeedsOperator(task_id="upsert", needs="{{ params.needs }}", batch_size=10)
    export >> upsert
