"""
### Consentio buyer, daily

Every day, for the demand planned that day in the ERP:

1. **upsert** the demand lines as Consentio purchase needs, straight from a SQL query (validated first: one bad
   line fails the run and names its code; nothing is sent),
2. **read back** the purchase needs whose delivery window falls in the next week,
3. **load** them into the ERP's `erp_purchase_needs` table (`ConsentioToSqlOperator`: typed columns, newest version
   wins),
4. **reconcile**: every line sent is in Consentio with the same product, window, quantity, unit and status.

Connections: `consentio_default` (Consentio) and `consentio_erp` (the ERP database with a `demand_lines` table).
Variable `consentio_data_dir`: where the read-back file goes.

**Which day a run covers.** A run with logical date D sends the demand planned for the day before it (plan date
D - 1 day, its data interval [D - 1 day, D)): the run dated 2025-03-11 sends the lines planned for 2025-03-10. To
(re)send one day from *Trigger*, pick the day after it as the logical date.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_consentio.operators.purchase_needs import (
    ConsentioExportPurchaseNeedsOperator,
    ConsentioUpsertPurchaseNeedsOperator,
)
from airflow_provider_consentio.timetables import CronDataIntervalTimetable
from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

ERP_CONN_ID = "consentio_erp"
DATA_DIR = "{{ var.value.get('consentio_data_dir', '/tmp/consentio-data') }}"
# The day a run covers. Not {{ ds }}: a manual run at logical date D covers [D - 1 day, D).
DAY = "{{ data_interval_start | ds }}"
DEMAND_LINES_SQL = (
    "SELECT line_code, product_code, delivery_from, delivery_to, qty, unit, status, warehouse, depot, tender, notes"
    f" FROM demand_lines WHERE plan_date = '{DAY}' ORDER BY line_code"
)
# Purchase-need field <- ERP column.
COLUMN_MAP = {
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
COMPARED_FIELDS = ("reference_code", "start_date", "end_date", "quantity", "quantity_unit", "external_status")


@dag(
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["consentio", "example"],
    doc_md=__doc__,
)
def consentio_buyer_daily() -> None:
    upsert = ConsentioUpsertPurchaseNeedsOperator(
        task_id="upsert_purchase_needs",
        sql=DEMAND_LINES_SQL,
        sql_conn_id=ERP_CONN_ID,
        column_map=COLUMN_MAP,
    )

    read_back = ConsentioExportPurchaseNeedsOperator(
        task_id="read_back_purchase_needs",
        output_path=DATA_DIR + "/purchase_needs/" + DAY + ".jsonl",
        from_date="{{ macros.ds_add(data_interval_start | ds, 1) }}",
        to_date="{{ macros.ds_add(data_interval_start | ds, 8) }}",
    )

    @task
    def reconcile(upserted: dict[str, Any], read_back_summary: dict[str, Any], demand_lines_sql: str) -> dict[str, Any]:
        """Every demand line of the day is in Consentio with the values sent."""
        import json
        from decimal import Decimal

        from airflow.sdk import ObjectStoragePath

        from airflow_provider_consentio.operators.base.inputs import load_records

        lines, _ = load_records(sql=demand_lines_sql, sql_conn_id=ERP_CONN_ID, column_map=COLUMN_MAP)
        with ObjectStoragePath(read_back_summary["path"]).open("r", encoding="utf-8") as stored:
            needs = [json.loads(row, parse_float=Decimal) for row in stored if row.strip()]
        in_consentio = {need["code"]: need for need in needs}
        mismatched = []
        for line in lines:
            stored_need = in_consentio.get(line["code"])
            if stored_need is None:
                mismatched.append(f"{line['code']}: missing in Consentio")
                continue
            for field in COMPARED_FIELDS:
                sent, kept = str(line[field]), str(stored_need.get(field))
                if field == "quantity":
                    sent, kept = str(Decimal(sent).normalize()), str(Decimal(kept).normalize())
                if sent != kept:
                    mismatched.append(f"{line['code']}: {field} sent {sent!r}, Consentio has {kept!r}")
        if mismatched:
            raise ValueError(
                f"{len(mismatched)} demand line(s) do not match Consentio:\n" + "\n".join(mismatched[:100])
            )
        return {
            "lines": len(lines),
            "matched": len(lines),
            "created": upserted["created"],
            "updated": upserted["updated"],
        }

    load = ConsentioToSqlOperator(
        task_id="load_purchase_needs_into_erp",
        input_path=read_back.output,
        sql_conn_id=ERP_CONN_ID,
        resource="purchase_needs",
        table_prefix="erp_",
    )
    upsert >> read_back >> load
    reconcile(upsert.output, read_back.output, demand_lines_sql=DEMAND_LINES_SQL)


consentio_buyer_daily()
