"""ConsentioOrdersTrigger on its own, as the triggerer runs it: real asyncio against the sandbox over loopback HTTP."""

from __future__ import annotations

import asyncio
import importlib
import json

import httpx

from airflow_provider_consentio.triggers.orders import ConsentioOrdersTrigger

MARCH = {"start": "2025-03-01T00:00:00+00:00", "end": "2025-03-03T00:00:00+00:00"}
# A guard so a broken trigger fails the test instead of hanging it; no assertion depends on timing.
GUARD_SECONDS = 120


def trigger(**options) -> ConsentioOrdersTrigger:
    return ConsentioOrdersTrigger(
        **{"consentio_conn_id": "consentio_default", "watch": "new_orders", "poll_interval": 0.05, **options}
    )


async def first_event(subject: ConsentioOrdersTrigger) -> dict:
    async for event in subject.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def set_faults(sandbox, *rules, **plan) -> None:
    response = httpx.put(f"{sandbox.base_url}/_sandbox/faults", json={"rules": list(rules), **plan}, timeout=10)
    response.raise_for_status()


def test_serialize_round_trip_keeps_every_option():
    options = {
        "consentio_conn_id": "consentio_other",
        "watch": "edited_orders",
        "start": "2025-03-01T00:00:00+00:00",
        "end": "2025-03-02T00:00:00+00:00",
        "since": "2025-02-22T00:00:00+00:00",
        "kind": "purchase",
        "status": "pending",
        "min_count": 7,
        "poll_interval": 12.5,
        "max_retries": 2,
        "request_timeout": 3.5,
    }
    classpath, kwargs = ConsentioOrdersTrigger(**options).serialize()
    assert kwargs == options  # every constructor argument, none lost
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-safe, as the triggerer stores it
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_fires_with_the_count_once_enough_orders_exist(consentio_connection, sandbox):
    event = asyncio.run(asyncio.wait_for(first_event(trigger(**MARCH)), GUARD_SECONDS))
    accepted = httpx.get(
        f"{sandbox.base_url}/_sandbox/orders",
        params={"from": MARCH["start"], "to": MARCH["end"], "kind": "sale", "status": "accepted"},
        timeout=30,
    ).json()
    assert event == {"status": "success", "count": len(accepted), "watch": "new_orders"}


def test_transient_errors_keep_it_polling(consentio_connection, sandbox):
    set_faults(sandbox, {"kind": "503", "every": 1}, paths=r"/order$")
    outages = 3

    async def clear_faults_after_outages() -> None:
        async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as admin:
            while (await admin.get("/_sandbox/stats")).json()["faults"].get("503", 0) < outages:
                await asyncio.sleep(0.02)
            (await admin.put("/_sandbox/faults", json={"rules": []})).raise_for_status()

    async def scenario() -> dict:
        # max_retries=0: every 503 reaches the trigger itself, which must poll again rather than fail.
        watcher = asyncio.create_task(first_event(trigger(max_retries=0, **MARCH)))
        await clear_faults_after_outages()
        return await watcher

    event = asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))
    assert event["status"] == "success" and event["count"] > 0
    assert httpx.get(f"{sandbox.base_url}/_sandbox/stats", timeout=10).json()["faults"]["503"] >= outages


def test_a_permanent_error_yields_an_error_event(consentio_connection, sandbox, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps({**consentio_connection, "password": "not-the-key-0123456789"})
    )
    event = asyncio.run(asyncio.wait_for(first_event(trigger(**MARCH)), GUARD_SECONDS))
    assert event["status"] == "error"
    assert "Consentio rejected the API key for workspace" in event["message"] and "HTTP 401" in event["message"]


def test_the_request_timeout_reaches_the_client(consentio_connection, sandbox):
    # Answers slowed to 3 s against a 0.5 s request timeout: each poll times out (a transient error) until the
    # slowdown is lifted. Had the trigger kept the connection's 10 s timeout, its first poll would have succeeded.
    set_faults(sandbox, {"kind": "slow", "delay": 3, "every": 1}, paths=r"/order$")
    slowed = 2

    async def lift_slowdown_after_timeouts() -> None:
        async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as admin:
            while (await admin.get("/_sandbox/stats")).json()["faults"].get("slow", 0) < slowed:
                await asyncio.sleep(0.02)
            (await admin.put("/_sandbox/faults", json={"rules": []})).raise_for_status()

    async def scenario() -> dict:
        watcher = asyncio.create_task(first_event(trigger(request_timeout=0.5, max_retries=0, **MARCH)))
        lifter = asyncio.create_task(lift_slowdown_after_timeouts())
        done, _ = await asyncio.wait({watcher, lifter}, return_when=asyncio.FIRST_COMPLETED)
        assert lifter in done, f"the trigger answered before its requests timed out: {watcher.result()}"
        return await watcher

    event = asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))
    assert event["status"] == "success"
