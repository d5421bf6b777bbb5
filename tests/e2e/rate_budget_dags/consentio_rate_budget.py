"""The rate budget test's DAGs (tests/e2e/test_rate_budget_distributed.py): each run reads one day of sale orders in
five-minute sub-windows, so that a few runs side by side send many small requests.

The two DAGs differ only in their Consentio connection: one without a rate budget, one whose budget is shared
through a Redis store. A backfill of each over the same days gives two sets of files that must be byte-identical.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.timetables import CronDataIntervalTimetable

# DAG ID -> the Consentio connection its export uses (the test creates both connections).
CONNECTIONS = {
    "consentio_rate_budget_off": "consentio_unbudgeted",
    "consentio_rate_budget_on": "consentio_budgeted",
}
# One folder per DAG: the test compares the files of the two.
OUTPUT_PATH = "{{ var.value.consentio_data_dir }}/rate_budget/{{ dag.dag_id }}/{{ data_interval_start | ds }}.jsonl"
# The largest sub-window: 288 requests a day, each answer a handful of orders at most.
SUB_WINDOW = timedelta(minutes=5)

for dag_id, conn_id in CONNECTIONS.items():
    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=4,
        # A failed request fails the test: neither the budget nor the store's restart may cost a task.
        default_args={"retries": 0},
        tags=["consentio-tests"],
    ):
        ConsentioExportOrdersOperator(
            task_id="export_orders",
            consentio_conn_id=conn_id,
            output_path=OUTPUT_PATH,
            window_size=SUB_WINDOW,
        )
