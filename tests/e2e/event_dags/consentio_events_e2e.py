"""The example consentio_seller_events DAG with a poll interval a test can wait for (tests/e2e/test_event_driven.py)."""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator
from airflow_provider_consentio.triggers.events import ConsentioOrdersEventTrigger

POLL_INTERVAL = float(os.environ.get("CONSENTIO_E2E_POLL_INTERVAL", "10"))
NEW_ACCEPTED_ORDERS = Asset(
    "consentio_e2e_new_accepted_orders",
    watchers=[
        AssetWatcher(
            name="consentio_e2e_new_accepted_orders",
            trigger=ConsentioOrdersEventTrigger(poll_interval=POLL_INTERVAL, settle=1),
        )
    ],
)


@dag(schedule=[NEW_ACCEPTED_ORDERS], start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def consentio_events_e2e() -> None:
    @task
    def announced_window(triggering_asset_events: Any = None) -> dict[str, str]:
        from airflow_provider_consentio.triggers.events import announced_window

        return announced_window(triggering_asset_events, NEW_ACCEPTED_ORDERS)

    announced_window() >> ConsentioExportOrdersOperator(
        task_id="export_new_orders",
        output_path="{{ var.value.consentio_data_dir }}/new-orders/{{ run_id | replace(':', '-') }}.jsonl",
        start="{{ ti.xcom_pull(task_ids='announced_window')['start'] }}",
        end="{{ ti.xcom_pull(task_ids='announced_window')['end'] }}",
        statuses=["accepted"],
    )


consentio_events_e2e()
