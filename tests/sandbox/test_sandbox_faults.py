"""The sandbox's fault injection over loopback HTTP: each kind, the schedules, the filters, what is never faulted."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

DAY = datetime(2025, 2, 10, tzinfo=UTC)
WINDOW = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat(), "kind": "sale"}
PUBLIC = "/v2/partner/export/template/methods"


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def auth(http, sandbox):
    response = http.post(f"/v2/partner/{sandbox.workspace_id}/login", json={"api_key": sandbox.api_key})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def orders_path(sandbox):
    return f"/v2/partner/{sandbox.workspace_id}/order"


def set_faults(http, *rules, **plan):
    response = http.put("/_sandbox/faults", json={"rules": list(rules), **plan})
    assert response.status_code == 200, response.text
    return response.json()


def statuses(http, count: int, path: str = PUBLIC) -> list[int]:
    return [http.get(path).status_code for _ in range(count)]


def test_429_carries_retry_after(http):
    set_faults(http, {"kind": "429", "every": 1, "retry_after": 2.5})
    response = http.get(PUBLIC)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2.5"
    assert response.json()["error"] == "rate_limited"


@pytest.mark.parametrize(("kind", "code"), [("500", "internal_error"), ("503", "unavailable")])
def test_5xx_answers_a_json_error(http, kind, code):
    set_faults(http, {"kind": kind, "every": 1})
    response = http.get(PUBLIC)
    assert response.status_code == int(kind)
    assert response.json()["error"] == code


def test_502_answers_an_html_page_like_a_proxy(http):
    set_faults(http, {"kind": "502", "every": 1})
    response = http.get(PUBLIC)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert b"Bad Gateway" in response.content


def test_slow_answers_late_but_correctly(http):
    set_faults(http, {"kind": "slow", "every": 1, "delay": 0.6})
    started = time.monotonic()
    response = http.get(PUBLIC)
    assert time.monotonic() - started >= 0.55
    assert response.status_code == 200
    assert response.json()


def test_drop_cuts_the_connection_after_applying_a_write(http, sandbox, auth):
    hash_id = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", "accepted")[0].data["hash_id"]
    set_faults(http, {"kind": "drop", "every": 1}, methods=["PUT"])
    body = {"orders": [{"hash_id": hash_id, "external_id": "ERP-DROP", "external_status": "imported"}]}
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.put(f"/v2/partner/{sandbox.workspace_id}/order/external", json=body, headers=auth)
    assert http.get(f"/_sandbox/orders/{hash_id}").json()["admin"]["external_id"] == "ERP-DROP"
    assert http.get("/_sandbox/stats").json()["faults"] == {"drop": 1}


def test_a_503_after_applying_answers_the_error_but_the_write_is_done(http, sandbox, auth):
    hash_id = sandbox.state.window(DAY, DAY + timedelta(days=1), "sale", "accepted")[0].data["hash_id"]
    set_faults(http, {"kind": "503", "every": 1, "after_applying": True}, methods=["PUT"])
    body = {"orders": [{"hash_id": hash_id, "external_id": "ERP-503", "external_status": "imported"}]}
    response = http.put(f"/v2/partner/{sandbox.workspace_id}/order/external", json=body, headers=auth)
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")
    assert http.get(f"/_sandbox/orders/{hash_id}").json()["admin"]["external_id"] == "ERP-503"


def test_a_listing_lag_shows_a_new_order_only_after_the_delay(http, sandbox, auth, orders_path):
    set_faults(http, listing_lag=0.5)
    now = datetime.now(UTC)
    added = http.post("/_sandbox/orders", json={"created_at": now.isoformat(), "kind": "sale"})
    assert added.status_code in (200, 201), added.text
    hash_id = added.json()["hash_id"]
    window = {"from": (now - timedelta(minutes=1)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}

    def listed() -> list[str]:
        answer = http.get(orders_path, params={**window, "kind": "sale"}, headers=auth)
        return [order["hash_id"] for order in answer.json()]

    assert listed() == []  # at once: not yet
    assert http.get(f"/_sandbox/orders/{hash_id}").status_code == 200  # it exists all the same
    deadline = time.monotonic() + 5
    while hash_id not in listed() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls the state it waits for, the listing showing the order
    assert listed() == [hash_id]
    assert sandbox.state.orders[hash_id].added_at <= time.monotonic() - 0.5


def test_echo_token_quotes_the_bearer_token_in_per_record_errors(http, sandbox, auth):
    set_faults(http, {"kind": "echo_token", "every": 1})
    body = {"orders": [{"hash_id": "no-such-order", "external_id": "ERP-X", "external_status": "imported"}]}
    response = http.put(f"/v2/partner/{sandbox.workspace_id}/order/external", json=body, headers=auth)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error.startswith("no-such-order: ") and error.endswith(f"(request authorised by {auth['Authorization']})")
    assert int(response.headers["content-length"]) == len(response.content)


def test_expire_token_revokes_the_token_of_the_request(http, auth, orders_path):
    set_faults(http, {"kind": "expire_token", "every": 2})
    assert http.get(orders_path, params=WINDOW, headers=auth).status_code == 200
    second = http.get(orders_path, params=WINDOW, headers=auth)
    assert second.status_code == 401
    assert second.json()["error"] == "token_expired"
    http.delete("/_sandbox/faults")
    assert http.get(orders_path, params=WINDOW, headers=auth).status_code == 401, "the token stays revoked"


@pytest.mark.parametrize(
    ("variant", "check"),
    [
        ("html", lambda r: r.headers["content-type"].startswith("text/html")),
        ("truncated", lambda r: r.content.startswith(b"[{") and not r.content.endswith(b"]")),
        ("empty", lambda r: r.content == b""),
        ("wrong_shape", lambda r: r.json() == {"data": "not what this endpoint returns"}),
    ],
)
def test_garbage_answers_200_with_a_body_that_is_not_the_endpoints(http, variant, check):
    set_faults(http, {"kind": "garbage", "every": 1, "variant": variant})
    response = http.get(PUBLIC)
    assert response.status_code == 200
    assert check(response)


def test_every_nth_fires_exactly_on_multiples_of_n(http):
    set_faults(http, {"kind": "503", "every": 3})
    assert statuses(http, 9) == [200, 200, 503] * 3


def test_a_burst_answers_the_following_requests_the_same_way(http):
    set_faults(http, {"kind": "500", "every": 4, "burst": 3})
    assert statuses(http, 10) == [200, 200, 200, 500, 500, 500, 200, 500, 500, 500]
    assert http.get("/_sandbox/stats").json()["faults"] == {"500": 6}


def test_a_probability_schedule_is_reproducible_under_its_seed(http):
    plan = {"kind": "503", "probability": 0.3}
    set_faults(http, plan, seed=11)
    first = statuses(http, 60)
    set_faults(http, plan, seed=11)
    assert statuses(http, 60) == first
    assert 5 <= first.count(503) <= 35
    set_faults(http, plan, seed=12)
    assert statuses(http, 60) != first


def test_faults_can_target_paths_and_methods(http, sandbox, auth, orders_path):
    set_faults(http, {"kind": "500", "every": 1}, paths=r"/order$", methods=["GET"])
    assert http.get(PUBLIC).status_code == 200
    assert http.get(orders_path, params=WINDOW, headers=auth).status_code == 500
    seen = http.post(f"{orders_path}/seen", json={"hash_ids": ["x"]}, headers=auth)
    assert seen.status_code == 200


def test_the_admin_api_is_never_faulted(http):
    set_faults(http, {"kind": "500", "every": 1}, {"kind": "drop", "every": 1})
    for _ in range(5):
        assert http.get("/_sandbox/state").status_code == 200
        assert http.get("/_sandbox/faults").status_code == 200
    assert http.get("/_sandbox/stats").json()["faults"] == {}


def test_clearing_the_plan_stops_the_faults(http):
    set_faults(http, {"kind": "503", "every": 1})
    assert http.get(PUBLIC).status_code == 503
    assert http.delete("/_sandbox/faults").json()["rules"] == []
    assert statuses(http, 3) == [200, 200, 200]


def test_the_plan_reads_back_as_set(http):
    described = set_faults(http, {"kind": "429", "every": 5, "retry_after": 0.5}, seed=3, paths="/order")
    assert http.get("/_sandbox/faults").json() == described
    assert described["seed"] == 3
    assert described["rules"][0]["kind"] == "429"
    assert described["rules"][0]["every"] == 5


@pytest.mark.parametrize(
    "plan",
    [
        {"rules": [{"kind": "teapot", "every": 1}]},
        {"rules": [{"kind": "500"}]},
        {"rules": [{"kind": "500", "every": 1, "probability": 0.5}]},
        {"rules": [{"kind": "500", "every": 0}]},
        {"rules": [{"kind": "500", "probability": 1.5}]},
        {"rules": [{"kind": "500", "every": 2, "burst": 0}]},
        {"rules": [{"kind": "garbage", "every": 1, "variant": "poetry"}]},
        {"rules": [{"kind": "500", "every": 1, "colour": "red"}]},
        {"rules": [{"kind": "drop", "every": 1, "after_applying": True}]},
        {"rules": [{"kind": "503", "every": 1, "after_applying": "yes"}]},
        {"rules": [], "listing_lag": -1},
        {"rules": [], "listing_lag": "2s"},
        {"rules": [], "paths": "("},
        {"rulez": []},
        ["not", "an", "object"],
    ],
)
def test_an_invalid_plan_is_rejected_with_a_message(http, plan):
    response = http.put("/_sandbox/faults", json=plan)
    assert response.status_code == 400
    assert response.json()["message"].startswith("bad fault plan")
    assert http.get("/_sandbox/faults").json()["rules"] == [], "a rejected plan changes nothing"
