"""The budget shared through a real Redis (redis-server on 127.0.0.1, its own process group, stopped by the test):
two processes stay within one limit; a Redis restart mid-run falls back, fails nothing and keeps the limit; a 429
pauses a sharer in another process."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_consentio.client import ConsentioClient, ConsentioSettings, RateBudget, RateLimit
from airflow_provider_consentio.client import rate_budget as rate_budget_module
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.server import SandboxServer
from tests.harness.services import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

RATE, BURST = 20.0, 10
METHODS = "GET /export/template/methods"
REPO = Path(__file__).resolve().parents[2]

SENDER = """
import sys
from airflow_provider_consentio.client import ConsentioClient, ConsentioSettings, RateBudget, RateLimit
base_url, workspace, store, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
budget = RateBudget(RateLimit({rate}, {burst}, store), "test:two-processes")
with ConsentioClient(ConsentioSettings(workspace_id=workspace, base_url=base_url), rate_budget=budget) as client:
    for _ in range(count):
        client.get_export_template_methods()
assert not budget.store_down
"""


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(tmp_path / "logs") as server:
        yield server


@pytest.fixture
def limited_sandbox():
    # A little deeper than the client's burst: arrival jitter between processes, never a faster average.
    with SandboxServer(SandboxConfig(rate_limit=RATE, rate_burst=BURST + 2, days=1)) as server:
        yield server


def sent(server: SandboxServer, status: int) -> int:
    return server.sandbox.stats.requests[f"{METHODS} {status}"]


def test_two_processes_sharing_redis_stay_within_one_limit(redis_server, limited_sandbox):
    each = 30
    script = SENDER.format(rate=RATE, burst=BURST)
    args = [limited_sandbox.base_url, str(limited_sandbox.workspace_id), redis_server.url, str(each)]
    started = time.monotonic()
    senders = [subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO) for _ in range(2)]
    assert [sender.wait(120) for sender in senders] == [0, 0]
    elapsed = time.monotonic() - started

    assert sent(limited_sandbox, 200) == 2 * each
    assert sent(limited_sandbox, 429) == 0
    # Each process alone could send RATE/s: together they would take half the time if they did not share.
    assert 2 * each <= RATE * elapsed + BURST


def test_a_redis_restart_mid_run_falls_back_fails_nothing_and_keeps_the_limit(
    redis_server, limited_sandbox, monkeypatch, caplog
):
    monkeypatch.setattr(rate_budget_module, "STORE_RETRY_AFTER", 0.5)
    budget = RateBudget(RateLimit(RATE, BURST, redis_server.url), "test:restart")
    total, failures = 90, []
    settings = ConsentioSettings(workspace_id=limited_sandbox.workspace_id, base_url=limited_sandbox.base_url)

    def work(count: int) -> None:
        try:
            with ConsentioClient(settings, rate_budget=budget) as client:
                for _ in range(count):
                    client.get_export_template_methods()
        except Exception as exc:
            failures.append(exc)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_consentio.client.rate_budget"):
        workers = [threading.Thread(target=work, args=(total // 3,)) for _ in range(3)]
        for worker in workers:
            worker.start()
        while sent(limited_sandbox, 200) < total // 3:
            time.sleep(0.05)
        redis_server.stop()
        while sent(limited_sandbox, 200) < 2 * total // 3:
            time.sleep(0.05)
        redis_server.start()
        for worker in workers:
            worker.join()
    elapsed = time.monotonic() - started

    assert failures == []
    assert sent(limited_sandbox, 200) == total
    assert sent(limited_sandbox, 429) == 0
    assert total <= RATE * elapsed + BURST
    messages = [record.getMessage() for record in caplog.records]
    assert any("store" in message and "failed" in message for message in messages)
    assert any("answers again" in message for message in messages)
    assert not budget.store_down


def test_a_429_pauses_a_sharer_in_another_process(redis_server):
    limit = RateLimit(1000, 100, redis_server.url)
    # Two budgets on one key are two processes as far as the store can tell.
    here, there = RateBudget(limit, "test:pause"), RateBudget(limit, "test:pause")
    assert there.try_acquire() == 0
    here.pause(30)
    assert there.try_acquire() > 20


def test_a_store_restarted_empty_under_sharers_that_never_saw_it_down_counts_as_full(redis_server):
    import redis

    limit = RateLimit(RATE, BURST, redis_server.url)
    here, there = RateBudget(limit, "test:forgotten"), RateBudget(limit, "test:forgotten")
    assert here.try_acquire() == 0 and there.try_acquire() == 0
    redis.Redis.from_url(redis_server.url).flushall()  # what a restart between two draws looks like from here
    # A fresh burst on top of what was just sent would be refused by the API: the forgotten bucket counts as full.
    assert here.try_acquire() > 0
    assert there.try_acquire() > 0
    assert not here.store_down


def test_a_sharer_that_finds_the_store_down_waits_out_a_restart_and_sends_no_burst_alone():
    from airflow_provider_consentio.demo.stack import free_port

    budget = RateBudget(RateLimit(1000, 100, f"redis://127.0.0.1:{free_port()}"), "test:down")
    # Nothing listens there: the first request waits for the store's first retry instead of a burst of its own
    # (counted from before the store was asked, which may take up to its timeout). The wait is computed, not timed:
    # only its bounds are asserted, as a loaded machine may pass any time between asking and answering.
    first_retry, timeout = rate_budget_module.STORE_FIRST_RETRY, rate_budget_module.STORE_TIMEOUT
    assert 0 < budget.try_acquire() <= first_retry + timeout
    assert budget.store_down


def test_sharers_in_several_processes_keep_the_limit_through_a_redis_restart(
    redis_server, limited_sandbox, monkeypatch
):
    # A restart over within the first retry's pause costs nothing; a loaded machine may take longer than the
    # default's quarter second to start redis-server, and a sharer on its own meanwhile is the fallback, not this.
    monkeypatch.setattr(rate_budget_module, "STORE_FIRST_RETRY", 2.0)
    # Budgets on one key are processes as far as the store can tell; threads only keep the test quick.
    settings = ConsentioSettings(workspace_id=limited_sandbox.workspace_id, base_url=limited_sandbox.base_url)
    each, failures = 30, []

    def work() -> None:
        budget = RateBudget(RateLimit(RATE, BURST, redis_server.url), "test:restart-many")
        try:
            with ConsentioClient(settings, rate_budget=budget) as client:
                for _ in range(each):
                    client.get_export_template_methods()
        except Exception as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    while sent(limited_sandbox, 200) < each:
        time.sleep(0.02)
    redis_server.stop()
    redis_server.start()
    for worker in workers:
        worker.join()

    assert failures == []
    assert sent(limited_sandbox, 200) == 3 * each
    assert sent(limited_sandbox, 429) == 0
