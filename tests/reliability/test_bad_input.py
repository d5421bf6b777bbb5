"""Bad input: every case is refused with an error that names what is wrong and where, and nothing is sent or written.

Operator parameters, connections and input files go through a real Airflow run (dag.test), so each error is checked
as Airflow reports it: the exception line of the failed task. Answers the API should never give (HTML, truncated or
empty bodies, the wrong shape, more than the client accepts) go through the client against sandbox faults.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.client import ConsentioClient, RetryPolicy, TokenCache
from airflow_provider_consentio.errors import (
    ConsentioAuthError,
    ConsentioConfigError,
    ConsentioError,
    ConsentioResponseError,
    ConsentioTransientError,
    ConsentioValidationError,
)
from airflow_provider_consentio.models import ExternalReference, PurchaseNeed

MARCH_1 = datetime(2025, 3, 1, tzinfo=UTC)
MARCH_2 = datetime(2025, 3, 2, tzinfo=UTC)
ONE_DAY = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-01T06:00:00Z"}
WRONG_KEY = "sbx_0123456789abcdef0123456789abcdef"
ORDERS = "GET /v2/partner/1001/order"
NEEDS = "POST /v2/partner/1001/purchase-needs"

# A valid purchase need; each case below breaks one documented rule in a copy of it and sends it beside this one.
NEED = {
    "code": "PN-OK",
    "reference_code": "SKU-1",
    "start_date": "2025-03-01",
    "end_date": "2025-03-02",
    "quantity": 5,
    "quantity_unit": "box",
    "external_status": "open",
}
NEED_CSV_HEADER = "line_code,product_code,start_date,end_date,quantity,quantity_unit,external_status"


def need(**changes: Any) -> dict[str, Any]:
    record = {**NEED, "code": "PN-BAD", **changes}
    return {key: value for key, value in record.items() if value is not None}


@dataclass(frozen=True)
class DagCase:
    """A DAG run that must fail up front. ``{in}``/``{out}`` in conf values become the input file/output path."""

    dag_id: str
    conf: dict[str, Any]
    error: type[ConsentioError]
    fragments: tuple[str, ...]
    input_file: tuple[str, bytes] | None = None
    connection: dict[str, Any] = field(default_factory=dict)  # merged over the sandbox connection
    requests: dict[str, int] = field(default_factory=dict)  # what may reach the sandbox (the refused login)


def export(error: type[ConsentioError], *fragments: str, **conf: Any) -> DagCase:
    return DagCase("t_export_hourly", {"output_path": "{out}", **ONE_DAY, **conf}, error, fragments)


def export_needs(error: type[ConsentioError], *fragments: str, **conf: Any) -> DagCase:
    return DagCase("t_export_needs", {"output_path": "{out}", **conf}, error, fragments)


def upsert(*fragments: str, **changes: Any) -> DagCase:
    message = ("1 of 2 records from records are invalid", "Nothing was sent", *fragments)
    return DagCase("t_upsert_needs_default", {"needs": [NEED, need(**changes)]}, ConsentioValidationError, message)


def upsert_file(
    name: str, content: bytes, *fragments: str, error: type[ConsentioError] = ConsentioValidationError
) -> DagCase:
    return DagCase("t_upsert_needs_default", {"input_path": "{in}"}, error, fragments, input_file=(name, content))


def sync(*fragments: str, record: dict[str, Any]) -> DagCase:
    references = [{"hash_id": "ORDER-OK", "external_id": "ERP-1"}, record]
    message = ("1 of 2 records from records are invalid", "Nothing was sent", *fragments)
    return DagCase("t_sync_external", {"references": references}, ConsentioValidationError, message)


def connection(error: type[ConsentioError], *fragments: str, requests: dict[str, int] | None = None, **conn: Any):
    return DagCase("t_export_hourly", {"output_path": "{out}", **ONE_DAY}, error, fragments, None, conn, requests or {})


DAG_CASES = [
    # --- dates and windows
    pytest.param(
        export(ConsentioConfigError, "start='last tuesday' is not an ISO 8601 date", start="last tuesday"),
        id="export-start-garbage",
    ),
    pytest.param(
        export(ConsentioConfigError, "end='2025-02-30T00:00:00Z' is not an ISO 8601", end="2025-02-30T00:00:00Z"),
        id="export-end-unparseable-feb-30",
    ),
    pytest.param(
        export(ConsentioConfigError, "start='03/10/2025' is not an ISO 8601", start="03/10/2025"),
        id="export-start-ambiguous-slash-date",
    ),
    pytest.param(
        export(
            ConsentioConfigError,
            "export: start 2025-03-05T00:00:00+00:00 is after end 2025-03-01T00:00:00+00:00",
            start="2025-03-05T00:00:00Z",
            end="2025-03-01T00:00:00Z",
        ),
        id="export-start-after-end",
    ),
    pytest.param(
        export(
            ConsentioConfigError,
            "status must be one of accepted, pending, canceled, incomplete, got 'shipped'",
            statuses=["accepted", "shipped"],
        ),
        id="export-unknown-status",
    ),
    pytest.param(
        DagCase(
            "t_bad_export_kind",
            {"output_path": "{out}", **ONE_DAY},
            ConsentioConfigError,
            ("kind must be one of sale, purchase, got 'sales'",),
        ),
        id="export-unknown-kind",
    ),
    pytest.param(
        export_needs(
            ConsentioConfigError,
            "export: to_date 2025-03-01 is before from_date 2025-03-10",
            from_date="2025-03-10",
            to_date="2025-03-01",
        ),
        id="needs-export-from-after-to",
    ),
    pytest.param(
        export_needs(
            ConsentioConfigError,
            "to_date='2025-13-01' is not an ISO 8601",
            from_date="2025-03-01",
            to_date="2025-13-01",
        ),
        id="needs-export-to-date-month-13",
    ),
    # --- the connection
    pytest.param(
        connection(
            ConsentioAuthError,
            "POST /v2/partner/1001/login -> HTTP 401",
            "Consentio rejected the API key for workspace 1001",
            "Check the connection's API key (password)",
            requests={"POST /{ws}/login 401": 1},
            password=WRONG_KEY,
        ),
        id="connection-wrong-api-key",
    ),
    pytest.param(
        connection(
            ConsentioAuthError,
            "POST /v2/partner/9999/login -> HTTP 401",
            "Consentio rejected the API key for workspace 9999",
            "and workspace ID (login)",
            requests={"POST /{ws}/login 401": 1},
            login="9999",
        ),
        id="connection-unknown-workspace",
    ),
    pytest.param(
        connection(
            ConsentioConfigError,
            "Connection 'consentio_default': the Workspace ID (login) must be a positive number, got 'acme'",
            login="acme",
        ),
        id="connection-workspace-not-a-number",
    ),
    pytest.param(
        connection(
            ConsentioConfigError,
            "Connection 'consentio_default': Refusing base URL 'http://consentio.example.com'",
            "Use https://",
            host="http://consentio.example.com",
        ),
        id="connection-plain-http-to-a-remote-host",
    ),
    pytest.param(
        connection(
            ConsentioConfigError,
            "Connection 'consentio_default': TLS verification cannot be switched off",
            extra={"verify": False},
        ),
        id="connection-tls-verify-off",
    ),
    # --- purchase needs: one documented rule broken per case
    pytest.param(upsert("PN-BAD: quantity is required", quantity=None), id="need-missing-quantity"),
    pytest.param(
        upsert(
            "PN-BAD: quantity_unit input should be 'box', 'pallet', 'kg', 'piece' or 'unknown', got 'crate'",
            quantity_unit="crate",
        ),
        id="need-unknown-quantity-unit",
    ),
    pytest.param(
        upsert("PN-BAD: tender_kind", "got 'flash_sale'", tender_kind="flash_sale"), id="need-bad-tender-kind"
    ),
    pytest.param(upsert(": code string should have at most 256 characters", code="C" * 257), id="need-code-over-256"),
    pytest.param(
        upsert("PN-BAD: external_status string should have at most 32 characters", external_status="x" * 33),
        id="need-external-status-over-32",
    ),
    pytest.param(
        upsert("PN-BAD: end_date is before start_date 2025-03-10", start_date="2025-03-10", end_date="2025-03-01"),
        id="need-ends-before-it-starts",
    ),
    pytest.param(
        upsert("PN-BAD: quantity must be a number, got 'ten'", quantity="ten"), id="need-quantity-not-a-number"
    ),
    pytest.param(
        upsert(
            "PN-BAD: storage_location_code string should have at most 20 characters",
            storage_location_code="WAREHOUSE-NORTH-0001-B",
        ),
        id="need-location-code-over-20",
    ),
    pytest.param(
        upsert("PN-BAD: metadata input should be a valid dictionary", metadata=["promo"]),
        id="need-metadata-not-an-object",
    ),
    pytest.param(
        upsert("PN-BAD: start_date must be a date in YYYY-MM-DD form, got '01.03.2025'", start_date="01.03.2025"),
        id="need-start-date-not-iso",
    ),
    pytest.param(
        upsert("PN-BAD: quantity_units is not a known field (did you mean quantity_unit?)", quantity_units="kg"),
        id="need-misspelt-field",
    ),
    # --- input files
    pytest.param(
        upsert_file(
            "needs.csv",
            b"line_code,product_code,start_date,end_date,quantity,external_status\nPN-1,SKU-1,2025-03-01,2025-03-01,1,open\n",
            "needs.csv: missing required column(s) quantity_unit",
            "map them with column_map",
        ),
        id="csv-missing-required-column",
    ),
    pytest.param(
        upsert_file(
            "needs.csv",
            f"{NEED_CSV_HEADER}\nPN-1,SKU-1,2025-03-01,2025-03-01,1,box,open\nPN-2,Café,2025-03-01,2025-03-01,1,box,"
            "open\n".encode("latin-1"),
            "line 3: not UTF-8 text (invalid continuation byte at byte 9 of the line)",
            "save the file as UTF-8",
        ),
        id="csv-latin-1-bytes",
    ),
    pytest.param(
        upsert_file(
            "needs.jsonl",
            (
                json.dumps(NEED) + "\n" + json.dumps({**NEED, "code": "PN-2"}) + '\n{"code": "PN-3", "quantity": 1\n'
            ).encode(),
            "needs.jsonl line 3: invalid JSON",
        ),
        id="jsonl-malformed-line-3",
    ),
    pytest.param(
        upsert_file(
            "needs.xlsx", b"PK\x03\x04", "input_path '", "needs.xlsx': use a .jsonl", error=ConsentioConfigError
        ),
        id="input-file-unsupported-type",
    ),
    # --- external references
    pytest.param(sync("record #2: hash_id is required", record={"external_id": "ERP-2"}), id="sync-missing-hash-id"),
    pytest.param(
        sync(
            "ORDER-2: external_status string should have at most 32 characters",
            record={"hash_id": "ORDER-2", "external_status": "waiting for the warehouse to confirm"},
        ),
        id="sync-external-status-over-32",
    ),
    pytest.param(
        sync(
            "ORDER-2: external_status input should be a valid string",
            record={"hash_id": "ORDER-2", "external_status": 7},
        ),
        id="sync-external-status-not-text",
    ),
    pytest.param(
        sync("ORDER-2: sets nothing: give external_id, external_status or cancel=true", record={"hash_id": "ORDER-2"}),
        id="sync-sets-nothing",
    ),
]


TASK_ERROR = re.compile(
    r"^(airflow_provider_consentio(?:\.\w+)+): (.*?)(?=^\d{4}-\d\d-\d\dT\d\d:\d\d|\Z)", re.MULTILINE | re.DOTALL
)


def task_error(output: str) -> tuple[type[BaseException], str]:
    """The class and message of the exception Airflow logged for the failed task (the last one, if chained)."""
    found = TASK_ERROR.findall(output)
    assert found, f"no provider exception in the task output:\n{output[-3000:]}"
    dotted, message = found[-1]
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name), message


def use_connection(monkeypatch, base: dict[str, Any], overrides: dict[str, Any]) -> None:
    extra = {**base["extra"], **overrides.pop("extra", {})}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps({**base, **overrides, "extra": extra}))


def fill(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, str) and value in paths:
        return paths[value]
    return value


@pytest.fixture
def sandbox(sandbox_server):
    """The session's sandbox with faults off and counters zeroed, its data NOT regenerated (0.7 s a test).

    Every case here is refused before it changes anything, and each test asserts just that.
    """
    from airflow_provider_consentio.sandbox import SandboxConfig
    from airflow_provider_consentio.sandbox.faults import FaultPlan

    if sandbox_server.sandbox.config != SandboxConfig(seed=42):
        sandbox_server.sandbox.reset(SandboxConfig(seed=42))
    sandbox_server.sandbox.faults = FaultPlan()
    sandbox_server.state.stats.clear()
    sandbox_server.state.token_ttl = sandbox_server.sandbox.config.token_ttl
    return sandbox_server


@pytest.mark.parametrize("case", DAG_CASES)
def test_bad_operator_input_is_refused_up_front(
    case: DagCase, run_dag, sandbox, consentio_connection, monkeypatch, tmp_path
):
    out_dir = tmp_path / "out"
    paths = {"{out}": str(out_dir / "result.jsonl")}
    if case.input_file:
        name, content = case.input_file
        (tmp_path / name).write_bytes(content)
        paths["{in}"] = str(tmp_path / name)
    if case.connection:
        use_connection(monkeypatch, consentio_connection, dict(case.connection))
    state_before = sandbox.state.summary()

    result = run_dag(case.dag_id, **{key: fill(value, paths) for key, value in case.conf.items()})

    assert result.state == "failed", result.output[-3000:]
    kind, message = task_error(result.output)
    assert issubclass(kind, case.error), (kind, message)
    for fragment in case.fragments:
        assert fragment in message
    assert sandbox.state.stats.snapshot()["requests"] == case.requests  # nothing sent (but a refused login)
    assert sandbox.state.summary() == state_before
    assert not out_dir.exists() or not list(out_dir.iterdir())  # no file, no partial file
    assert sandbox.api_key not in result.output and WRONG_KEY not in result.output


# --- wire level: answers the API should never give ----------------------------------------------------------------


def set_faults(sandbox, paths: str, **rule: Any) -> None:
    plan = {"paths": paths, "rules": [{"every": 1, **rule}]}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()


def get_orders(client: ConsentioClient) -> Any:
    return client.get_orders(MARCH_1, MARCH_2)


def export_orders(client: ConsentioClient) -> Any:
    return client.get_raw_orders(MARCH_1, MARCH_2)


def export_needs_wire(client: ConsentioClient) -> Any:
    return client.get_raw_purchase_needs(date(2025, 3, 1), date(2025, 3, 31))


def upsert_needs(client: ConsentioClient) -> Any:
    return client.upsert_purchase_needs([PurchaseNeed.model_validate(NEED)])


def sync_references(client: ConsentioClient) -> Any:
    return client.update_external_references([ExternalReference(hash_id="ORDER-1", external_id="ERP-1")])


WIRE_CASES = [
    pytest.param(
        {"kind": "502"},
        "/order$",
        get_orders,
        ConsentioTransientError,
        (
            f"{ORDERS} -> HTTP 502: non-JSON body (text/html): '502 Bad Gateway 502 Bad Gateway'",
            "gave up after 1 retries",
        ),
        id="502-html-page-where-json-expected",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "html"},
        "/order$",
        get_orders,
        ConsentioResponseError,
        (f"{ORDERS} -> HTTP 200 but the body is not valid JSON (text/html", "'Maintenance Back soon.'"),
        id="200-html-page",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "html"},
        "/order$",
        export_orders,
        ConsentioResponseError,
        (f"{ORDERS} -> HTTP 200 but the body is not a JSON array of records (text/html", "Maintenance"),
        id="200-html-page-during-export",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "html"},
        "/login$",
        get_orders,
        ConsentioResponseError,
        ("POST /v2/partner/1001/login -> HTTP 200 but the body is not valid JSON (text/html",),
        id="200-html-page-at-login",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "truncated"},
        "/order$",
        get_orders,
        ConsentioResponseError,
        (
            f"{ORDERS} -> HTTP 200 but the body is not valid JSON (application/json, 43 bytes",
            '[{"id": 1, "hash_id": "abc", "status": "acc',
        ),
        id="truncated-json",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "truncated"},
        "/order$",
        export_orders,
        ConsentioResponseError,
        (f"{ORDERS} -> HTTP 200 but the body is not a JSON array of records (application/json, 43 bytes", "truncated"),
        id="truncated-json-during-export",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "truncated"},
        "/purchase-needs$",
        upsert_needs,
        ConsentioResponseError,
        (f"{NEEDS} -> HTTP 200 but the body is not valid JSON",),
        id="truncated-json-after-a-write",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "empty"},
        "/order$",
        get_orders,
        ConsentioResponseError,
        (f"{ORDERS} -> HTTP 200 with an empty body",),
        id="empty-body",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "empty"},
        "/order$",
        export_orders,
        ConsentioResponseError,
        (f"{ORDERS} -> HTTP 200 but the body is not a JSON array of records (application/json, 0 bytes",),
        id="empty-body-during-export",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "wrong_shape"},
        "/order$",
        get_orders,
        ConsentioResponseError,
        (f"{ORDERS}: expected a JSON array, got an object",),
        id="order-list-not-a-list",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "wrong_shape"},
        "/order$",
        export_orders,
        ConsentioResponseError,
        (
            f"{ORDERS} -> HTTP 200: the answer differs from what the provider assumes: (envelope): the answer is an "
            "object (keys: data), assumed a bare JSON array",
        ),
        id="order-list-not-a-list-during-export",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "wrong_shape"},
        "/purchase-needs$",
        export_needs_wire,
        ConsentioResponseError,
        (
            "GET /v2/partner/1001/purchase-needs -> HTTP 200: the answer differs from what the provider assumes: ",
            "(envelope): the answer is an object (keys: data), assumed a bare JSON array",
            '(or {"purchase_needs": [...]})',
        ),
        id="needs-list-not-a-list",
    ),
    pytest.param(
        {"kind": "garbage", "variant": "wrong_shape"},
        "/order/external$",
        sync_references,
        ConsentioResponseError,
        ("PUT /v2/partner/1001/order/external: the answer has neither 'orders' nor 'errors' (keys: data)",),
        id="batch-result-wrong-shape",
    ),
]


@pytest.mark.parametrize(("rule", "paths", "call", "error", "fragments"), WIRE_CASES)
def test_an_answer_that_is_not_what_the_endpoint_returns_is_refused_clearly(
    sandbox, make_client, rule, paths, call: Callable[[ConsentioClient], Any], error, fragments
):
    set_faults(sandbox, paths, **rule)
    client = make_client(retry=RetryPolicy(max_retries=1, initial_backoff=0.0, max_backoff=0.0))
    state_before = sandbox.state.summary()
    with pytest.raises(error) as raised:
        call(client)
    for fragment in fragments:
        assert fragment in str(raised.value)
    assert sandbox.state.summary() == state_before
    assert sandbox.api_key not in str(raised.value)


def test_an_answer_over_the_size_limit_is_refused_not_held_in_memory(sandbox, make_client, monkeypatch):
    # A real month of orders (about 2 MB) against limits lowered to 1 MiB: the same code path as 64 MiB / 512 MiB.
    client = make_client(max_body_bytes=2**20, max_list_bytes=2**20)
    month = (MARCH_1, datetime(2025, 4, 1, tzinfo=UTC))
    for fetch in (client.get_orders, client.get_raw_orders):
        with pytest.raises(ConsentioResponseError, match=f"^{ORDERS}: the response is larger than 1 MiB$"):
            fetch(*month)
    assert len(client.get_orders(MARCH_1, MARCH_2)) > 0  # a day fits


def test_a_token_of_another_workspace_is_refused_with_403(sandbox, make_client):
    cache = TokenCache()
    other = make_client(token_cache=cache, workspace_id=sandbox.other_workspace_id, api_key=sandbox.other_api_key)
    other.login()
    mine = make_client(token_cache=cache)
    cache.put(mine._cache_key, cache.get(other._cache_key))  # as if the connection held the other workspace's key
    with pytest.raises(ConsentioAuthError) as raised:
        mine.get_orders(MARCH_1, MARCH_2)
    message = str(raised.value)
    assert raised.value.status == 403
    assert f"{ORDERS} -> HTTP 403: forbidden: this token has no permission for workspace 1001" in message
    assert "the API key has no permission for workspace 1001: check the connection's workspace ID (login)" in message
    assert sandbox.other_api_key not in message and sandbox.api_key not in message


def test_a_wrong_api_key_is_named_but_never_shown(sandbox, make_client, caplog):
    caplog.set_level("DEBUG")
    with pytest.raises(ConsentioAuthError) as raised:
        make_client(api_key=WRONG_KEY).get_orders(MARCH_1, MARCH_2)
    message = str(raised.value)
    assert "Consentio rejected the API key for workspace 1001" in message and "HTTP 401" in message
    assert WRONG_KEY not in message + caplog.text + repr(raised.value)
    assert sandbox.state.stats.snapshot()["requests"] == {"POST /{ws}/login 401": 1}


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        pytest.param(
            {"base_url": "http://10.0.0.7:8080"}, "Refusing base URL 'http://10.0.0.7:8080'", id="plain-http-lan"
        ),
        pytest.param(
            {"base_url": "https://user:pw@api.consentio.co"}, "must not contain credentials", id="url-credentials"
        ),
        pytest.param({"workspace_id": 0}, "workspace_id must be a positive integer, got 0", id="workspace-zero"),
        pytest.param({"timeout": 0}, "timeout must be a positive number of seconds, got 0", id="timeout-zero"),
    ],
)
def test_unsafe_client_settings_are_refused_before_any_request(sandbox, make_settings, settings, fragment):
    with pytest.raises(ConsentioConfigError, match=re.escape(fragment)):
        make_settings(**settings)
    assert sandbox.state.stats.snapshot()["requests"] == {}


def test_the_client_refuses_an_unknown_status_or_kind_before_sending(sandbox, make_client):
    client = make_client()
    with pytest.raises(ConsentioConfigError, match="status must be one of accepted, pending, canceled, incomplete"):
        client.get_orders(MARCH_1, MARCH_2, status="shipped")
    with pytest.raises(ConsentioConfigError, match="kind must be one of sale, purchase, got 'refund'"):
        client.get_orders(MARCH_1, MARCH_2, kind="refund")
    with pytest.raises(ConsentioConfigError, match=r"end must be timezone-aware \(got naive 2025-03-02T00:00:00\)"):
        client.get_orders(MARCH_1, datetime(2025, 3, 2))
    assert sandbox.state.stats.snapshot()["requests"] == {}
