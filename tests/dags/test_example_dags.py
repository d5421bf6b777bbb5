"""The example DAGs in dags/: they parse offline and cleanly, follow the conventions, and run against the sandbox.

This file sits in the scenario bundle's folder, so the scenario DagBag imports it too: module level stays cheap and
imports no Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_consentio.demo.erp import (
    demand_line,
    insert_demand_lines,
    query,
    seed_demand_lines,
    sqlite_connection,
)

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(path.name for path in DAGS.glob("*.py"))
DAILY = {"consentio_seller_daily", "consentio_buyer_daily", "consentio_catalogue_daily"}
ON_DEMAND = {"consentio_seller_history"}
ASSET_DRIVEN = {"consentio_orders_report", "consentio_seller_events"}
# Loaded at run time only: a DAG file that imports them makes every parse pay for them (and for their imports).
RUNTIME_ONLY = (
    "airflow_provider_consentio.client",
    "airflow_provider_consentio.models",
    "airflow_provider_consentio.sandbox",
    "airflow_provider_consentio.hooks.consentio",
    "airflow_provider_consentio.operators.base.inputs",
    "airflow_provider_consentio.operators.base.storage",
    "airflow_provider_consentio.models.jsonwire",
    "airflow_provider_consentio.demo",
)
DAY = date(2025, 3, 10)
RUN_DATE = (DAY + timedelta(days=1)).isoformat()  # a run at logical date D + 1 covers [D, D + 1)

# Parses one DAG file as the dag-processor would, in a fresh interpreter, with every network connect and every
# connection or variable lookup recorded and refused; prints what it saw as JSON on the last line.
PARSE_CHILD = r"""
import inspect, json, os, socket, sys, warnings

import airflow.sdk  # noqa: F401
from airflow_provider_consentio.version_compat import DagBag

baseline = set(sys.modules)
network, lookups = [], []


def refuse(label, record):
    def refused(*args, **kwargs):
        record.append(f"{label}{tuple(a for a in args if isinstance(a, (str, tuple)))}")
        raise OSError(f"{label} at parse time")
    return refused


def guard(owner, name, record):
    static = inspect.getattr_static(owner, name)
    wrap = type(static) if isinstance(static, (classmethod, staticmethod)) else None
    replacement = refuse(f"{getattr(owner, '__qualname__', owner.__name__)}.{name}", record)
    setattr(owner, name, wrap(replacement) if wrap else replacement)


for name in ("connect", "connect_ex"):
    guard(socket.socket, name, network)
for name in ("create_connection", "getaddrinfo"):
    guard(socket, name, network)

from airflow.models.connection import Connection as ModelConnection
from airflow.models.variable import Variable as ModelVariable
from airflow.sdk.bases.hook import BaseHook
from airflow.sdk.definitions.connection import Connection
from airflow.sdk.definitions.variable import Variable
from airflow.sdk.execution_time import context as execution_context
from airflow.secrets.environment_variables import EnvironmentVariablesBackend
from airflow.secrets.metastore import MetastoreBackend

for owner, name in (
    (BaseHook, "get_connection"),
    (Connection, "get"),
    (Variable, "get"),
    (ModelConnection, "get_connection_from_secrets"),
    (ModelVariable, "get"),
    (execution_context, "_get_connection"),
    (execution_context, "_get_variable"),
    (EnvironmentVariablesBackend, "get_conn_value"),
    (EnvironmentVariablesBackend, "get_variable"),
    (MetastoreBackend, "get_connection"),
    (MetastoreBackend, "get_variable"),
):
    guard(owner, name, lookups)

# A lookup through any other path still ends in the environment: record reads of connection/variable variables.
environ_getitem = os._Environ.__getitem__


def recording_getitem(self, key):
    if isinstance(key, str) and key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
        lookups.append(f"os.environ[{key!r}]")
    return environ_getitem(self, key)


os._Environ.__getitem__ = recording_getitem

path = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bag = DagBag(dag_folder=path, collect_dags=False)
    bag.process_file(path, only_if_updated=False)
    new_modules = sorted(set(sys.modules) - baseline)
    # The dag-processor serializes what it parsed: that must not look anything up either.
    from airflow_provider_consentio.version_compat import DagSerialization

    for dag in bag.dags.values():
        json.dumps(DagSerialization.to_dict(dag))

print(json.dumps({
    "dag_ids": sorted(bag.dags),
    "import_errors": bag.import_errors,
    "warnings": [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    + [line for lines in bag.captured_warnings.values() for line in lines],
    "network": network,
    "lookups": lookups,
    "new_modules": new_modules,
    "baseline_httpx": sorted(m for m in baseline if m.split(".")[0] == "httpx"),
    "baseline_pydantic": sorted(m for m in baseline if m.split(".")[0] in ("pydantic", "pydantic_core")),
}))
"""


def parse_in_fresh_interpreter(path: Path, airflow_home: Path) -> dict[str, Any]:
    # No connection, no variable, no secrets backend, no metadata database: parsing must need none of them.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__SECRETS__", "AIRFLOW__DATABASE__"))
    }
    env.update(AIRFLOW_HOME=str(airflow_home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _is_runtime_only(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in RUNTIME_ONLY)


def parse_problems(seen: dict[str, Any]) -> list[str]:
    """Everything wrong with one file's parse, as readable lines (empty when clean)."""
    problems = [f"import error: {error}" for error in seen["import_errors"].values()]
    problems += [f"warning: {warning}" for warning in seen["warnings"]]
    problems += [f"network call: {call}" for call in seen["network"]]
    problems += [f"connection/variable lookup: {lookup}" for lookup in seen["lookups"]]
    problems += [f"imports {module}" for module in seen["new_modules"] if _is_runtime_only(module)]
    # airflow.sdk imports httpx and pydantic itself (see baseline_*): the achievable bar is adding none of theirs.
    problems += [
        f"imports {module} beyond airflow.sdk's own"
        for module in seen["new_modules"]
        if module.split(".")[0] in ("httpx", "pydantic", "pydantic_core")
    ]
    if not seen["dag_ids"]:
        problems.append("no DAG found")
    return problems


@pytest.mark.integration  # a fresh interpreter per file
@pytest.mark.parametrize("file_name", DAG_FILES)
def test_dag_file_parses_offline_without_warnings_or_runtime_imports(file_name, tmp_path):
    seen = parse_in_fresh_interpreter(DAGS / file_name, tmp_path / "airflow")

    assert parse_problems(seen) == []
    assert not (tmp_path / "airflow" / "airflow.db").exists(), "parsing touched the metadata database"


@pytest.mark.integration
def test_the_parse_check_catches_a_file_that_misbehaves(tmp_path):
    """The guards above are real: a file that warns, connects, looks up a connection and imports the client fails."""
    bad = tmp_path / "dags" / "bad_example.py"
    bad.parent.mkdir()
    bad.write_text(
        "import os, socket, warnings\n"
        "from airflow.sdk import DAG, BaseHook\n"
        "import airflow_provider_consentio.client\n"
        "warnings.warn('old style', DeprecationWarning)\n"
        "for attempt in (lambda: socket.create_connection(('127.0.0.1', 9)),\n"
        "                lambda: BaseHook.get_connection('consentio_default'),\n"
        "                lambda: os.environ.get('AIRFLOW_CONN_CONSENTIO_ERP')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except Exception:\n"
        "        pass\n"
        "with DAG('bad_example', schedule=None):\n"
        "    pass\n",
        encoding="utf-8",
    )

    problems = "\n".join(parse_problems(parse_in_fresh_interpreter(bad, tmp_path / "airflow")))

    assert "DeprecationWarning: old style" in problems
    assert "network call: socket.create_connection" in problems
    assert "BaseHook.get_connection" in problems
    assert "AIRFLOW_CONN_CONSENTIO_ERP" in problems
    assert "imports airflow_provider_consentio.client" in problems


# --- conventions and serialization, in this process -------------------------------------------------------------


@pytest.fixture(scope="module")
def example_dags() -> dict[str, Any]:
    from airflow_provider_consentio.version_compat import DagBag

    bag = DagBag(dag_folder=str(DAGS), collect_dags=False)
    for file_name in DAG_FILES:
        bag.process_file(str(DAGS / file_name), only_if_updated=False)
    assert bag.import_errors == {}
    return bag.dags


def test_every_example_dag_is_found(example_dags):
    assert set(example_dags) == DAILY | ON_DEMAND | ASSET_DRIVEN


@pytest.mark.parametrize("dag_id", sorted(DAILY | ON_DEMAND | ASSET_DRIVEN))
def test_dag_follows_the_example_conventions(example_dags, dag_id):
    from airflow_provider_consentio.version_compat import CronDataIntervalTimetable

    dag = example_dags[dag_id]
    assert {"consentio", "example"} <= set(dag.tags)
    assert dag.doc_md and dag.doc_md.strip().startswith("###")
    assert dag.default_args.get("retries", 0) >= 1
    assert all(isinstance(task.retries, int) for task in dag.tasks)
    timetable = dag.timetable
    if dag_id in DAILY:
        # Real [start, end) days: a CronTriggerTimetable would hand every run a zero-length window.
        assert isinstance(timetable, CronDataIntervalTimetable), type(timetable)
        # The catalogue goes to Consentio an hour before the seller's order export.
        cron = "0 23 * * *" if dag_id == "consentio_catalogue_daily" else "@daily"
        assert timetable == CronDataIntervalTimetable(cron, timezone="UTC")
    elif dag_id in ON_DEMAND:
        assert type(timetable).__name__ == "NullTimetable", type(timetable)
    else:
        assert type(timetable).__name__ == "AssetTriggeredTimetable", type(timetable)


@pytest.mark.parametrize("dag_id", sorted(DAILY | ON_DEMAND | ASSET_DRIVEN))
def test_dag_survives_a_serialization_round_trip(example_dags, dag_id):
    from airflow_provider_consentio.version_compat import DagSerialization

    dag = example_dags[dag_id]
    stored = json.loads(json.dumps(DagSerialization.to_dict(dag)))
    back = DagSerialization.from_dict(stored)

    def shape(some_dag: Any) -> dict[str, list[str]]:
        return {task.task_id: sorted(task.upstream_task_ids) for task in some_dag.tasks}

    assert back.dag_id == dag_id
    assert shape(back) == shape(dag)
    assert type(back.timetable).__name__ == type(dag.timetable).__name__
    assert back.tags == dag.tags
    assert back.doc_md == dag.doc_md
    assert {task.task_id: task.retries for task in back.tasks} == {task.task_id: task.retries for task in dag.tasks}


# --- dag.test() against the sandbox ------------------------------------------------------------------------------


@pytest.fixture
def example_env(tmp_path, monkeypatch, consentio_connection):
    """The example DAGs' ERP connection and data folder, as a deployment sets them (environment variables)."""
    erp = tmp_path / "erp.db"
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_ERP", sqlite_connection(erp))
    monkeypatch.setenv("AIRFLOW_VAR_CONSENTIO_DATA_DIR", str(tmp_path / "data"))
    return erp, tmp_path / "data"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def test_seller_daily_loads_exactly_the_days_accepted_orders_and_pushes_erp_numbers(sandbox, run_dag, example_env):
    erp, data = example_env
    start, end = _day_bounds(DAY)
    truth = {stored.data["hash_id"] for stored in sandbox.state.window(start, end, "sale", "accepted")}
    assert truth, "the sandbox should have accepted orders that day"

    result = run_dag("consentio_seller_daily", logical_date=RUN_DATE)

    assert result.succeeded, result.task_states
    assert result.xcoms["export_accepted_orders"]["count"] == len(truth)
    exported = (data / "orders" / f"{DAY.isoformat()}.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["hash_id"] for line in exported) == sorted(truth)
    in_erp = dict(query(erp, "SELECT hash_id, erp_number FROM erp_orders"))
    of_the_day = {
        hash_id
        for (hash_id,) in query(
            erp,
            "SELECT hash_id FROM erp_orders WHERE created_at >= datetime(?) AND created_at < datetime(?)",
            *map(_rfc3339, (start, end)),
        )
    }
    assert of_the_day == truth
    # Orders of earlier days enter the ERP only as edits this run fetched and applied.
    edited = {applied["hash_id"] for applied in result.xcoms["apply_edits_in_erp"]}
    assert set(in_erp) - truth <= edited
    references = sandbox.state.summary()["external_refs"]  # what /_sandbox/state reports
    assert {h: references.get(h, {}).get("external_id") for h in truth} == {h: in_erp[h] for h in truth}
    assert all(references[h]["external_status"] == "imported" for h in truth)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_buyer_daily_sends_the_days_demand_lines(sandbox, run_dag, example_env):
    erp, _ = example_env
    seed_demand_lines(erp, DAY, days=1, lines_per_day=20)
    seed_demand_lines(erp, DAY + timedelta(days=1), days=1, lines_per_day=5, seed=7)  # another day: not sent
    lines = dict(query(erp, "SELECT line_code, qty FROM demand_lines WHERE plan_date = ?", DAY.isoformat()))

    result = run_dag("consentio_buyer_daily", logical_date=RUN_DATE)

    assert result.succeeded, result.task_states
    assert set(sandbox.state.needs) == set(lines)
    assert result.xcoms["reconcile"] == {"lines": 20, "matched": 20, "created": 20, "updated": 0}


@pytest.mark.parametrize(
    ("bad_values", "reason"),
    [
        ({"unit": "crate"}, "quantity_unit"),
        ({"delivery_from": "2025-03-14", "delivery_to": "2025-03-12"}, "end_date"),
    ],
    ids=["unknown-unit", "end-before-start"],
)
def test_buyer_daily_with_one_bad_line_fails_naming_it_and_sends_nothing(
    sandbox, run_dag, example_env, bad_values, reason
):
    import random

    erp, _ = example_env
    seed_demand_lines(erp, DAY, days=1, lines_per_day=20)
    bad = {**demand_line(DAY, 7, random.Random(1)), **bad_values}
    insert_demand_lines(erp, [bad])  # replaces line 7 of the day

    result = run_dag("consentio_buyer_daily", logical_date=RUN_DATE)

    assert result.state == "failed"
    assert result.task_states["upsert_purchase_needs"] == "failed"
    assert result.task_states["reconcile"] == "upstream_failed"
    assert "new_state=up_for_retry" not in result.output  # the provider fails invalid input without retries
    failure = [line for line in result.output.splitlines() if bad["line_code"] in line]
    assert failure, f"the failure does not name {bad['line_code']}"
    assert any(reason in line for line in failure), failure
    assert sandbox.state.needs == {}, "a purchase need was sent although one line was invalid"
