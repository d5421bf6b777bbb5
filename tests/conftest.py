"""Suite-wide set-up: an isolated Airflow home, hypothesis settings, and clients wired to the sandbox.

The Airflow environment variables are set at import, before any test module imports airflow; the modules
imported here (the client and its models) do not import airflow.
"""

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from airflow_provider_consentio.client import (
    PROCESS_TOKEN_CACHE,
    ConsentioClient,
    ConsentioSettings,
    RetryPolicy,
    TokenCache,
)

REPO = Path(__file__).resolve().parents[1]
TEST_DAGS = REPO / "tests" / "dags"
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="consentio-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
# The lineage scenario DAGs (t_lineage_*, tests/dags/consentio_lineage_dags.py) emit their OpenLineage events to
# this file: the lineage tests read it, the secret scan covers it. Only those: the listener's work per task is not
# free (openlineage providers older than the emission_policy option emit for every DAG, which is only slower).
OPENLINEAGE_EVENTS = _AIRFLOW_HOME / "openlineage-events.jsonl"
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
    {"type": "file", "log_file_path": str(OPENLINEAGE_EVENTS), "append": True}
)
os.environ["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "consentio-tests"
# The listener forks to emit by default; a fork of this process (the sandbox's server threads, dag.test's) hangs
# until the listener's 10 s timeout kills it, after every task. A thread emits the same events without that.
os.environ["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] = "True"
os.environ["AIRFLOW__OPENLINEAGE__EMISSION_POLICY"] = json.dumps(
    [
        {"scope": {}, "controls": {"emit": False}},
        {"scope": {"dag_id": "t_lineage_.*"}, "match_mode": "regex", "controls": {"emit": True}},
    ]
)
# dag.test() runs only DAGs found in a bundle: the example DAGs and the scenario DAGs of the operator tests.
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path)},
        }
        for name, path in (("examples", REPO / "dags"), ("scenarios", TEST_DAGS))
    ]
)


def pytest_configure(config: pytest.Config) -> None:
    # Starlette's own deprecation warnings (a UserWarning) come from Airflow's API code, not ours. An ini filter
    # naming the class would abort the run where the installed starlette lacks it (Airflow 3.1's).
    from airflow_provider_consentio.version_compat import starlette_deprecation_warning

    warning = starlette_deprecation_warning()
    if warning:
        config.addinivalue_line("filterwarnings", f"ignore::{warning}")


# Shared CI machines are noisy: hypothesis' per-example deadline would make timing, not logic, fail tests.
# `make test` (and CI) explores 100 examples a property; `make unit`, the loop a developer lives in, passes
# --hypothesis-profile=fast for 15.
settings.register_profile("consentio", deadline=None, max_examples=100)
settings.register_profile("fast", deadline=None, max_examples=15)
settings.load_profile("consentio")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that needs Airflow's metadata database: `make unit` leaves them out.

    Derived from the fixtures each test uses (``airflow_db`` directly, or through ``run_dag``), so a new test that
    runs a DAG cannot land in the fast loop by mistake.
    """
    for item in items:
        if "airflow_db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox_server():
    """One sandbox for the session: in-process (uvicorn in a thread), on 127.0.0.1 and a free port."""
    from airflow_provider_consentio.sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(seed=42)) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server):
    """The session's sandbox, reset: seeded data, no faults, zeroed counters, default token lifetime."""
    from airflow_provider_consentio.sandbox import SandboxConfig

    sandbox_server.sandbox.reset(SandboxConfig(seed=42))
    return sandbox_server


# Quick retries keep fault-injection tests fast; the policy is the same code as in production.
QUICK_RETRIES = RetryPolicy(max_retries=4, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def make_settings(sandbox):
    def make(**overrides):
        values = {
            "workspace_id": sandbox.workspace_id,
            "base_url": sandbox.base_url,
            "api_key": sandbox.api_key,
            "timeout": 10.0,
            "retry": QUICK_RETRIES,
        }
        return ConsentioSettings(**{**values, **overrides})

    return make


@pytest.fixture
def make_client(make_settings):
    """Clients with a private token cache (so each test counts its own logins), closed after the test."""
    clients = []

    def make(token_cache=None, on_secret=None, **overrides):
        client = ConsentioClient(
            make_settings(**overrides), token_cache=token_cache or TokenCache(), on_secret=on_secret
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- a real Airflow: dag.test() on the scenario DAGs -------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata database for this test session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300)


@pytest.fixture
def consentio_connection_to(monkeypatch):
    """Points `consentio_default` at a given sandbox server, as a user would set it (an AIRFLOW_CONN_ JSON
    variable), with no token cached from another sandbox."""

    def point(server: Any) -> dict[str, Any]:
        connection = {
            "conn_type": "consentio",
            "login": str(server.workspace_id),
            "password": server.api_key,
            "host": server.base_url,
            "extra": {"timeout": 10, "max_retries": 6},
        }
        monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(connection))
        PROCESS_TOKEN_CACHE.clear()
        return connection

    yield point
    PROCESS_TOKEN_CACHE.clear()


@pytest.fixture
def consentio_connection(sandbox, consentio_connection_to):
    """`consentio_default` pointed at the sandbox."""
    return consentio_connection_to(sandbox)


@dataclass
class RunResult:
    state: str
    task_states: dict[str, Any]
    xcoms: dict[str, Any]
    output: str

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


_DAGBAGS: dict[Path, Any] = {}
_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {}


def _collect(into: dict[str, Any], task_id: str, map_index: int, value: Any) -> None:
    """One value per task; a list (in map index order) for mapped tasks."""
    if map_index >= 0:
        into.setdefault(task_id, []).append(value)
    else:
        into[task_id] = value


def _forget_runs(dag_id: str, logical_date: Any) -> None:
    """dag.test() reuses an existing run of the same logical date; a test wants a fresh one."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for dag_run in session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date):
            session.delete(dag_run)


def _log_to_current_stdout() -> None:
    """Airflow binds its log handlers to the stdout of the first test; pytest closes that capture afterwards."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for handler in (handler for logger in loggers for handler in getattr(logger, "handlers", [])):
        if type(handler) is logging.StreamHandler:
            handler.stream = sys.stdout  # not setStream(): it flushes the closed stream first


def _scenario_dag(dag_id: str) -> Any:
    from airflow_provider_consentio.version_compat import DagBag

    for folder in (TEST_DAGS, REPO / "dags"):
        if folder not in _DAGBAGS:
            _DAGBAGS[folder] = DagBag(dag_folder=str(folder))
        dag = _DAGBAGS[folder].dags.get(dag_id)
        if dag is not None:
            return dag
    raise KeyError(dag_id)


@pytest.fixture
def run_dag(airflow_db, consentio_connection, capfd):
    """Run a DAG with dag.test(); returns its state, task states, XComs (mapped tasks: a list) and output."""
    import pendulum

    def run(dag_id: str, logical_date: Any = "2025-03-11", **conf: Any) -> RunResult:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        dag = _scenario_dag(dag_id)
        # dag.test() folds the run's conf into the DAG's params: pass every param, defaults included.
        conf = {**_DEFAULT_PARAMS.setdefault(dag_id, copy.deepcopy(dag.params.dump())), **conf}
        when = pendulum.parse(str(logical_date))
        _forget_runs(dag_id, when)
        _log_to_current_stdout()
        capfd.readouterr()
        dag_run = dag.test(logical_date=when, run_conf=conf)
        output = "".join(capfd.readouterr())
        states: dict[str, Any] = {}
        for ti in dag_run.get_task_instances():
            _collect(states, ti.task_id, ti.map_index, str(ti.state))
        xcoms: dict[str, Any] = {}
        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=dag_run.run_id, key="return_value")
            for row in rows.order_by(XComModel.map_index):
                _collect(xcoms, row.task_id, row.map_index, XComModel.deserialize_value(row))
        print(output)  # visible when a test fails
        return RunResult(str(dag_run.state), states, xcoms, output)

    return run


# --- secret hygiene: no API key or token in test output, exceptions, the metadata DB or task logs ----------------
#
# Every secret an in-process sandbox issues (its API keys, every access and refresh token) is recorded. Captured test
# output (stdout, stderr, log records) and the message of every ConsentioError are checked as the suite runs; at
# session end the Airflow metadata database (every table but `connection`, whose job is to hold credentials) and the
# task log files under AIRFLOW_HOME are checked too. Any hit fails the run and is listed (by a fingerprint, never by
# its value). Not covered: secrets of sandboxes in other processes (the e2e stack) and of hand-written test keys.

_SECRET_CHARS = re.compile(r"[A-Za-z0-9_-]{16,}")


class SecretHygiene:
    """The secrets the sandbox issued, and every place one of them turned up where it must not."""

    def __init__(self) -> None:
        self._needles: dict[str, str] = {}  # what to search for -> a label that does not reveal it
        self.leaks: list[str] = []

    def add(self, secret: str, kind: str) -> None:
        # A JWT's header and payload are readable claims; its signature is what makes it usable, and it is part of
        # any text that holds the whole token.
        needle = secret.rsplit(".", 1)[-1] if secret.count(".") == 2 else secret
        if len(needle) >= 16:
            self._needles[needle] = f"{kind} sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}"

    def find(self, text: str) -> list[str]:
        """Labels of the secrets in ``text``."""
        needles = dict(self._needles)  # the sandbox thread may add tokens meanwhile
        if not needles:
            return []
        lengths = sorted({len(needle) for needle in needles})
        found: set[str] = set()
        # One pass over the long [A-Za-z0-9_-] runs (all our secrets are made of these) instead of one per secret.
        for run in _SECRET_CHARS.findall(text):
            for length in lengths:
                for start in range(len(run) - length + 1):
                    label = needles.get(run[start : start + length])
                    if label:
                        found.add(label)
        return sorted(found)

    def check(self, text: str, where: str) -> None:
        self.leaks.extend(f"{where}: {label}" for label in self.find(text))

    def check_report(self, report: Any) -> None:
        for title, content in report.sections:
            self.check(content, f"{report.nodeid} ({title})")

    def check_airflow_home(self, home: Path) -> None:
        if not self._needles:
            return
        database = home / "airflow.db"
        if database.exists():
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in (name for name in tables if name != "connection"):
                    values = (value for row in db.execute(f'SELECT * FROM "{table}"') for value in row)
                    text = "\n".join(
                        value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                        for value in values
                        if value is not None
                    )
                    self.check(text, f"metadata table {table}")
        for path in sorted((home / "logs").rglob("*")) if (home / "logs").is_dir() else []:
            if path.is_file():
                self.check(path.read_text("utf-8", "replace"), f"task log {path.relative_to(home)}")
        lineage = home / OPENLINEAGE_EVENTS.name
        if lineage.is_file():
            self.check(lineage.read_text("utf-8", "replace"), "OpenLineage events")


SECRET_HYGIENE = SecretHygiene()


@pytest.fixture(scope="session", autouse=True)
def _record_issued_secrets():
    """Wrap the sandbox's key derivation and token issuing, and the provider's exception, for the whole session."""
    from airflow_provider_consentio.errors import ConsentioError
    from airflow_provider_consentio.sandbox import auth, config

    derive_key, issue = config._derived_key, auth.TokenIssuer.issue

    def recording_derive_key(seed: int, name: str) -> str:
        key = derive_key(seed, name)
        SECRET_HYGIENE.add(key, "API key")
        return key

    def recording_issue(self: Any, workspace_id: int, ttl: float) -> dict[str, Any]:
        tokens = issue(self, workspace_id, ttl)
        SECRET_HYGIENE.add(tokens["access_token"], "access token")
        SECRET_HYGIENE.add(tokens["refresh_token"], "refresh token")
        return tokens

    def checking_init(self: Exception, *args: Any) -> None:
        Exception.__init__(self, *args)
        where = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        SECRET_HYGIENE.check(" ".join(map(str, args)), f"{where} ({type(self).__name__} message)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "_derived_key", recording_derive_key)
        patch.setattr(auth.TokenIssuer, "issue", recording_issue)
        patch.setattr(ConsentioError, "__init__", checking_init)
        yield


@pytest.fixture
def secret_hygiene() -> SecretHygiene:
    return SECRET_HYGIENE


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    SECRET_HYGIENE.check_report(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SECRET_HYGIENE.check_airflow_home(_AIRFLOW_HOME)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its leaks go to the controller, which fails the run
        workeroutput["secret_leaks"] = SECRET_HYGIENE.leaks
    if SECRET_HYGIENE.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif exitstatus == 0:  # kept after a failure, for its logs
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, on the controller: a worker finished; keep the leaks it found (its exit status is not ours)."""
    SECRET_HYGIENE.leaks.extend(getattr(node, "workeroutput", {}).get("secret_leaks", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SECRET_HYGIENE.leaks:
        terminalreporter.write_sep("=", "secret hygiene: an API key or token leaked", red=True)
        for leak in dict.fromkeys(SECRET_HYGIENE.leaks):
            terminalreporter.write_line(leak)


# --- operators without a DAG run: op.execute() against the in-process sandbox ------------------------------------


@pytest.fixture
def execute(consentio_connection):
    """Run ``operator.execute()`` as a worker would, without a metadata database; returns (result, outlet events).

    The context holds what the operators read: the data interval, the attempt, and Airflow's own accessor for the
    events of the task's outlets (Assets). What needs a DAG run (templating, XCom, Asset events stored) is covered by
    the dag.test() tests.
    """
    from types import SimpleNamespace

    import pendulum
    from airflow.sdk.execution_time.context import OutletEventAccessors

    def run(operator: Any, interval: tuple[str, str] | None = None, try_number: int = 1) -> tuple[Any, Any]:
        start, end = (pendulum.parse(value) for value in interval) if interval else (None, None)
        events = OutletEventAccessors()
        context = {
            "data_interval_start": start,
            "data_interval_end": end,
            "logical_date": end,
            "ti": SimpleNamespace(try_number=try_number),
            "outlet_events": events,
        }
        return operator.execute(context), events

    return run
