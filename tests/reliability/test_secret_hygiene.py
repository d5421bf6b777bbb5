"""Secret hygiene: the API key and the tokens never show up in task logs, XComs, rendered fields, the metadata
database, exception texts or reprs, even with DEBUG logging of httpx and httpcore; the secrets masker knows them all.

The suite-wide check (tests/conftest.py, "secret hygiene") scans every test's output and the whole metadata database;
the last tests here prove that it finds a planted secret wherever it may hide.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.errors import ConsentioAuthError, ConsentioError

WRONG_KEY = "sbx_fedcba9876543210fedcba9876543210"
WINDOW = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-01T04:00:00Z"}
MARCH_1, MARCH_2 = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
DEBUG_LOGGERS = ("httpx", "httpcore", "airflow_provider_consentio", "airflow.task")
TASK_ERROR = re.compile(r"^airflow_provider_consentio\.errors\.\w+: .*$", re.MULTILINE)


@pytest.fixture
def debug_logging():
    """DEBUG for the HTTP stack and the provider inside dag.test() (Airflow's handlers default to INFO)."""
    import airflow  # noqa: F401  # configures Airflow's log handlers, which are lowered below

    handlers = logging.getLogger().handlers
    saved = [(handler, handler.level) for handler in handlers]
    saved_loggers = [(logging.getLogger(name), logging.getLogger(name).level) for name in DEBUG_LOGGERS]
    for handler in handlers:
        handler.setLevel(logging.DEBUG)
    for logger, _ in saved_loggers:
        logger.setLevel(logging.DEBUG)
    yield
    for handler, level in saved:
        handler.setLevel(level)
    for logger, level in saved_loggers:
        logger.setLevel(level)


@pytest.fixture
def issued(sandbox, monkeypatch) -> list[str]:
    """Every access and refresh token the sandbox issues during the test."""
    tokens: list[str] = []
    issue = sandbox.sandbox.issuer.issue

    def recording_issue(workspace_id: int, ttl: float) -> dict[str, Any]:
        answer = issue(workspace_id, ttl)
        tokens.extend((answer["access_token"], answer["refresh_token"]))
        return answer

    monkeypatch.setattr(sandbox.sandbox.issuer, "issue", recording_issue)
    return tokens


def scanner_for(secret_hygiene, secrets: dict[str, str]):
    """A scanner of the suite-wide kind that knows only ``secrets`` (name -> value)."""
    scanner = type(secret_hygiene)()
    for name, secret in secrets.items():
        scanner.add(secret, name)
    return scanner


def airflow_db() -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(os.environ['AIRFLOW_HOME']) / 'airflow.db'}?mode=ro", uri=True)


def test_a_failed_and_a_successful_run_leave_no_secret_anywhere(
    run_dag, sandbox, consentio_connection, monkeypatch, tmp_path, issued, debug_logging, secret_hygiene
):
    """Runs (DEBUG logging) and then searches what Airflow keeps of them for the key and every token issued."""
    wrong = {**consentio_connection, "password": WRONG_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(wrong))
    # Another logical date, so the second run does not replace this one's rows in the metadata database.
    refused = run_dag("t_export_hourly", "2025-03-12", output_path=str(tmp_path / "refused.jsonl"), **WINDOW)
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(consentio_connection))
    # Revoking the token every few requests makes the run log in again and again: several tokens to leak, and
    # 401 answers whose error paths must not print the rejected token either.
    plan = {"paths": "/order$", "rules": [{"kind": "expire_token", "every": 4}]}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()
    exported = run_dag("t_export_hourly", output_path=str(tmp_path / "orders.jsonl"), **WINDOW)

    assert refused.state == "failed" and "Consentio rejected the API key for workspace" in refused.output
    assert exported.succeeded, exported.output[-3000:]
    assert len(issued) >= 6  # three logins or more: the first and one after each revoked token
    assert "[debug" in exported.output and "httpcore.http11" in exported.output  # DEBUG really was on
    secrets = {"API key": sandbox.api_key, "wrong API key": WRONG_KEY}
    secrets.update({f"token #{number}": token for number, token in enumerate(issued, start=1)})
    scanner = scanner_for(secret_hygiene, secrets)

    exceptions = TASK_ERROR.findall(refused.output)
    assert exceptions and "ConsentioAuthError" in exceptions[-1]
    for where, text in {
        "failed run output": refused.output,
        "exception text": "\n".join(exceptions),
        "successful run output": exported.output,
        "XComs": json.dumps([refused.xcoms, exported.xcoms], default=str),
        "output file": (tmp_path / "orders.jsonl").read_text(),
    }.items():
        assert scanner.find(text) == [], where
    with contextlib.closing(airflow_db()) as db:
        rendered = db.execute("SELECT count(*) FROM rendered_task_instance_fields WHERE dag_id = 't_export_hourly'")
        xcoms = db.execute("SELECT count(*) FROM xcom WHERE dag_id = 't_export_hourly'")
        assert rendered.fetchone()[0] >= 2 and xcoms.fetchone()[0] >= 1  # the scan below has something to read
    scanner.check_airflow_home(Path(os.environ["AIRFLOW_HOME"]))  # every table but `connection`, every task log
    assert scanner.leaks == []
    # The suite-wide check knows them too, so it would catch what this test does not look at.
    assert all(secret_hygiene.find(f"x{secret}x") for secret in (sandbox.api_key, *issued))


def rejected_address(n: int) -> dict[str, Any]:
    """An address the sandbox rejects per record (HTTP 200): its client does not exist."""
    return {
        "external_id": f"ADDR-REJ-{n}",
        "client_external_id": f"CLI-NOPE-{n}",
        "street": "Calle Mayor 1",
        "city": "Sevilla",
        "postal_code": "41001",
        "country": "ES",
    }


def test_a_token_echoed_in_per_record_errors_reaches_no_log_xcom_or_error(
    run_dag, sandbox, issued, debug_logging, secret_hygiene
):
    """The sandbox quotes the request's bearer token in every per-record error of a 200 batch answer, as some
    APIs echo request headers: tolerated rejections (XCom, log) and too many (the task's error) both show none."""
    plan = {"paths": "/client/address$", "rules": [{"kind": "echo_token", "every": 1}]}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()

    tolerated = run_dag("t_upsert_addresses", records=[rejected_address(n) for n in range(3)])
    refused = run_dag("t_upsert_addresses", "2025-03-13", records=[rejected_address(n) for n in range(6)])

    assert tolerated.succeeded, tolerated.output[-3000:]
    assert refused.state == "failed" and "Consentio rejected 6 of 6 addresses" in refused.output
    assert sandbox.state.stats.faults["echo_token"] == 2  # both answers quoted the token
    echoed = "not found (create clients before their addresses) (request authorised by Bearer ***)"
    reasons = [rejection["reason"] for rejection in tolerated.xcoms["upsert"]["rejected"]]
    assert reasons == [f"client CLI-NOPE-{n} {echoed}" for n in range(3)]  # the echo arrived, redacted
    assert f"- ADDR-REJ-5: client CLI-NOPE-5 {echoed}" in refused.output
    secrets = {"API key": sandbox.api_key, **{f"token #{n}": token for n, token in enumerate(issued, start=1)}}
    scanner = scanner_for(secret_hygiene, secrets)
    assert len(issued) >= 2
    for where, text in {
        "tolerated run output": tolerated.output,
        "refused run output": refused.output,
        "exception text": "\n".join(TASK_ERROR.findall(refused.output)),
        "XComs": json.dumps([tolerated.xcoms, refused.xcoms], default=str),
    }.items():
        assert scanner.find(text) == [], where
    scanner.check_airflow_home(Path(os.environ["AIRFLOW_HOME"]))  # every table but `connection`, every task log
    assert scanner.leaks == []


def test_reprs_and_errors_of_the_hook_client_and_settings_hide_the_secrets(
    sandbox, consentio_connection, issued, make_client, caplog, secret_hygiene
):
    from airflow_provider_consentio.hooks.consentio import ConsentioHook

    caplog.set_level(logging.DEBUG)
    hook = ConsentioHook()
    session = hook.get_conn().login()
    client = make_client()
    client.get_orders(MARCH_1, MARCH_2)
    with pytest.raises(ConsentioAuthError) as refused:
        make_client(api_key=WRONG_KEY).login()
    texts = {
        "repr(hook)": repr(hook),
        "repr(client)": repr(hook.client) + repr(client),
        "repr(settings)": repr(hook.get_settings()) + repr(client.settings),
        "repr(session)": repr(session),
        "repr(token cache entries)": repr(list(client._tokens._tokens.values())),
        "exception": f"{refused.value} {refused.value!r} {refused.value.args}",
        "logs": caplog.text,
    }
    hook.close()
    secrets = {"API key": sandbox.api_key, "wrong API key": WRONG_KEY}
    secrets.update({f"token #{number}": token for number, token in enumerate(issued, start=1)})
    scanner = scanner_for(secret_hygiene, secrets)
    assert len(issued) == 4
    for where, text in texts.items():
        assert scanner.find(text) == [], where


def test_the_masker_knows_the_key_and_every_token_of_a_run(run_dag, sandbox, issued, tmp_path):
    import structlog
    from airflow.sdk.log import logging_processors, mask_logs

    result = run_dag("t_export_hourly", output_path=str(tmp_path / "orders.jsonl"), **WINDOW)

    assert result.succeeded, result.output[-3000:]
    assert len(issued) == 2  # the run's own login: these tokens were registered while the task ran
    for secret in (sandbox.api_key, *issued):
        # The masker's own step, without Airflow's generic JWT filter (which turns any token into "eyJ***").
        assert mask_logs(None, "info", {"event": f"Authorization: Bearer {secret}"}) == {
            "event": "Authorization: Bearer ***"
        }
    # A worker writes task log files through this chain: a careless log line comes out masked.
    written = io.BytesIO()
    task_log = structlog.wrap_logger(structlog.BytesLogger(written), processors=list(logging_processors(True)))
    task_log.info(f"careless: key={sandbox.api_key}", token=issued[0])
    line = json.loads(written.getvalue())
    assert (line["event"], line["token"]) == ("careless: key=***", "***")  # the JWT filter alone gives "eyJ***"


# --- the suite-wide scan finds what it is meant to find -----------------------------------------------------------

PLANTED_KEY = "sbx_" + "5eed" * 8
PLANTED_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLWEtcGxhbnRlZC10b2tlbi0xMjM0NQ"


def planted_home(tmp_path: Path) -> Path:
    """An AIRFLOW_HOME whose database and task log each hold a planted secret, as a leak would put it there."""
    home = tmp_path / "airflow-home"
    log = home / "logs" / "dag_id=d" / "run_id=r" / "task_id=t" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    log.write_text(f'{{"event": "calling the API", "headers": {{"Authorization": "Bearer {PLANTED_TOKEN}"}}}}\n')
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        db.execute("CREATE TABLE xcom (dag_id TEXT, value BLOB)")
        db.execute("CREATE TABLE rendered_task_instance_fields (dag_id TEXT, rendered_fields TEXT)")
        db.execute("CREATE TABLE connection (conn_id TEXT, password TEXT)")
        db.execute("INSERT INTO xcom VALUES ('d', ?)", (json.dumps({"debug": f"key={PLANTED_KEY}"}).encode(),))
        db.execute("INSERT INTO rendered_task_instance_fields VALUES ('d', '{\"path\": \"/data/out.jsonl\"}')")
        db.execute("INSERT INTO connection VALUES ('consentio_default', ?)", (PLANTED_KEY,))
        db.commit()
    events = home / Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"]).name
    events.write_text(json.dumps({"eventType": "COMPLETE", "run": {"facets": {"debug": f"key={PLANTED_KEY}"}}}) + "\n")
    return home


def test_the_scan_finds_planted_secrets_in_the_database_and_the_task_logs(tmp_path, secret_hygiene):
    scanner = scanner_for(secret_hygiene, {"API key": PLANTED_KEY, "access token": PLANTED_TOKEN})
    scanner.check_airflow_home(planted_home(tmp_path))

    assert [leak.split(": ")[0] for leak in scanner.leaks] == [
        "metadata table xcom",
        "task log logs/dag_id=d/run_id=r/task_id=t/attempt=1.log",
        "OpenLineage events",
    ]  # and not the connection table: holding the key is its job
    assert all(PLANTED_KEY not in leak and PLANTED_TOKEN.split(".")[2] not in leak for leak in scanner.leaks)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"Authorization: Bearer {PLANTED_TOKEN}", id="whole-token"),
        pytest.param(f"sig={PLANTED_TOKEN.split('.')[2]}", id="token-signature-alone"),
        pytest.param(f'{{"api_key":"{PLANTED_KEY}"}}', id="key-in-json"),
        pytest.param(f"POST /login?key={PLANTED_KEY}&x=1", id="key-in-a-url"),
        pytest.param(f"prefix{PLANTED_KEY}suffix", id="key-glued-to-other-text"),
    ],
)
def test_the_scan_finds_a_secret_however_it_is_embedded(text, secret_hygiene):
    scanner = scanner_for(secret_hygiene, {"API key": PLANTED_KEY, "access token": PLANTED_TOKEN})
    assert scanner.find(text) != []
    assert scanner.find(text.replace(PLANTED_KEY, "sbx_other").replace(PLANTED_TOKEN.split(".")[2], "x")) == []


def test_the_suite_wide_hooks_report_a_secret_in_test_output_or_an_exception(secret_hygiene, monkeypatch, request):
    # The session's scanner, given a planted secret and a fresh leak list for this test (both restored after it).
    monkeypatch.setattr(secret_hygiene, "_needles", {})
    monkeypatch.setattr(secret_hygiene, "leaks", [])
    secret_hygiene.add(PLANTED_KEY, "API key")

    report = SimpleNamespace(nodeid="tests/x.py::test_y", sections=[("Captured stdout call", f"key {PLANTED_KEY}")])
    secret_hygiene.check_report(report)
    with pytest.raises(ConsentioError):
        raise ConsentioError(f"careless message with {PLANTED_KEY}")

    [label] = secret_hygiene.find(PLANTED_KEY)
    assert secret_hygiene.leaks == [
        f"tests/x.py::test_y (Captured stdout call): {label}",
        f"{request.node.nodeid} (ConsentioError message): {label}",
    ]
    assert PLANTED_KEY not in label
