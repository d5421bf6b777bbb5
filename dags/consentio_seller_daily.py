"""
### Consentio seller, daily

Every day, for the day that just ended:

1. **export** the accepted orders created that day to a JSONL file (exactly as Consentio sent them),
2. **load** them into the ERP's tables (`ConsentioToSqlOperator`: typed `erp_orders` and `erp_order_items`, newest
   version wins) and give each an ERP order number (the only ERP-specific code here: `give_erp_numbers`),
3. **push** those numbers back to Consentio as external references,
4. **fetch** the orders edited after acceptance that were not acknowledged yet,
5. **apply** the edits in the ERP (the same load; idempotent: an edit delivered twice is applied once),
6. **mark seen** exactly the edits that were applied (a failure before this step re-delivers them next run),
7. optionally **prepare** the day's orders (param `prepare_orders`).

Connections: `consentio_default` (Consentio) and `consentio_erp` (the ERP database: SQLite in the demo; point it
at Postgres and nothing else changes). Variable `consentio_data_dir`: where the files go.

**Which day a run covers.** A run with logical date D covers the day before it, [D - 1 day, D): the run dated
2025-03-11 exports the orders of 2025-03-10. To (re)process one day from *Trigger*, pick the day after it as
the logical date; a scheduled run fires at midnight UTC for the day that just ended. The schedule is a
`CronDataIntervalTimetable`, so every run owns a real [start, end) day and a backfill exports each day exactly once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, chain, dag, task

from airflow_provider_consentio.operators.orders import (
    ConsentioEditedOrdersOperator,
    ConsentioExportOrdersOperator,
    ConsentioMarkOrdersSeenOperator,
    ConsentioPrepareOrderOperator,
    ConsentioSyncExternalOrdersOperator,
)
from airflow_provider_consentio.operators.partitioned_export import ConsentioExportOrdersByPeriodOperator
from airflow_provider_consentio.timetables import CronDataIntervalTimetable
from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

ERP_CONN_ID = "consentio_erp"
DATA_DIR = "{{ var.value.get('consentio_data_dir', '/tmp/consentio-data') }}"
# The day a run covers. Not {{ ds }}: a manual run at logical date D covers [D - 1 day, D).
DAY = "{{ data_interval_start | ds }}"
PREPARE_CHUNK = 50
NUMBER_CHUNK = 5000  # ERP numbers given per transaction: a year of history is not held in memory at once
# Every run's edits steps see the same unseen edits, whatever its day: in runs side by side (a backfill) they would
# fetch, apply and acknowledge them all again. One instance at a time across runs; the load keeps the newest
# version should two runs still overlap.
EDITS_ONE_AT_A_TIME: dict[str, Any] = {"max_active_tis_per_dag": 1}

ERP_TABLES = [
    # The ERP's own column: its order number. The load adds Consentio's columns beside it (and never touches it).
    "CREATE TABLE IF NOT EXISTS erp_orders (id BIGINT PRIMARY KEY, erp_number TEXT)",
    # One row per edit version applied: the edit log an auditor (or the chaos test) reads.
    """CREATE TABLE IF NOT EXISTS erp_order_edits (
        hash_id TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (hash_id, updated_at)
    )""",
]
# The load writes erp_orders and erp_order_items (README, "Into a SQL database").
TABLE_PREFIX = "erp_"


def _erp() -> Any:
    from airflow.sdk import BaseHook

    # log_sql=False: every row's statement would otherwise be logged.
    return BaseHook.get_connection(ERP_CONN_ID).get_hook(hook_params={"log_sql": False})


# One instance at a time across runs: runs side by side (a backfill) would race to create the tables, and Postgres
# fails all but one of concurrent CREATE TABLE IF NOT EXISTS of the same table. A real ERP has its tables already.
@task(max_active_tis_per_dag=1)
def create_erp_tables() -> None:
    """Create the ERP's own tables, if missing."""
    hook = _erp()
    for statement in ERP_TABLES:
        hook.run(statement)


def _executemany(hook: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    from contextlib import closing

    with closing(hook.get_conn()) as conn:
        conn.cursor().executemany(sql, rows)
        conn.commit()


def _erp_number(order_id: int) -> str:
    """The ERP's own order number (a stand-in: a real ERP assigns it on insert)."""
    return f"ERP-{order_id:08d}"


@task
def give_erp_numbers(export_summary: dict[str, Any], references_path: str) -> dict[str, Any]:
    """The ERP's part: each exported order without an ERP number gets one (kept across edits: the load leaves the
    column alone); the numbers of the exported orders go back to Consentio (a file for the push)."""
    import io
    import json

    import msgspec
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_consentio.transfers.consentio_to_sql import input_files

    # Only the exported orders, in ID order, a chunk at a time. Numbering every unnumbered row instead made each
    # run of a backfill renumber its neighbours' days too (31,833 rows, 20 s, at 10,000 orders a day), and two
    # runs updating the same rows in different orders can deadlock; days are disjoint, so runs side by side now
    # never update the same row.
    hook = _erp()
    sql = f"UPDATE erp_orders SET erp_number = {hook.placeholder} WHERE id = {hook.placeholder} AND erp_number IS NULL"
    order = msgspec.json.Decoder(msgspec.defstruct("Order", [("id", int), ("hash_id", str)]))
    target = ObjectStoragePath(references_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    loaded, chunk = 0, []
    with target.open("w", encoding="utf-8") as out:
        for path in input_files(export_summary):
            # Lines through a 1 MB buffer: iterating an S3 file's lines directly copies a 5 MB block per line
            # (fsspec's readline), 2.2 s of CPU for a day of 10,000 orders; buffered, 0.05 s.
            with ObjectStoragePath(path).open("rb") as raw:
                for line in filter(bytes.strip, io.BufferedReader(raw, 1024 * 1024)):
                    keys = order.decode(line)
                    reference = {"hash_id": keys.hash_id, "external_id": _erp_number(keys.id)}
                    out.write(json.dumps({**reference, "external_status": "imported"}) + "\n")
                    loaded += 1
                    chunk.append(keys.id)
                    if len(chunk) == NUMBER_CHUNK:
                        _executemany(hook, sql, [(_erp_number(order_id), order_id) for order_id in sorted(chunk)])
                        chunk.clear()
    _executemany(hook, sql, [(_erp_number(order_id), order_id) for order_id in sorted(chunk)])
    return {"loaded": loaded, "references_path": references_path}


@dag(
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    # Days are independent: exports, loads and pushes of different days run side by side. Only the edits steps work
    # on the workspace's current unseen edits, not on the run's day: they run one at a time (EDITS_ONE_AT_A_TIME).
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "prepare_orders": Param(
            False,
            type="boolean",
            description="Also mark the covered day's orders prepared (the day before the logical date)",
        )
    },
    tags=["consentio", "example"],
    doc_md=__doc__,
)
def consentio_seller_daily() -> None:
    export = ConsentioExportOrdersOperator(
        task_id="export_accepted_orders",
        output_path=DATA_DIR + "/orders/" + DAY + ".jsonl",
        statuses=["accepted"],
    )

    load = ConsentioToSqlOperator(
        task_id="load_orders_into_erp", input_path=export.output, sql_conn_id=ERP_CONN_ID, table_prefix=TABLE_PREFIX
    )
    numbered = give_erp_numbers(export.output, references_path=DATA_DIR + "/references/" + DAY + ".jsonl")
    create_erp_tables() >> load >> numbered

    push_references = ConsentioSyncExternalOrdersOperator(
        task_id="push_erp_references",
        input_path="{{ ti.xcom_pull(task_ids='give_erp_numbers')['references_path'] }}",
    )

    edited = ConsentioEditedOrdersOperator(
        task_id="fetch_edited_orders",
        output_path=DATA_DIR + "/edited/" + DAY + ".jsonl",
        **EDITS_ONE_AT_A_TIME,
    )

    load_edits = ConsentioToSqlOperator(
        task_id="load_edits_into_erp",
        input_path=edited.output,
        sql_conn_id=ERP_CONN_ID,
        table_prefix=TABLE_PREFIX,
        **EDITS_ONE_AT_A_TIME,
    )

    # Not its return value in the log: on a first run it is every pending edit of the lookback (2,297 at 10,000
    # orders a day), one log line of 100+ KB. The XCom stays: mark seen needs exactly those versions.
    @task(show_return_value_in_logs=False, **EDITS_ONE_AT_A_TIME)
    def apply_edits_in_erp(edited_summary: dict[str, Any]) -> list[dict[str, Any]]:
        """Log each edit version the load applied; return exactly those versions (for mark seen)."""
        hook = _erp()
        sql = (
            "INSERT INTO erp_order_edits (hash_id, updated_at)"
            f" VALUES ({hook.placeholder}, {hook.placeholder}) ON CONFLICT DO NOTHING"
        )
        _executemany(hook, sql, [(order["hash_id"], order["updated_at"]) for order in edited_summary["orders"]])
        return edited_summary["orders"]

    applied = apply_edits_in_erp(edited.output)
    load_edits >> applied

    mark_seen = ConsentioMarkOrdersSeenOperator(task_id="mark_edits_seen", orders=applied, **EDITS_ONE_AT_A_TIME)

    @task
    def orders_to_prepare(numbered: dict[str, Any], params: dict[str, Any] | None = None) -> list[list[str]]:
        """The day's hash IDs in chunks, or nothing unless the run asked for it (mapping over [] skips)."""
        import json

        from airflow.sdk import ObjectStoragePath

        if not (params or {}).get("prepare_orders"):
            return []
        with ObjectStoragePath(numbered["references_path"]).open("r", encoding="utf-8") as references:
            hash_ids = [json.loads(line)["hash_id"] for line in references]
        return [hash_ids[i : i + PREPARE_CHUNK] for i in range(0, len(hash_ids), PREPARE_CHUNK)]

    to_prepare = orders_to_prepare(numbered)
    prepare = ConsentioPrepareOrderOperator.partial(task_id="prepare_orders").expand(hash_ids=to_prepare)

    chain(numbered, push_references, edited)
    chain(mark_seen, to_prepare, prepare)


consentio_seller_daily()


HISTORY_DOC = """
### Consentio seller, history

Loads a whole range of days (for example last year, on first setting up) in **one run**, not one run per day:

1. **export** the accepted orders, one file per day: the very files `consentio_seller_daily` writes for those days,
2. **load** them all into the ERP (`ConsentioToSqlOperator`, one transaction for the whole range),
3. **push** the ERP numbers back to Consentio.

Trigger it with the params `start` and `end` (dates, end exclusive). Safe alongside the daily DAG: both write the
same day files with the same bytes, the ERP keys orders on their ID and keeps their first ERP number, and pushing a
reference twice sets the same value, so a day loaded by both is in the ERP once. Edits stay with the daily DAG.
"""


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "start": Param("2025-01-01", type="string", format="date", description="The first day to load"),
        "end": Param("2025-04-01", type="string", format="date", description="The day after the last day to load"),
    },
    tags=["consentio", "example"],
    doc_md=HISTORY_DOC,
)
def consentio_seller_history() -> None:
    export = ConsentioExportOrdersByPeriodOperator(
        task_id="export_accepted_orders_by_day",
        output_path=DATA_DIR + "/orders/{day}.jsonl",
        start="{{ params.start }}",
        end="{{ params.end }}",
        statuses=["accepted"],
        # Requests of up to a day (each still at most max_orders_per_request orders): a quiet year takes one a day.
        window_size=timedelta(days=1),
    )

    load = ConsentioToSqlOperator(
        task_id="load_days_into_erp", input_path=export.output, sql_conn_id=ERP_CONN_ID, table_prefix=TABLE_PREFIX
    )
    numbered = give_erp_numbers(
        export.output, references_path=DATA_DIR + "/references/history-{{ params.start }}-{{ params.end }}.jsonl"
    )
    create_erp_tables() >> load >> numbered

    push_references = ConsentioSyncExternalOrdersOperator(
        task_id="push_erp_references",
        input_path="{{ ti.xcom_pull(task_ids='give_erp_numbers')['references_path'] }}",
    )
    chain(numbered, push_references)


consentio_seller_history()
