"""Property-based fuzz of the sandbox's public endpoints: whatever a client sends, never a 5xx.

Every answer is below 500, and every 4xx is a JSON error with a code and a message. Examples are derandomized so
CI runs the same inputs each time; the budget keeps the file to some seconds.
"""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_consentio.sandbox import SandboxConfig

FUZZ = settings(max_examples=150, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["2025-03-01", "2025-02-30", "kg", "accepted", "INVALID-1", "", "\x00n12.5", "9" * 400])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=25,
)
need_fields = st.sampled_from(
    ["code", "reference_code", "start_date", "end_date", "quantity", "quantity_unit", "external_status",
     "storage_location_code", "tender_kind", "metadata", "id", "created_at"]
)  # fmt: skip
needs = st.dictionaries(need_fields, json_values, max_size=10) | json_values
references = st.dictionaries(
    st.sampled_from(["hash_id", "external_id", "external_status", "cancel", "other"]), json_values, max_size=5
)
instants = st.text(max_size=30) | st.sampled_from(["2025-02-10T00:00:00Z", "2025-02-10T00:00:00+01:00", "2025-13-01"])
raw_bodies = st.binary(max_size=200) | json_values.map(lambda value: json.dumps(value).encode())


class Target(NamedTuple):
    http: httpx.Client
    partner: str
    headers: dict[str, str]

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example: not the token
        return f"Target({self.partner})"


@pytest.fixture(scope="module")
def target(sandbox_server):
    """One client, one token, the seeded data; reset at the end so later tests start clean."""
    sandbox_server.sandbox.reset(SandboxConfig(seed=42))
    with httpx.Client(base_url=sandbox_server.base_url, timeout=30) as http:
        ws = sandbox_server.workspace_id
        token = http.post(f"/v2/partner/{ws}/login", json={"api_key": sandbox_server.api_key}).json()["access_token"]
        yield Target(http, f"/v2/partner/{ws}", {"Authorization": f"Bearer {token}"})
    sandbox_server.sandbox.reset(SandboxConfig(seed=42))


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert body["error"], body
        assert body["message"], body


ARABIC_1001 = "\u0661\u0660\u0660\u0661"
workspaces = st.text(max_size=8) | st.sampled_from(["1001", "2002", "0", "²", ARABIC_1001, "-1", " 1001"])
login_bodies = raw_bodies | st.text(max_size=30).map(lambda key: json.dumps({"api_key": key}).encode())


@FUZZ
@given(body=login_bodies, ws=workspaces)
def test_login(target, body, ws):
    http, _, _ = target
    check(http.post(f"/v2/partner/{quote(ws, safe='')}/login", content=body))


@FUZZ
@given(
    start=instants, end=instants, kind=st.text(max_size=10) | st.just("sale"), status=st.none() | st.text(max_size=12)
)
def test_orders_query(target, start, end, kind, status):
    http, partner, headers = target
    params = {"from": start, "to": end, "kind": kind, **({"status": status} if status is not None else {})}
    check(http.get(f"{partner}/order", params=params, headers=headers))


@FUZZ
@given(ws=workspaces)
def test_any_workspace_in_the_path(target, ws):
    http, _, headers = target
    params = {"from": "2025-02-10T00:00:00Z", "to": "2025-02-11T00:00:00Z", "kind": "sale"}
    check(http.get(f"/v2/partner/{quote(ws, safe='')}/order", params=params, headers=headers))


@FUZZ
@given(records=st.lists(references, min_size=0, max_size=4) | json_values)
def test_external_references(target, records):
    http, partner, headers = target
    check(http.put(f"{partner}/order/external", json={"orders": records}, headers=headers))


@FUZZ
@given(since=instants)
def test_edited_orders(target, since):
    http, partner, headers = target
    check(http.get(f"{partner}/order/edited", params={"since": since}, headers=headers))


@FUZZ
@given(body=json_values.map(lambda ids: {"hash_ids": ids}) | raw_bodies)
def test_mark_seen(target, body):
    http, partner, headers = target
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    check(http.post(f"{partner}/order/seen", content=content, headers=headers))


@FUZZ
@given(hash_id=st.text(min_size=1, max_size=40))
def test_prepare(target, hash_id):
    http, partner, _ = target
    check(http.post(f"{partner}/order/{quote(hash_id, safe='')}/prepare"))


@FUZZ
@given(records=st.lists(needs, min_size=0, max_size=4) | json_values)
def test_purchase_needs_upsert(target, records):
    http, partner, headers = target
    check(http.post(f"{partner}/purchase-needs", json={"purchase_needs": records}, headers=headers))


@FUZZ
@given(body=raw_bodies)
def test_purchase_needs_upsert_raw_body(target, body):
    http, partner, headers = target
    check(http.post(f"{partner}/purchase-needs", content=body, headers=headers))


@FUZZ
@given(start=st.text(max_size=12), end=st.text(max_size=12), status=st.none() | st.text(max_size=8))
def test_purchase_needs_query(target, start, end, status):
    http, partner, headers = target
    params = {"start_date": start, "end_date": end, **({"status": status} if status is not None else {})}
    check(http.get(f"{partner}/purchase-needs", params=params, headers=headers))


# Header values are visible ASCII: anything else is refused by the HTTP layer (h11) before the app sees it.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


@FUZZ
@given(authorization=header_values | header_values.map(lambda value: f"Bearer {value}".strip()))
def test_authorization_header(target, authorization):
    http, partner, _ = target
    params = {"since": "2025-01-01T00:00:00Z"}
    check(http.get(f"{partner}/order/edited", params=params, headers={"Authorization": authorization}))
