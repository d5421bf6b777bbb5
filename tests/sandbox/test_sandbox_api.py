"""The sandbox's contract as the wire sees it: every Partner API endpoint and the admin API, over loopback HTTP.

These tests use plain httpx, not the provider's client, so they pin down what the emulator serves.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from airflow_provider_consentio.sandbox import SandboxConfig
from airflow_provider_consentio.sandbox.state import State
from airflow_provider_consentio.sandbox.wire import encode

DAY = datetime(2025, 2, 10, tzinfo=UTC)


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def partner(sandbox):
    return f"/v2/partner/{sandbox.workspace_id}"


def login(http, workspace_id, api_key) -> dict:
    response = http.post(f"/v2/partner/{workspace_id}/login", json={"api_key": api_key})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def auth(http, sandbox):
    return {"Authorization": f"Bearer {login(http, sandbox.workspace_id, sandbox.api_key)['access_token']}"}


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def window(day: datetime = DAY, days: int = 1) -> dict:
    return {"from": day.isoformat(), "to": (day + timedelta(days=days)).isoformat(), "kind": "sale"}


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["message"]
    if code:
        assert body["error"] == code
    return body


# --- login and authentication ------------------------------------------------------------------------------------


def test_login_issues_access_and_refresh_tokens_with_the_configured_lifetime(http, sandbox):
    http.put("/_sandbox/token-ttl", json={"seconds": 120}).raise_for_status()
    before = time.time()
    tokens = login(http, sandbox.workspace_id, sandbox.api_key)
    access = claims(tokens["access_token"])
    assert tokens["refresh_token"] and tokens["refresh_token"] != tokens["access_token"]
    assert access["ws"] == sandbox.workspace_id
    assert before + 120 - 2 <= access["exp"] <= time.time() + 120 + 1
    assert tokens["workspace"]["id"] == sandbox.workspace_id
    assert http.get("/_sandbox/stats").json()["logins"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"api_key": "not-the-key"}, 401, "invalid_api_key"),
        ({"key": "wrong field"}, 400, "invalid_request"),
        (["not", "an", "object"], 400, "invalid_request"),
    ],
)
def test_login_rejects_a_wrong_key_or_a_malformed_body(http, partner, body, status, code):
    assert_json_error(http.post(f"{partner}/login", json=body), status, code)


def test_login_rejects_a_body_that_is_not_json(http, partner):
    assert_json_error(http.post(f"{partner}/login", content=b"{api_key: nope"), 400, "invalid_json")


def test_the_other_workspaces_key_does_not_open_this_workspace(http, sandbox, partner):
    assert_json_error(http.post(f"{partner}/login", json={"api_key": sandbox.other_api_key}), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "invalid_token"),
        ({"Authorization": "Bearer not.a.jwt"}, None),
        ({"Authorization": "Token abc"}, "invalid_token"),
    ],
)
def test_requests_without_a_valid_token_are_401(http, partner, headers, code):
    body = assert_json_error(http.get(f"{partner}/order", params=window(), headers=headers), 401, code)
    assert "token" in body["message"].lower() or "authorization" in body["message"].lower()


def test_an_expired_token_is_401_token_expired(http, sandbox, partner):
    http.put("/_sandbox/token-ttl", json={"seconds": 1}).raise_for_status()
    token = login(http, sandbox.workspace_id, sandbox.api_key)["access_token"]
    time.sleep(2.1)  # exp is whole seconds
    response = http.get(f"{partner}/order", params=window(), headers={"Authorization": f"Bearer {token}"})
    assert_json_error(response, 401, "token_expired")


def test_revoked_tokens_are_401_until_the_next_login(http, sandbox, partner, auth):
    assert http.get(f"{partner}/order", params=window(), headers=auth).status_code == 200
    http.post("/_sandbox/tokens/expire").raise_for_status()
    assert_json_error(http.get(f"{partner}/order", params=window(), headers=auth), 401, "token_expired")
    fresh = login(http, sandbox.workspace_id, sandbox.api_key)["access_token"]
    assert http.get(f"{partner}/order", params=window(), headers={"Authorization": f"Bearer {fresh}"}).is_success


def test_a_token_of_another_workspace_is_403(http, sandbox, partner):
    other = login(http, sandbox.other_workspace_id, sandbox.other_api_key)["access_token"]
    headers = {"Authorization": f"Bearer {other}"}
    assert_json_error(http.get(f"{partner}/order", params=window(), headers=headers), 403, "forbidden")
    assert_json_error(http.post(f"{partner}/order/seen", json={"hash_ids": ["x"]}, headers=headers), 403, "forbidden")


def test_an_unknown_workspace_is_404(http, auth):
    assert_json_error(http.get("/v2/partner/999999/order", params=window(), headers=auth), 404, "workspace_not_found")


# --- GET /order ------------------------------------------------------------------------------------------------


def test_orders_of_a_day_equal_the_ground_truth_in_creation_order(http, sandbox, partner, auth):
    response = http.get(f"{partner}/order", params=window(), headers=auth)
    assert response.status_code == 200
    orders = response.json()
    truth = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", None)
    assert [o["hash_id"] for o in orders] == [o.data["hash_id"] for o in truth]
    assert len(orders) > 10
    assert [(o["created_at"], o["id"]) for o in orders] == sorted((o["created_at"], o["id"]) for o in orders)
    first = orders[0]
    assert {"id", "hash_id", "status", "created_at", "items", "price", "currency"} <= set(first)
    assert len(first["items"]) >= 1
    statuses = {o["status"] for o in http.get(f"{partner}/order", params=window(days=10), headers=auth).json()}
    assert statuses == {"accepted", "pending", "canceled", "incomplete"}


def test_orders_are_served_with_exact_decimal_numbers(http, sandbox, partner, auth):
    raw = http.get(f"{partner}/order", params=window(), headers=auth).content
    truth = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", None)
    assert raw == b"[" + b",".join(o.json for o in truth) + b"]"
    assert re.search(rb'"price":\d+\.\d{2}[,}]', raw), "prices are bare JSON numbers with their cents"


@pytest.mark.parametrize("status", ["accepted", "pending", "canceled", "incomplete"])
def test_the_status_filter_selects_one_status(http, partner, auth, status):
    orders = http.get(f"{partner}/order", params={**window(days=7), "status": status}, headers=auth).json()
    assert orders
    assert {o["status"] for o in orders} == {status}


def test_the_kind_filter_separates_sales_from_purchases(http, sandbox, partner, auth):
    sales = http.get(f"{partner}/order", params=window(days=7), headers=auth).json()
    purchases = http.get(f"{partner}/order", params={**window(days=7), "kind": "purchase"}, headers=auth).json()
    assert sales
    assert not {o["hash_id"] for o in sales} & {o["hash_id"] for o in purchases}
    truth = sandbox.state.window(DAY, DAY + timedelta(days=7), "purchase", None)
    assert [o["hash_id"] for o in purchases] == [o.data["hash_id"] for o in truth]


def test_the_admin_adds_several_orders_in_one_request_and_refuses_a_bad_count(http, sandbox):
    before = len(sandbox.state.orders)
    added = http.post("/_sandbox/orders", json={"created_at": "2025-02-11T12:00:00Z", "count": 3})
    assert added.status_code == 201
    assert len({order["hash_id"] for order in added.json()}) == 3
    assert len(sandbox.state.orders) == before + 3
    for count in (0, "3", True, 10_001):
        refused = http.post("/_sandbox/orders", json={"created_at": "2025-02-11T12:00:00Z", "count": count})
        assert_json_error(refused, 400, "invalid_request")
    assert len(sandbox.state.orders) == before + 3


def test_the_window_is_half_open_on_creation_time(http, partner, auth):
    edge = datetime(2025, 2, 11, 12, 0, 0, tzinfo=UTC)
    added = http.post("/_sandbox/orders", json={"created_at": edge.isoformat()})
    assert added.status_code == 201
    hash_id = added.json()["hash_id"]

    def ids(start: datetime, end: datetime) -> list[str]:
        params = {"from": start.isoformat(), "to": end.isoformat(), "kind": "sale"}
        return [o["hash_id"] for o in http.get(f"{partner}/order", params=params, headers=auth).json()]

    before, after = ids(edge - timedelta(hours=1), edge), ids(edge, edge + timedelta(hours=1))
    assert hash_id not in before
    assert after.count(hash_id) == 1
    assert ids(edge, edge) == []


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday", "to": "2025-02-11T00:00:00Z", "kind": "sale"},
        {"from": "2025-02-12T00:00:00Z", "to": "2025-02-11T00:00:00Z", "kind": "sale"},
        {"from": "2025-02-10T00:00:00Z", "to": "2025-02-11T00:00:00Z", "kind": "gift"},
        {"from": "2025-02-10T00:00:00Z", "to": "2025-02-11T00:00:00Z", "kind": "sale", "status": "shipped"},
        {"from": "2025-02-10T00:00:00Z", "kind": "sale"},
    ],
    ids=["bad-date", "from-after-to", "bad-kind", "bad-status", "missing-to"],
)
def test_bad_order_queries_are_400_with_a_json_message(http, partner, auth, params):
    assert_json_error(http.get(f"{partner}/order", params=params, headers=auth), 400, "invalid_request")


# --- PUT /order/external ---------------------------------------------------------------------------------------


def test_external_references_are_stored_and_cancel_cancels(http, sandbox, partner, auth):
    accepted = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", "accepted")
    first, second = accepted[0].data["hash_id"], accepted[1].data["hash_id"]
    body = {
        "orders": [
            {"hash_id": first, "external_id": "ERP-1", "external_status": "imported"},
            {"hash_id": second, "external_id": "ERP-2", "external_status": "void", "cancel": True},
            {"hash_id": "no-such-order", "external_id": "ERP-3"},
        ]
    }
    response = http.put(f"{partner}/order/external", json=body, headers=auth)
    assert response.status_code == 200
    answer = response.json()
    assert [o["hash_id"] for o in answer["orders"]] == [first, second]
    assert answer["errors"] == ["no-such-order: order not found"]
    refs = http.get("/_sandbox/state").json()["external_refs"]
    assert refs[first] == {"external_id": "ERP-1", "external_status": "imported"}
    assert http.get(f"/_sandbox/orders/{second}").json()["order"]["status"] == "canceled"
    assert http.get(f"/_sandbox/orders/{first}").json()["admin"]["external_id"] == "ERP-1"


def test_external_references_report_bad_records_by_position_or_hash_id(http, sandbox, partner, auth):
    hash_id = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", None)[0].data["hash_id"]
    body = {"orders": [{"external_id": "ERP-1"}, {"hash_id": hash_id, "external_id": "x" * 300}]}
    errors = http.put(f"{partner}/order/external", json=body, headers=auth).json()["errors"]
    assert len(errors) == 2
    assert errors[0].startswith("#1: ")
    assert errors[1].startswith(f"{hash_id}: ")


@pytest.mark.parametrize("body", [{"orders": []}, {"orders": "ERP-1"}, {"hash_id": "x"}, [1, 2]])
def test_a_malformed_external_reference_body_is_400(http, partner, auth, body):
    assert_json_error(http.put(f"{partner}/order/external", json=body, headers=auth), 400, "invalid_request")


# --- edited -> seen -> re-edited -------------------------------------------------------------------------------


def test_edited_seen_and_edited_again(http, sandbox, partner, auth):
    since = {"since": "2025-02-10T00:00:00Z"}
    pending_before = {o["hash_id"] for o in http.get(f"{partner}/order/edited", params=since, headers=auth).json()}
    hash_id = next(
        o.data["hash_id"]
        for o in sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", "accepted")
        if o.data["hash_id"] not in pending_before
    )
    at = {"at": "2025-02-10T18:00:00Z"}
    first_edit = http.post(f"/_sandbox/orders/{hash_id}/edit", json=at).json()

    def edited() -> dict[str, dict]:
        return {o["hash_id"]: o for o in http.get(f"{partner}/order/edited", params=since, headers=auth).json()}

    assert edited()[hash_id]["updated_at"] == first_edit["updated_at"]
    assert edited()[hash_id]["updated_at"] == first_edit["updated_at"], "still listed until seen"

    seen = http.post(f"{partner}/order/seen", json={"hash_ids": [hash_id, "missing"]}, headers=auth).json()
    assert seen == {"seen": [hash_id], "errors": ["missing: order not found"]}
    assert hash_id not in edited()
    assert http.get(f"/_sandbox/orders/{hash_id}").json()["admin"]["seen"] is True

    second_edit = http.post(f"/_sandbox/orders/{hash_id}/edit", json=at).json()
    assert second_edit["updated_at"] > first_edit["updated_at"], "each version is later, even at the same moment"
    again = edited()[hash_id]
    assert again["updated_at"] == second_edit["updated_at"]
    assert http.get(f"/_sandbox/orders/{hash_id}").json()["admin"]["edit_count"] == 2

    # `since` filters on the edit time.
    later = {"since": "2025-12-31T00:00:00Z"}
    assert hash_id not in {o["hash_id"] for o in http.get(f"{partner}/order/edited", params=later, headers=auth).json()}


def test_the_admin_lists_every_edited_order_in_one_request(http, sandbox, partner, auth):
    since = {"since": "2025-01-01T00:00:00Z"}
    pending = {
        o["hash_id"]: o["updated_at"] for o in http.get(f"{partner}/order/edited", params=since, headers=auth).json()
    }
    seen_one = next(iter(pending))
    http.post(f"{partner}/order/seen", json={"hash_ids": [seen_one]}, headers=auth)

    edits = {edit["hash_id"]: edit for edit in http.get("/_sandbox/edits").json()}

    assert {h for h, e in edits.items() if e["pending_edit"] and e["kind"] == "sale"} == set(pending) - {seen_one}
    assert edits[seen_one] == {
        "hash_id": seen_one, "kind": "sale", "updated_at": pending[seen_one], "edit_count": 1, "pending_edit": False
    }  # fmt: skip
    assert all(edits[h]["updated_at"] == version for h, version in pending.items())


def test_the_admin_order_window_answers_only_the_fields_asked_for(http, sandbox):
    params = {**window(), "status": "accepted"}
    whole = http.get("/_sandbox/orders", params=params).json()
    keys = http.get("/_sandbox/orders", params={**params, "fields": "hash_id,updated_at"}).json()
    assert keys == [{"hash_id": o["hash_id"], "updated_at": o["updated_at"]} for o in whole] != []


def test_only_accepted_orders_can_be_edited(http, sandbox):
    pending = sandbox.state.window(DAY, DAY + timedelta(days=3), "sale", "pending")[0].data["hash_id"]
    assert_json_error(http.post(f"/_sandbox/orders/{pending}/edit"), 409, "conflict")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/order/edited", {"params": {"since": "last week"}}),
        ("GET", "/order/edited", {}),
        ("POST", "/order/seen", {"json": {"hash_ids": []}}),
        ("POST", "/order/seen", {"content": b"not json"}),
    ],
)
def test_bad_edited_and_seen_requests_are_400(http, partner, auth, method, path, kwargs):
    assert_json_error(http.request(method, partner + path, headers=auth, **kwargs), 400)


# --- prepare (public) ------------------------------------------------------------------------------------------


def test_prepare_is_public_and_marks_every_item_prepared(http, sandbox, partner):
    hash_id = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", "accepted")[0].data["hash_id"]
    response = http.post(f"{partner}/order/{hash_id}/prepare")  # no Authorization header
    assert response.status_code == 200
    assert all(item["prepared"] for item in response.json()["items"])
    assert hash_id in http.get("/_sandbox/state").json()["prepared"]
    assert_json_error(http.post(f"{partner}/order/no-such-order/prepare"), 404, "order_not_found")


def test_export_template_methods_is_public(http):
    response = http.get("/v2/partner/export/template/methods")
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    assert response.json()


# --- purchase needs --------------------------------------------------------------------------------------------


def need(code: str, **overrides) -> dict:
    return {
        "code": code,
        "reference_code": "SKU-1",
        "start_date": "2025-03-01",
        "end_date": "2025-03-07",
        "quantity": 12.5,
        "quantity_unit": "kg",
        "external_status": "open",
        **overrides,
    }


def test_purchase_needs_upsert_is_idempotent_by_code_and_replaces_fully(http, partner, auth):
    needs = [need(f"N-{n}", quantity=n + 0.25, metadata={"line": n}) for n in range(5)]
    first = http.post(f"{partner}/purchase-needs", json={"purchase_needs": needs}, headers=auth)
    assert first.status_code == 200
    created = first.json()
    assert created["errors"] == []
    assert [n["code"] for n in created["purchase_needs"]] == [f"N-{n}" for n in range(5)]

    again = http.post(f"{partner}/purchase-needs", json={"purchase_needs": needs}, headers=auth).json()
    assert [n["id"] for n in again["purchase_needs"]] == [n["id"] for n in created["purchase_needs"]]
    stored = http.get("/_sandbox/purchase-needs").json()
    assert len(stored) == 5

    replaced = need("N-0", quantity=99)  # no metadata: a full replace drops it
    http.post(f"{partner}/purchase-needs", json={"purchase_needs": [replaced]}, headers=auth).raise_for_status()
    stored = {n["code"]: n for n in http.get("/_sandbox/purchase-needs").json()}
    assert len(stored) == 5
    assert stored["N-0"]["quantity"] == 99
    assert stored["N-0"].get("metadata") is None
    assert stored["N-1"]["metadata"] == {"line": 1}
    assert stored["N-0"]["created_at"] == created["purchase_needs"][0]["created_at"]
    assert stored["N-0"]["updated_at"] > stored["N-0"]["created_at"]


def test_purchase_needs_keep_decimal_numbers_exact(http, partner, auth):
    body = b'{"purchase_needs": [' + encode(need("EXACT")).replace(b"12.5", b"1234567.1234567890123") + b"]}"
    headers = {**auth, "content-type": "application/json"}
    http.post(f"{partner}/purchase-needs", content=body, headers=headers).raise_for_status()
    march = {"start_date": "2025-03-01", "end_date": "2025-03-31"}
    raw = http.get(f"{partner}/purchase-needs", params=march, headers=auth)
    assert b'"quantity":1234567.1234567890123' in raw.content


def test_purchase_needs_report_per_record_errors_with_http_200(http, partner, auth):
    needs = [
        need("OK-1"),
        need("BAD-DATES", start_date="2025-03-07", end_date="2025-03-01"),
        need("BAD-UNIT", quantity_unit="barrels"),
        need("NOT-FOUND", reference_code="INVALID-42"),
        {"reference_code": "SKU-1"},
    ]
    response = http.post(f"{partner}/purchase-needs", json={"purchase_needs": needs}, headers=auth)
    assert response.status_code == 200
    answer = response.json()
    assert [n["code"] for n in answer["purchase_needs"]] == ["OK-1"]
    errors = answer["errors"]
    assert [e.split(":")[0] for e in errors] == ["BAD-DATES", "BAD-UNIT", "NOT-FOUND", "#5"]
    assert "end_date" in errors[0]
    assert "quantity_unit" in errors[1]
    assert "not found" in errors[2]
    assert [n["code"] for n in http.get("/_sandbox/purchase-needs").json()] == ["OK-1"]


def test_purchase_needs_are_listed_by_date_range_and_status(http, partner, auth):
    needs = [
        need("MARCH-1", start_date="2025-03-01", end_date="2025-03-05"),
        need("MARCH-2", start_date="2025-03-10", end_date="2025-03-20", external_status="closed"),
        need("SPANS", start_date="2025-02-25", end_date="2025-03-05"),
        need("APRIL", start_date="2025-04-01", end_date="2025-04-02"),
    ]
    http.post(f"{partner}/purchase-needs", json={"purchase_needs": needs}, headers=auth).raise_for_status()

    def codes(**params) -> list[str]:
        response = http.get(f"{partner}/purchase-needs", params=params, headers=auth)
        assert response.status_code == 200
        return [n["code"] for n in response.json()]

    assert codes(start_date="2025-03-01", end_date="2025-03-31") == ["MARCH-1", "MARCH-2"]
    assert codes(start_date="2025-03-01", end_date="2025-03-31", status="closed") == ["MARCH-2"]
    assert codes(start_date="2025-02-01", end_date="2025-04-30") == ["SPANS", "MARCH-1", "MARCH-2", "APRIL"]
    assert_json_error(
        http.get(f"{partner}/purchase-needs", params={"start_date": "March", "end_date": "2025-03-31"}, headers=auth),
        400,
        "invalid_request",
    )


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"purchase_needs": []}', b'{"purchase_needs": {}}', b"[]", b'{"purchase_needs": [1]x}'],
)
def test_a_malformed_purchase_needs_body_is_400(http, partner, auth, content):
    headers = {**auth, "content-type": "application/json"}
    assert_json_error(http.post(f"{partner}/purchase-needs", content=content, headers=headers), 400)


def test_an_unknown_route_is_a_json_404(http, partner, auth):
    assert_json_error(http.get(f"{partner}/invoices", headers=auth), 404, "not_found")


# --- admin API ---------------------------------------------------------------------------------------------------


def test_admin_info_stats_and_reset(http, sandbox, partner, auth):
    info = http.get("/_sandbox/info").json()
    assert info["workspace_id"] == sandbox.workspace_id
    assert info["seed"] == 42
    assert info["counts"]["orders"] > 0
    http.get(f"{partner}/order", params=window(), headers=auth)
    requests = http.get("/_sandbox/stats").json()["requests"]
    assert requests["GET /{ws}/order 200"] == 1
    assert http.post("/_sandbox/stats/reset").json()["requests"] == {}
    smaller = http.post("/_sandbox/reset", json={"days": 3, "orders_per_day": 5}).json()
    assert smaller["config"]["days"] == 3
    assert http.get("/_sandbox/info").json()["counts"]["orders"] < info["counts"]["orders"]
    assert_json_error(http.post("/_sandbox/reset", json={"colour": "blue"}), 400, "invalid_request")


def test_admin_adds_an_order_with_overrides(http, partner, auth):
    created = http.post(
        "/_sandbox/orders",
        json={"created_at": "2025-02-10T08:30:00Z", "status": "pending", "currency": "USD", "kind": "purchase"},
    )
    assert created.status_code == 201
    order = created.json()
    assert (order["status"], order["currency"]) == ("pending", "USD")
    params = {"from": "2025-02-10T08:30:00Z", "to": "2025-02-10T08:30:01Z", "kind": "purchase"}
    assert [o["hash_id"] for o in http.get(f"{partner}/order", params=params, headers=auth).json()] == [
        order["hash_id"]
    ]
    assert_json_error(http.post("/_sandbox/orders", json={"status": "pending"}), 400, "invalid_request")


def test_the_openapi_document_lists_the_partner_routes(http):
    document = http.get("/openapi.json").json()
    paths = set(document["paths"])
    for route in (
        "/v2/partner/{ws}/login",
        "/v2/partner/{ws}/order",
        "/v2/partner/{ws}/order/external",
        "/v2/partner/{ws}/order/edited",
        "/v2/partner/{ws}/order/seen",
        "/v2/partner/{ws}/order/{hash_id}/prepare",
        "/v2/partner/{ws}/purchase-needs",
        "/v2/partner/export/template/methods",
    ):
        assert route in paths


# --- data and the command line -----------------------------------------------------------------------------------


def _fingerprint(config: SandboxConfig) -> list[bytes]:
    state = State(config)
    return [o.json for o in state.index["sale"][1][:200]] + [o.json for o in state.index["purchase"][1][:50]]


def test_the_data_is_a_function_of_the_seed():
    config = SandboxConfig(seed=7, days=5, orders_per_day=40)
    assert _fingerprint(config) == _fingerprint(config)
    assert _fingerprint(config) != _fingerprint(SandboxConfig(seed=8, days=5, orders_per_day=40))
    assert SandboxConfig(seed=7).api_key == SandboxConfig(seed=7).api_key != SandboxConfig(seed=8).api_key


def test_the_data_has_several_items_prices_currencies_and_unicode():
    orders = [o.data for o in State(SandboxConfig(seed=42, days=10)).index["sale"][1]]
    assert max(len(o["items"]) for o in orders) >= 3
    assert len({o["currency"] for o in orders}) >= 2
    text = json.dumps(orders, ensure_ascii=False, default=str)
    assert any(ord(ch) > 127 for ch in text)


@pytest.mark.integration  # the sandbox in a process of its own
def test_the_command_line_serves_on_the_given_port_and_prints_the_credentials(tmp_path):
    from airflow_provider_consentio.demo.stack import free_port

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "airflow_provider_consentio.sandbox", "--port", str(port), "--seed", "42"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                document = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the sandbox exited"
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.2)
        assert document.status_code == 200
        assert "/v2/partner/{ws}/order" in document.json()["paths"]
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    config = SandboxConfig(seed=42)
    assert str(config.workspace_id) in output
    assert config.api_key in output, "the API key to use is printed"
