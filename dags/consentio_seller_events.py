"""
### Consentio seller: export new accepted orders as they arrive (event-driven)

Scheduled on an Asset watched in the triggerer, not on a clock: `ConsentioOrdersEventTrigger` polls Consentio every
minute and the DAG runs only when new accepted orders appeared. The event names the window the orders were created
in; the run exports exactly that window, so every order lands in exactly one file. The trigger's watermark is kept
in the asset's state store (Airflow 3.3), so a triggerer restart neither repeats nor skips a window.

Variable `consentio_data_dir`: where the files go.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.triggers.events import ConsentioOrdersEventTrigger

NEW_ACCEPTED_ORDERS = Asset(
    "consentio_new_accepted_orders",
    watchers=[
        AssetWatcher(
            name="consentio_new_accepted_orders",
            trigger=ConsentioOrdersEventTrigger(watch="new_orders", status="accepted", poll_interval=60),
        )
    ],
)
DATA_DIR = "{{ var.value.get('consentio_data_dir', '/tmp/consentio-data') }}"


@dag(
    schedule=[NEW_ACCEPTED_ORDERS],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["consentio", "example"],
    doc_md=__doc__,
)
def consentio_seller_events() -> None:
    @task
    def announced_window(triggering_asset_events: Any = None) -> dict[str, str]:
        """The [start, end) the triggering event(s) announced new accepted orders in."""
        from airflow_provider_consentio.triggers.events import announced_window

        return announced_window(triggering_asset_events, NEW_ACCEPTED_ORDERS)

    window = announced_window()
    export = ConsentioExportOrdersOperator(
        task_id="export_new_orders",
        output_path=DATA_DIR + "/new-orders/{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl",
        start="{{ ti.xcom_pull(task_ids='announced_window')['start'] }}",
        end="{{ ti.xcom_pull(task_ids='announced_window')['end'] }}",
        statuses=["accepted"],
    )
    window >> export


consentio_seller_events()
