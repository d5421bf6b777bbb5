"""consentio_seller_daily's shape built of no-op tasks: Airflow's own cost of running that DAG, for the benchmark.

Same task IDs, dependencies, schedule, start date, concurrency limits and retries as the example seller DAG; every
task is a PythonOperator returning None, except the one the mapped task expands over, which returns no chunks
(as the seller's does unless the run asks to prepare orders). Not EmptyOperator: the scheduler finishes those
without a worker, which would hide the per-task start-up this DAG is here to measure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import chain, dag

from airflow_provider_consentio.timetables import CronDataIntervalTimetable


def _nothing(*_: Any) -> None:
    return None


def _no_chunks() -> list[list[str]]:
    return []


@dag(
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["consentio", "benchmark"],
)
def consentio_seller_noop() -> None:
    create_tables, export, load, push, edited, apply, mark_seen = (
        PythonOperator(task_id=task_id, python_callable=_nothing)
        for task_id in (
            "create_erp_tables",
            "export_accepted_orders",
            "load_orders_into_erp",
            "push_erp_references",
            "fetch_edited_orders",
            "apply_edits_in_erp",
            "mark_edits_seen",
        )
    )
    to_prepare = PythonOperator(task_id="orders_to_prepare", python_callable=_no_chunks)
    prepare = PythonOperator.partial(task_id="prepare_orders", python_callable=_nothing).expand(
        op_args=to_prepare.output
    )
    for one_at_a_time in (edited, apply, mark_seen):
        one_at_a_time.max_active_tis_per_dag = 1
    chain(export, load, push, edited, apply, mark_seen, to_prepare, prepare)
    export >> to_prepare
    create_tables >> load


consentio_seller_noop()
