"""A real Airflow (api-server, scheduler, dag-processor, triggerer; SQLite; 127.0.0.1) with the sandbox.

* The connection form: /ui/connections/hook_meta serves the consentio type with its fields, and the Test
  button logs in (or says why not).
* A 7-day backfill of consentio_seller_daily under the scheduler: every task succeeds and the ERP holds exactly
  the sandbox's accepted orders of those days, each with its ERP number pushed back to Consentio.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_consentio.demo.erp import sqlite_connection
from airflow_provider_consentio.demo.stack import AirflowEnv, AirflowServices, SandboxProcess, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SELLER = "consentio_seller_daily"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("airflow-stack")
    with SandboxProcess(workdir / "sandbox") as sandbox:
        env = AirflowEnv(
            home=workdir / "airflow",
            dags_folder=REPO / "dags",
            connections={
                "consentio_default": sandbox.connection_json(),
                "consentio_erp": sqlite_connection(workdir / "erp.db"),
            },
            variables={"consentio_data_dir": str(workdir / "data")},
        )
        env.prepare()
        with AirflowServices(env) as services:
            yield sandbox, env, services, workdir


def test_the_connection_form_shows_the_consentio_fields(stack):
    _, _, services, _ = stack
    [meta] = [m for m in services.api("GET", "/ui/connections/hook_meta") if m["connection_type"] == "consentio"]
    assert meta["hook_name"] == "Consentio"
    assert meta["standard_fields"]["login"]["title"] == "Workspace ID"
    assert meta["standard_fields"]["password"]["title"] == "API key"
    assert meta["standard_fields"]["host"]["title"] == "Base URL"
    assert meta["standard_fields"]["port"]["hidden"] is False
    assert "443" in meta["standard_fields"]["port"]["placeholder"]
    extra = meta["extra_fields"]
    assert set(extra) == {
        "environment",
        "timeout",
        "max_retries",
        "retry_backoff",
        "ca_bundle",
        "rate_limit",
        "rate_burst",
        "rate_store_conn_id",
    }
    assert extra["environment"]["schema"]["enum"] == ["production", "staging", "sandbox"]
    assert extra["environment"]["value"] == "production"


def test_the_test_button_logs_in_or_says_why_not(stack):
    sandbox, _, services, _ = stack
    form = {
        "connection_id": "probe",
        "conn_type": "consentio",
        "login": str(sandbox.info["workspace_id"]),
        "password": sandbox.info["api_key"],
        "host": sandbox.base_url,
    }
    workspace = sandbox.info["workspace_id"]
    assert services.api("POST", "/api/v2/connections/test", json=form) == {
        "status": True,
        "message": f"Logged in to Consentio workspace {workspace} (Sandbox Fresh Foods) at {sandbox.base_url}",
    }
    refused = services.api("POST", "/api/v2/connections/test", json={**form, "password": "sbx_not_the_key"})
    assert refused["status"] is False and "rejected the API key" in refused["message"]
    assert "sbx_not_the_key" not in refused["message"]


def test_the_list_test_button_works_for_a_stored_connection_with_its_port(stack):
    """The request the connection list's Test button sends (Airflow 3.3.2 UI): the stored fields, the password
    masked, the port as a number. Without a stored port that number is 0 and Airflow 3.3.1-3.3.2 answer 400."""
    sandbox, _, services, _ = stack
    services.api(
        "POST",
        "/api/v2/connections",
        json={
            "connection_id": "consentio_stored",
            "conn_type": "consentio",
            "login": str(sandbox.info["workspace_id"]),
            "password": sandbox.info["api_key"],
            "host": "http://127.0.0.1",
            "port": sandbox.port,
        },
    )
    stored = services.api("GET", "/api/v2/connections/consentio_stored")
    assert stored["password"] != sandbox.info["api_key"]  # masked, as the UI gets it
    as_the_ui_sends_it = {
        "conn_type": stored["conn_type"],
        "connection_id": stored["connection_id"],
        "description": stored["description"] or "",
        "extra": stored["extra"] or "{}",
        "host": stored["host"] or "",
        "login": stored["login"] or "",
        "password": stored["password"] or "",
        "port": int(stored["port"] or 0),  # the UI's Number(connection.port)
        "schema": stored["schema"] or "",
    }
    result = services.api("POST", "/api/v2/connections/test", json=as_the_ui_sends_it)
    assert result["status"] is True and result["message"].endswith(f"at {sandbox.base_url}"), result


def test_a_seven_day_backfill_under_the_scheduler_loads_exactly_the_accepted_orders(stack):
    sandbox, _, services, workdir = stack
    wait_until(lambda: services_dag_is_parsed(services), 120, "the dag-processor to parse the example DAGs")
    services.api("PATCH", f"/api/v2/dags/{SELLER}", json={"is_paused": False})
    body = {"dag_id": SELLER, "from_date": "2025-03-01T00:00:00Z", "to_date": "2025-03-07T00:00:00Z"}
    backfill = services.api("POST", "/api/v2/backfills", json=body)
    # The backfill's own completion (the scheduler marks it once no run of it is queued or running).
    wait_until(
        lambda: services.api("GET", f"/api/v2/backfills/{backfill['id']}")["completed_at"],
        600,
        "the 7-day backfill to complete",
        interval=2,
    )
    runs = services.api("GET", f"/api/v2/dags/{SELLER}/dagRuns", params={"run_type": "backfill", "limit": 50})
    runs = runs["dag_runs"]
    assert len(runs) == 7, [run["dag_run_id"] for run in runs]
    failed = [run["dag_run_id"] for run in runs if run["state"] != "success"]
    assert not failed, failed
    for run in runs:
        path = f"/api/v2/dags/{SELLER}/dagRuns/{run['dag_run_id']}/taskInstances"
        tasks = services.api("GET", path)["task_instances"]
        assert {ti["state"] for ti in tasks} <= {"success", "skipped"}, [(ti["task_id"], ti["state"]) for ti in tasks]

    start = min(run["data_interval_start"] for run in runs)
    end = max(run["data_interval_end"] for run in runs)
    assert (start[:10], end[:10]) == ("2025-03-01", "2025-03-08")  # seven whole days, each exactly once
    truth = sandbox.admin(
        "GET", "/_sandbox/orders", params={"from": start, "to": end, "kind": "sale", "status": "accepted"}
    )
    with closing(sqlite3.connect(workdir / "erp.db")) as erp:
        loaded = dict(
            erp.execute(
                "SELECT hash_id, erp_number FROM erp_orders"
                " WHERE created_at >= datetime(?) AND created_at < datetime(?)",
                (start.replace("+00:00", "Z"), end.replace("+00:00", "Z")),
            )
        )
    assert len(truth) > 150
    assert set(loaded) == {order["hash_id"] for order in truth}
    references = sandbox.admin("GET", "/_sandbox/state")["external_refs"]
    assert all(
        references[hash_id] == {"external_id": number, "external_status": "imported"}
        for hash_id, number in loaded.items()
    )


def services_dag_is_parsed(services):
    dags = services.api("GET", "/api/v2/dags", params={"dag_id_pattern": "consentio"})["dags"]
    return SELLER in {dag["dag_id"] for dag in dags}
