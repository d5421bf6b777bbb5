"""The durable export benchmark's DAG (tests/benchmarks/bench_durable_export.py): one export, one retry."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

with DAG(
    "consentio_durable_bench",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    render_template_as_native_obj=True,
    params={"output_path": "/tmp/unused.jsonl", "start": "2025-01-15", "end": "2025-03-16"},
    default_args={"retries": 1, "retry_delay": timedelta(0)},
):
    ConsentioExportOrdersOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
        checkpoint_interval=1.0,
    )
