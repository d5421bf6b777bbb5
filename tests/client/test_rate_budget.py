"""The workspace's request budget in one process: every thread and both clients draw from it; a 429 pauses every
sharer; the hook builds it from the connection. Against the in-process sandbox, counted by the sandbox itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_consentio.client import (
    AsyncConsentioClient,
    ConsentioClient,
    ConsentioSettings,
    RateBudget,
    RateLimit,
    RetryPolicy,
    shared_budget,
)
from airflow_provider_consentio.client.rate_budget import EXTRA_HINT
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioTransientError
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.server import SandboxServer

RATE, BURST = 20.0, 10
METHODS = "GET /export/template/methods"


def sent(server: SandboxServer, status: int) -> int:
    return server.sandbox.stats.requests[f"{METHODS} {status}"]


def client_for(server: SandboxServer, budget: RateBudget | None, **settings) -> ConsentioClient:
    return ConsentioClient(
        ConsentioSettings(workspace_id=server.workspace_id, base_url=server.base_url, **settings), rate_budget=budget
    )


@pytest.fixture
def limited_sandbox():
    # The sandbox's bucket a little deeper than the client's burst: requests reach it a little later or earlier
    # than the client admitted them (threads, loopback), never faster on average.
    with SandboxServer(SandboxConfig(rate_limit=RATE, rate_burst=BURST + 2, days=1)) as server:
        yield server


def test_threads_of_one_process_share_the_budget_and_get_no_429(limited_sandbox):
    budget = RateBudget(RateLimit(RATE, BURST), "test:threads")
    threads, each = 4, 15
    started = time.monotonic()

    def work() -> None:
        with client_for(limited_sandbox, budget) as client:
            for _ in range(each):
                client.get_export_template_methods()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started

    assert sent(limited_sandbox, 200) == threads * each
    assert sent(limited_sandbox, 429) == 0
    assert threads * each <= RATE * elapsed + BURST


def test_without_the_budget_the_same_threads_are_refused(limited_sandbox):
    """The counterpart: the sandbox does limit, so the test above shows the budget at work."""
    policy = RetryPolicy(max_retries=20, initial_backoff=0.05, max_backoff=0.2)

    def work() -> None:
        with client_for(limited_sandbox, None, retry=policy) as client:
            for _ in range(15):
                client.get_export_template_methods()

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sent(limited_sandbox, 429) > 0


def test_the_async_client_draws_from_the_same_budget(limited_sandbox):
    budget = RateBudget(RateLimit(RATE, BURST), "test:async")
    settings = ConsentioSettings(
        workspace_id=limited_sandbox.workspace_id, base_url=limited_sandbox.base_url, api_key=limited_sandbox.api_key
    )

    async def run() -> None:
        async with AsyncConsentioClient(settings, rate_budget=budget) as client:
            await asyncio.gather(*(client.get_raw_edited_orders(_since()) for _ in range(5)))

    def sync_side() -> None:
        with client_for(limited_sandbox, budget) as client:
            for _ in range(20):
                client.get_export_template_methods()

    thread = threading.Thread(target=sync_side)
    thread.start()
    asyncio.run(run())
    thread.join()
    assert sum(count for key, count in limited_sandbox.sandbox.stats.requests.items() if key.endswith(" 429")) == 0


def test_a_429_pauses_every_sharer(limited_sandbox):
    limited_sandbox.sandbox.reset(SandboxConfig(days=1))
    from airflow_provider_consentio.sandbox.faults import FaultPlan

    limited_sandbox.sandbox.faults = FaultPlan.parse(
        {"rules": [{"kind": "429", "every": 1, "retry_after": 3}], "paths": "prepare$"}
    )
    budget = RateBudget(RateLimit(1000, 100), "test:pause")
    refused = client_for(limited_sandbox, budget, retry=RetryPolicy(max_retries=0))
    with refused, pytest.raises(ConsentioTransientError):
        refused.prepare_order("no-such-order")

    def neighbour() -> None:
        with client_for(limited_sandbox, budget) as client:
            client.get_export_template_methods()

    other = threading.Thread(target=neighbour)
    other.start()
    time.sleep(0.5)
    assert sent(limited_sandbox, 200) == 0  # the other sharer waits out the Retry-After its neighbour got
    other.join()
    assert sent(limited_sandbox, 200) == 1


def test_one_budget_per_workspace_and_limit_in_a_process():
    limit = RateLimit(5, 5)
    assert shared_budget("https://a", 1, limit) is shared_budget("https://a", 1, RateLimit(5, 5))
    assert shared_budget("https://a", 1, limit) is not shared_budget("https://a", 2, limit)


def test_a_rate_limit_without_the_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrate_limiter", None)
    with pytest.raises(ConsentioConfigError, match=r"rate-limit\]"):
        RateBudget(RateLimit(5, 5), "test:missing")
    assert "[rate-limit]" in EXTRA_HINT


@pytest.mark.parametrize(
    "limit",
    [
        {"per_second": 0, "burst": 1},
        {"per_second": 1, "burst": 0},
        {"per_second": 1, "burst": 1, "store_url": "http://x"},
    ],
)
def test_bad_limits_are_refused(limit):
    with pytest.raises(ConsentioConfigError):
        RateLimit(**limit)


def test_the_hook_builds_the_budget_from_the_connection(monkeypatch):
    from airflow_provider_consentio.hooks.consentio import ConsentioHook

    base = {"conn_type": "consentio", "login": "7", "password": "p-12345", "host": "http://127.0.0.1:1"}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(base))
    assert ConsentioHook().get_rate_budget() is None  # off by default: nothing changes
    assert ConsentioHook().client.rate_budget is None

    limited = {**base, "extra": {"rate_limit": 20, "rate_burst": 40, "rate_store_conn_id": "budget_redis"}}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(limited))
    store = {"conn_type": "redis", "host": "127.0.0.1", "port": 1, "password": "s3cret", "extra": {"db": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_BUDGET_REDIS", json.dumps(store))
    budget = ConsentioHook().get_rate_budget()
    assert budget is not None and budget is ConsentioHook().client.rate_budget
    assert (budget.limit.per_second, budget.limit.burst) == (20, 40)
    assert budget.limit.store_url == "redis://:s3cret@127.0.0.1:1/2"
    assert "s3cret" not in repr(budget)

    async_client = asyncio.run(ConsentioHook().get_async_client())
    assert async_client.rate_budget is budget
    asyncio.run(async_client.aclose())

    monkeypatch.setenv("AIRFLOW_CONN_BUDGET_REDIS", json.dumps({"conn_type": "postgres", "host": "h"}))
    with pytest.raises(ConsentioConfigError, match="only Redis"):
        ConsentioHook().get_rate_budget()


def _since():
    from datetime import UTC, datetime

    return datetime(2025, 1, 1, tzinfo=UTC)


def test_the_client_needs_neither_pyrate_limiter_nor_redis_when_no_limit_is_set():
    """The core install stays lean: without the rate-limit extra, a client without a budget works as before."""
    code = (
        "import sys; sys.modules['pyrate_limiter'] = None; sys.modules['redis'] = None\n"
        "from airflow_provider_consentio.client import ConsentioClient, ConsentioSettings\n"
        "ConsentioClient(ConsentioSettings(workspace_id=1)).close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
