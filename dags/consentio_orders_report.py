"""
### Consentio orders report (data-aware)

Runs whenever `consentio_seller_daily` publishes a new order export: it is scheduled on the export's Asset, not on
a clock, and reads the file the export recorded in its Asset event. Each event names the day it covers
(`window_start`, `window_end`): the seller run dated D exports [D - 1 day, D).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_consentio.operators.orders import orders_asset

ORDERS = orders_asset("consentio_default", "sale")


@dag(
    schedule=[ORDERS],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["consentio", "example"],
    doc_md=__doc__,
)
def consentio_orders_report() -> None:
    @task
    def summarize_new_orders(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """Count each new export's orders by currency."""
        import json
        from collections import Counter

        from airflow.sdk import ObjectStoragePath

        reports = []
        for event in (triggering_asset_events or {}).get(ORDERS, []):
            path = event.extra["path"]
            with ObjectStoragePath(path).open("r", encoding="utf-8") as lines:
                currencies = Counter(json.loads(line).get("currency") for line in lines if line.strip())
            reports.append({"path": path, "orders": event.extra["count"], "by_currency": dict(currencies)})
            print(f"{path}: {event.extra['count']} orders {dict(currencies)}")
        return reports

    summarize_new_orders()


consentio_orders_report()
