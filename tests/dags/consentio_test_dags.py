"""DAGs the operator tests run with dag.test(): one per scenario, configured per run through params (native).

Static settings (window sizes, policies) are fixed here per scenario; values that differ per test (paths, windows,
records) come from the run's conf.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_consentio.operators.orders import (
    ConsentioEditedOrdersOperator,
    ConsentioExportOrdersOperator,
    ConsentioMarkOrdersSeenOperator,
    ConsentioPrepareOrderOperator,
    ConsentioSyncExternalOrdersOperator,
)
from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator
from airflow_provider_consentio.operators.purchase_needs import (
    ConsentioExportPurchaseNeedsOperator,
    ConsentioUpsertPurchaseNeedsOperator,
)
from airflow_provider_consentio.sensors.orders import ConsentioOrdersSensor
from airflow_provider_consentio.version_compat import CronDataIntervalTimetable, CronTriggerTimetable

START = pendulum.datetime(2025, 1, 1, tz="UTC")
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")


def scenario_dag(dag_id: str, schedule: Any = DAILY, **params: Any) -> DAG:
    return DAG(
        dag_id,
        schedule=schedule,
        start_date=START,
        catchup=False,
        render_template_as_native_obj=True,
        params=params,
        default_args={"retries": 0},
        tags=["consentio-tests"],
    )


EXPORT_PARAMS = {"output_path": "/tmp/unused.jsonl", "start": None, "end": None}

for name, window_size in {"hourly": timedelta(hours=1), "six_hourly": timedelta(hours=6)}.items():
    with scenario_dag(f"t_export_{name}", **EXPORT_PARAMS, statuses=None):
        ConsentioExportOrdersOperator(
            task_id="export",
            output_path="{{ params.output_path }}",
            start="{{ params.start }}",
            end="{{ params.end }}",
            statuses="{{ params.statuses }}",
            window_size=window_size,
        )

with scenario_dag(
    "t_export_trigger_timetable", schedule=CronTriggerTimetable("@daily", timezone="UTC"), **EXPORT_PARAMS
):
    ConsentioExportOrdersOperator(task_id="export", output_path="{{ params.output_path }}")

with scenario_dag(
    "t_export_trigger_timetable_lookback", schedule=CronTriggerTimetable("@daily", timezone="UTC"), **EXPORT_PARAMS
):
    ConsentioExportOrdersOperator(task_id="export", output_path="{{ params.output_path }}", empty_interval="lookback")

with scenario_dag("t_edited_then_seen", output_path="/tmp/unused.jsonl", since=None, fail_apply=False):
    edited = ConsentioEditedOrdersOperator(
        task_id="edited", output_path="{{ params.output_path }}", since="{{ params.since }}"
    )

    @task
    def apply(summary: dict[str, Any], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if (params or {}).get("fail_apply"):
            raise RuntimeError("the ERP is down")
        return summary["orders"]

    ConsentioMarkOrdersSeenOperator(task_id="seen", orders=apply(edited.output))

with scenario_dag("t_mark_seen", orders=[]):
    ConsentioMarkOrdersSeenOperator(task_id="seen", orders="{{ params.orders }}")

with scenario_dag("t_prepare_mapped", hash_ids=[]):

    @task
    def pick(params: dict[str, Any] | None = None) -> list[str]:
        return list((params or {})["hash_ids"])

    ConsentioPrepareOrderOperator.partial(task_id="prepare").expand(hash_ids=pick())

with scenario_dag("t_sync_external", references=None, input_path=None):
    ConsentioSyncExternalOrdersOperator(
        task_id="sync", references="{{ params.references }}", input_path="{{ params.input_path }}", batch_size=3
    )

with scenario_dag("t_sync_external_skip_invalid", references=None):
    ConsentioSyncExternalOrdersOperator(
        task_id="sync", references="{{ params.references }}", on_invalid="skip", max_rejected=1
    )

with scenario_dag("t_sensor_new_orders", start=None, end=None):
    ConsentioOrdersSensor(
        task_id="wait",
        start="{{ params.start }}",
        end="{{ params.end }}",
        poke_interval=0.2,
        timeout=30,
        deferrable=True,
    )

UPSERT_PARAMS = {"needs": None, "input_path": None, "sql": None}
for name, options in {
    "default": {},
    "skip_invalid": {"on_invalid": "skip"},
    "tolerant": {"max_rejected": 5},
    "small_batches": {"batch_size": 7, "concurrency": 3},
}.items():
    with scenario_dag(f"t_upsert_needs_{name}", **UPSERT_PARAMS):
        ConsentioUpsertPurchaseNeedsOperator(
            task_id="upsert",
            needs="{{ params.needs }}",
            input_path="{{ params.input_path }}",
            sql="{{ params.sql }}",
            sql_conn_id="consentio_test_erp",
            column_map={"code": "line_code", "reference_code": "product_code"},
            **options,
        )

with scenario_dag("t_export_needs", output_path="/tmp/unused.jsonl", from_date=None, to_date=None, status=None):
    ConsentioExportPurchaseNeedsOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        from_date="{{ params.from_date }}",
        to_date="{{ params.to_date }}",
        status="{{ params.status }}",
    )

# Purchase-need field <- ERP column (the demo ERP's demand_lines names), as the buyer example DAG maps them.
ERP_COLUMN_MAP = {
    "code": "line_code",
    "reference_code": "product_code",
    "start_date": "delivery_from",
    "end_date": "delivery_to",
    "quantity": "qty",
    "quantity_unit": "unit",
    "external_status": "status",
    "storage_location_code": "warehouse",
    "delivery_address_code": "depot",
    "tender_kind": "tender",
    "metadata": "notes",
}

with scenario_dag("t_needs_erp_columns", **UPSERT_PARAMS):
    ConsentioUpsertPurchaseNeedsOperator(
        task_id="upsert",
        needs="{{ params.needs }}",
        input_path="{{ params.input_path }}",
        sql="{{ params.sql }}",
        sql_conn_id="consentio_test_erp",
        column_map=ERP_COLUMN_MAP,
    )

# tests/reliability/test_bad_input.py: an order kind the API does not know (refused when the task runs).
with scenario_dag("t_bad_export_kind", **EXPORT_PARAMS):
    ConsentioExportOrdersOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
        kind="sales",
    )

# tests/operators/test_export_by_period.py: a long window, one file per day.
with scenario_dag("t_export_by_day", **EXPORT_PARAMS):
    ConsentioExportOrdersByPeriodOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
    )

with scenario_dag("t_export_by_hour", **EXPORT_PARAMS):
    ConsentioExportOrdersByPeriodOperator(
        task_id="export",
        output_path="{{ params.output_path }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
        period=timedelta(hours=1),
    )
