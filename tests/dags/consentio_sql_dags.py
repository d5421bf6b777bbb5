"""The scenario DAG of the SQL transfer's dag.test: the export by period, then its files into the `warehouse`."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator
from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

with DAG(
    "t_export_days_into_sql",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"data_dir": "/tmp", "start": "2025-03-01", "end": "2025-03-04"},
):
    export = ConsentioExportOrdersByPeriodOperator(
        task_id="export",
        output_path="{{ params.data_dir }}/orders/{day}.jsonl",
        start="{{ params.start }}",
        end="{{ params.end }}",
        window_size=timedelta(days=1),
    )
    ConsentioToSqlOperator(task_id="load", input_path=export.output, sql_conn_id="warehouse", table_prefix="wh_")
