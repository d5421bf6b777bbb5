"""OpenLineage: real DAG runs with the openlineage provider installed emit, through its file transport (set up in
tests/conftest.py; the DAGs are in tests/dags/consentio_lineage_dags.py), the inputs and outputs each Consentio
operator reports, named per the naming spec, with row counts; the suite-wide secret scan reads the same events file
at session end."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.models.jsonwire import dumps

pytest.importorskip("airflow.providers.openlineage", reason="the openlineage provider (test extra) is not installed")

# Set by tests/conftest.py before Airflow is imported.
OPENLINEAGE_EVENTS = Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])

WINDOW = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-01T06:00:00Z"}


def complete_event(dag_id: str, task_id: str, since: int) -> dict[str, Any]:
    """The COMPLETE event of ``dag_id.task_id`` among the events written after byte ``since`` of the file."""
    with OPENLINEAGE_EVENTS.open("rb") as events:
        events.seek(since)
        lines = events.read().decode().splitlines()
    found = [
        event
        for event in map(json.loads, lines)
        if event.get("eventType") == "COMPLETE" and event["job"]["name"] == f"{dag_id}.{task_id}"
    ]
    assert found, f"no COMPLETE event for {dag_id}.{task_id} in {len(lines)} new events"
    return found[-1]


def events_size() -> int:
    return OPENLINEAGE_EVENTS.stat().st_size if OPENLINEAGE_EVENTS.exists() else 0


def named(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(dataset["namespace"], dataset["name"]) for dataset in datasets]


def rows_in(dataset: dict[str, Any], facets: str, facet: str) -> int:
    return dataset[facets][facet]["rowCount"]


@pytest.fixture
def api_namespace(sandbox) -> str:
    host = httpx.URL(sandbox.base_url)
    return f"consentio://{host.host}:{host.port}/{sandbox.workspace_id}"


def test_the_order_export_reads_the_orders_resource_and_writes_the_file_with_its_row_count(
    run_dag, tmp_path, api_namespace
):
    out = tmp_path / "orders.jsonl"
    since = events_size()
    result = run_dag("t_lineage_export", output_path=str(out), **WINDOW)
    assert result.succeeded, result.output[-3000:]

    event = complete_event("t_lineage_export", "export", since)
    count = result.xcoms["export"]["count"]
    assert count > 0 and len(out.read_text().splitlines()) == count
    assert named(event["inputs"]) == [(api_namespace, "orders/sale")]
    assert named(event["outputs"]) == [("file", str(out))]
    assert rows_in(event["inputs"][0], "inputFacets", "inputStatistics") == count
    assert rows_in(event["outputs"][0], "outputFacets", "outputStatistics") == count


def test_the_export_by_day_names_one_output_per_file(run_dag, tmp_path, api_namespace):
    since = events_size()
    template = str(tmp_path / "{day}.jsonl")
    window = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-03T00:00:00Z"}
    result = run_dag("t_lineage_export_by_day", output_path=template, **window)
    assert result.succeeded, result.output[-3000:]

    event = complete_event("t_lineage_export_by_day", "export", since)
    partitions = result.xcoms["export"]["partitions"]
    assert named(event["inputs"]) == [(api_namespace, "orders/sale")]
    assert named(event["outputs"]) == [("file", partition["path"]) for partition in partitions]
    assert [rows_in(output, "outputFacets", "outputStatistics") for output in event["outputs"]] == [
        partition["count"] for partition in partitions
    ]


def test_purchase_needs_upsert_reads_the_file_and_writes_the_resource(run_dag, tmp_path, api_namespace):
    needs = [
        {"code": f"LIN-{n:03d}", "reference_code": "PRD-00001", "start_date": "2025-03-01", "end_date": "2025-03-02",
         "quantity": n + 1, "quantity_unit": "box", "external_status": "A", "storage_location_code": "WH01"}
        for n in range(12)
    ]  # fmt: skip
    path = tmp_path / "needs.jsonl"
    path.write_text("".join(dumps(need) + "\n" for need in needs), encoding="utf-8")
    since = events_size()
    result = run_dag("t_lineage_upsert", input_path=str(path))
    assert result.succeeded, result.output[-3000:]

    event = complete_event("t_lineage_upsert", "upsert", since)
    assert named(event["inputs"]) == [("file", str(path))]
    assert named(event["outputs"]) == [(api_namespace, "purchase-needs")]
    assert rows_in(event["outputs"][0], "outputFacets", "outputStatistics") == 12


def test_edited_orders_and_mark_seen_name_the_edited_orders_resource(run_dag, sandbox, tmp_path, api_namespace):
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-08T00:00:00Z", "kind": "sale", "status": "accepted"}
    orders = httpx.get(f"{sandbox.base_url}/_sandbox/orders", params=query, timeout=30).json()
    for order in orders[:3]:
        httpx.post(f"{sandbox.base_url}/_sandbox/orders/{order['hash_id']}/edit", timeout=30).raise_for_status()
    since = events_size()
    out = tmp_path / "edited.jsonl"
    result = run_dag("t_lineage_edited_then_seen", output_path=str(out), since="2020-01-01T00:00:00Z")
    assert result.succeeded, result.output[-3000:]

    edited = complete_event("t_lineage_edited_then_seen", "edited", since)
    seen = complete_event("t_lineage_edited_then_seen", "seen", since)
    assert named(edited["inputs"]) == [(api_namespace, "orders/edited")]
    assert named(edited["outputs"]) == [("file", str(out))]
    count = result.xcoms["edited"]["count"]
    assert count >= 3  # the three edited here, and those the sandbox seeds
    assert rows_in(edited["inputs"][0], "inputFacets", "inputStatistics") == count
    assert rows_in(edited["outputs"][0], "outputFacets", "outputStatistics") == count
    assert named(seen["outputs"]) == [(api_namespace, "orders/edited")]
    assert rows_in(seen["outputs"][0], "outputFacets", "outputStatistics") == result.xcoms["seen"]["seen"] == count


def test_catalogue_writes_and_exports_name_their_catalogue_resource(run_dag, tmp_path, api_namespace):
    products = [
        {"sku": f"LIN-{n:03d}", "name": f"Product {n}", "base_price": f"{n}.25", "price_unit": "kg"} for n in range(7)
    ]
    path = tmp_path / "products.jsonl"
    path.write_text("".join(dumps(product) + "\n" for product in products), encoding="utf-8")
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    since = events_size()
    result = run_dag("t_lineage_catalogue", input_path=str(path), output_dir=str(tmp_path), **window)
    assert result.succeeded, result.output[-3000:]

    upsert = complete_event("t_lineage_catalogue", "upsert_products", since)
    assert named(upsert["inputs"]) == [("file", str(path))]
    assert named(upsert["outputs"]) == [(api_namespace, "catalogue/products")]
    assert rows_in(upsert["outputs"][0], "outputFacets", "outputStatistics") == 7

    export = complete_event("t_lineage_catalogue", "export_products", since)
    exported = result.xcoms["export_products"]["count"]
    assert exported >= 7  # these seven, changed just now, and any other test's in the same hour
    assert named(export["inputs"]) == [(api_namespace, "catalogue/products")]
    assert named(export["outputs"]) == [("file", str(tmp_path / "products.jsonl"))]
    assert rows_in(export["outputs"][0], "outputFacets", "outputStatistics") == exported

    clients = complete_event("t_lineage_catalogue", "export_clients", since)
    assert named(clients["inputs"]) == [(api_namespace, "catalogue/clients")]
    assert rows_in(clients["inputs"][0], "inputFacets", "inputStatistics") == result.xcoms["export_clients"]["count"]


def test_the_api_namespace_is_the_host_and_the_workspace():
    from airflow_provider_consentio.client import ConsentioSettings
    from airflow_provider_consentio.operators.base.lineage import api_namespace

    with_path = ConsentioSettings(workspace_id=7, base_url="https://api.example.com:8443/partner/v1", api_key="k")
    assert api_namespace(with_path) == "consentio://api.example.com:8443/7"
    assert api_namespace(ConsentioSettings(workspace_id=7)) == "consentio://api.consentio.co/7"


def test_the_events_file_is_where_the_secret_scan_looks():
    # tests/conftest.py scans <AIRFLOW_HOME>/<this name> at session end.
    assert OPENLINEAGE_EVENTS.parent == Path(os.environ["AIRFLOW_HOME"])
