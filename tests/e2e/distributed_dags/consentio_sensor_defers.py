"""The distributed test's sensor DAG: waits, deferred in the triggerer, for an order the test adds later."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_consentio.sensors.orders import ConsentioOrdersSensor

# A day after the sandbox's seeded data: nothing is there until the test adds an order.
WINDOW_START = "2025-06-01T00:00:00Z"
WINDOW_END = "2025-06-02T00:00:00Z"

with DAG(
    "consentio_sensor_defers",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    tags=["consentio-tests"],
):
    ConsentioOrdersSensor(
        task_id="wait_for_new_orders",
        start=WINDOW_START,
        end=WINDOW_END,
        min_count=1,
        deferrable=True,
        poke_interval=2,
        timeout=600,
    )
