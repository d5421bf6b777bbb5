"""The client's observer (client/observer.py): what the sync and async twins report of each attempt, retry and wait,
against the in-process sandbox and its fault injection. No Airflow here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.client import AsyncConsentioClient, ClientObserver, TokenCache
from airflow_provider_consentio.client.observer import route
from airflow_provider_consentio.resources import ORDERS

DAY = (datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC))


class Recorder(ClientObserver):
    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.retries: list[tuple[str, str, str]] = []
        self.waits: list[tuple[float, str]] = []

    def on_request(self, *args: Any) -> None:
        self.requests.append(args)

    def on_retry(self, endpoint: str, method: str, reason: str) -> None:
        self.retries.append((endpoint, method, reason))

    def on_wait(self, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))


def set_faults(sandbox, *rules: dict[str, Any]) -> None:
    plan = {"paths": "/order", "rules": list(rules)}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()


def partner_requests(sandbox) -> int:
    return sum(sandbox.sandbox.stats.requests.values())


def test_every_attempt_retry_and_wait_is_reported(sandbox, make_client):
    recorder = Recorder()
    client = make_client()
    client.observer = recorder
    set_faults(sandbox, {"kind": "429", "every": 2, "retry_after": 0.01}, {"kind": "503", "every": 3})
    records = [client.read_raw(ORDERS, *DAY, kind="sale") for _ in range(4)][-1]

    assert len(recorder.requests) == partner_requests(sandbox)
    statuses = [status for _, _, status, *_ in recorder.requests]
    assert statuses[0] == 200  # the login (not under /order: no fault)
    assert statuses[-1] == 200 and 429 in statuses and 503 in statuses
    for endpoint, method, _, seconds, bytes_in, _ in recorder.requests:
        assert method in ("GET", "POST") and "{" not in endpoint and str(sandbox.workspace_id) not in endpoint
        assert seconds > 0 and bytes_in > 0
    login = recorder.requests[0]
    assert login[:2] == ("/login", "POST") and login[5] > 0  # the login body was sent
    orders = recorder.requests[-1]
    assert orders[:2] == ("/order", "GET") and orders[5] == 0 and orders[4] >= len(records)

    failed = [str(status) for status in statuses if status != 200]
    assert [reason for _, _, reason in recorder.retries] == failed
    assert [reason for _, reason in recorder.waits] == ["retry_after" if s == "429" else "backoff" for s in failed]
    assert all(seconds > 0 for seconds, _ in recorder.waits)


def test_an_attempt_without_an_answer_is_reported_as_such(sandbox, make_client):
    recorder = Recorder()
    client = make_client(base_url="http://127.0.0.1:9", retry=client_retries(1))
    client.observer = recorder
    with pytest.raises(Exception, match="login"):
        client.login()
    assert [request[2] for request in recorder.requests] == [None, None]
    assert [reason for _, _, reason in recorder.retries] == ["error"]


def client_retries(count: int):
    from airflow_provider_consentio.client import RetryPolicy

    return RetryPolicy(max_retries=count, initial_backoff=0.01, max_backoff=0.01)


def test_the_async_twin_reports_the_same(sandbox, make_settings):
    recorder = Recorder()
    set_faults(sandbox, {"kind": "429", "every": 2, "retry_after": 0.01})

    async def read() -> None:
        async with AsyncConsentioClient(make_settings(), token_cache=TokenCache(), observer=recorder) as client:
            for _ in range(2):
                await client.read_raw(ORDERS, *DAY, kind="sale")

    asyncio.run(read())
    assert len(recorder.requests) == partner_requests(sandbox)
    assert [request[2] for request in recorder.requests] == [200, 200, 429, 200]
    assert recorder.retries == [("/order", "GET", "429")]
    assert [reason for _, reason in recorder.waits] == ["retry_after"]


def test_no_observer_is_a_quiet_one(make_client):
    assert type(make_client().observer) is ClientObserver


def test_routes_name_no_workspace_and_no_record():
    assert route("/42/order", 42) == "/order"
    assert route("/42/order/abc123/prepare", 42) == "/order/*/prepare"
    assert route("/export/template/methods", 42) == "/export/template/methods"
    assert route("/420/order", 42) == "/420/order"


def test_the_time_waited_for_the_rate_budget_is_reported(sandbox, make_client):
    pytest.importorskip("pyrate_limiter")
    from airflow_provider_consentio.client import RateBudget, RateLimit

    recorder = Recorder()
    client = make_client()
    client.rate_budget = RateBudget(RateLimit(20, 1), "test:observer")
    client.observer = recorder
    for _ in range(3):
        client.read_raw(ORDERS, *DAY, kind="sale")
    budget_waits = [seconds for seconds, reason in recorder.waits if reason == "rate_budget"]
    assert len(budget_waits) >= 2 and all(0 < seconds < 1 for seconds in budget_waits)
