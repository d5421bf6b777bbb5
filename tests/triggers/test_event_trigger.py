"""ConsentioOrdersEventTrigger as the triggerer runs it: real asyncio against the sandbox over loopback HTTP.

The asset state store is Airflow's (the end-to-end test, tests/e2e/test_event_driven.py, runs it under a real
triggerer); here a dict with its two async methods stands in for it, to restart a trigger on a stored watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from airflow_provider_consentio.triggers.events import ConsentioOrdersEventTrigger

# A guard so a broken trigger fails the test instead of hanging it; no assertion depends on it.
GUARD_SECONDS = 120
POLL = 0.2


class DictStateStore:
    """The two methods of Airflow's asset state store accessor the trigger uses."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as the real one does


def watcher(store: DictStateStore | None = None, **options: Any) -> ConsentioOrdersEventTrigger:
    trigger = ConsentioOrdersEventTrigger(poll_interval=POLL, settle=0, max_retries=0, **options)
    trigger.asset_state_store = store
    return trigger


def add_orders(sandbox, count: int, status: str = "accepted") -> list[int]:
    now = datetime.now(UTC).isoformat()
    return [
        httpx.post(f"{sandbox.base_url}/_sandbox/orders", json={"created_at": now, "status": status}, timeout=10)
        .raise_for_status()
        .json()["id"]
        for _ in range(count)
    ]


def order_polls(sandbox) -> int:
    requests = httpx.get(f"{sandbox.base_url}/_sandbox/stats", timeout=10).json()["requests"]
    return sum(count for path, count in requests.items() if "order" in path and "edited" not in path)


class Running:
    """A trigger's run() driven in the background, as the triggerer drives it; its events queue up."""

    def __init__(self, trigger: ConsentioOrdersEventTrigger):
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._drive(trigger))

    async def _drive(self, trigger: ConsentioOrdersEventTrigger) -> None:
        async for event in trigger.run():
            await self.events.put(event.payload)

    async def next(self) -> dict[str, Any]:
        return await self.events.get()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def polls_pass(sandbox, polls: int) -> None:
    """Until the trigger has polled ``polls`` more times."""
    target = order_polls(sandbox) + polls
    while order_polls(sandbox) < target:
        await asyncio.sleep(0.05)


def test_serialize_round_trip_keeps_every_option():
    options = {
        "consentio_conn_id": "consentio_other",
        "watch": "edited_orders",
        "kind": "purchase",
        "status": "pending",
        "poll_interval": 12.5,
        "settle": 3.0,
        "max_backoff": 100.0,
        "start_from": "2025-03-01T00:00:00+00:00",
        "max_retries": 2,
        "request_timeout": 3.5,
    }
    classpath, kwargs = ConsentioOrdersEventTrigger(**options).serialize()
    assert kwargs == options
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (classpath, kwargs)


def test_it_refuses_to_poll_without_sleeping():
    for interval in (0, -1):
        try:
            ConsentioOrdersEventTrigger(poll_interval=interval)
        except ValueError as exc:
            assert "must sleep between polls" in str(exc)
        else:
            raise AssertionError(f"poll_interval={interval} was accepted")


def test_each_batch_fires_once_with_its_window_and_nothing_fires_without_new_orders(consentio_connection, sandbox):
    store = DictStateStore()

    async def scenario() -> list[dict[str, Any]]:
        running = Running(watcher(store))
        await polls_pass(sandbox, 1)  # the watermark is set: orders from now on are new
        payloads = []
        for batch in (3, 2):
            added = add_orders(sandbox, batch)
            add_orders(sandbox, 1, status="pending")  # not accepted: never announced
            payload = await running.next()
            assert payload["order_ids"] == sorted(added) and payload["count"] == batch
            payloads.append(payload)
        # Nothing new: several polls pass and no event queues up.
        await polls_pass(sandbox, 4)
        assert running.events.empty(), f"fired without new orders: {running.events.get_nowait()}"
        await running.stop()
        return payloads

    started = time.monotonic()
    first, second = asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))
    assert first["end"] == second["start"]  # consecutive windows: nothing between them is lost
    [watermark] = store.values.values()
    assert watermark["until"] >= second["end"]
    # At least 5 polls happened, with a sleep of POLL between each two (a lower bound: load only adds to it).
    assert time.monotonic() - started >= 4 * POLL


def test_a_restarted_trigger_resumes_from_the_stored_watermark(consentio_connection, sandbox):
    store = DictStateStore()

    async def scenario() -> tuple[list[int], dict[str, Any]]:
        first = Running(watcher(store))
        await polls_pass(sandbox, 1)
        announced = add_orders(sandbox, 2)
        assert (await first.next())["order_ids"] == sorted(announced)
        await first.stop()  # the triggerer restarts; meanwhile more orders arrive
        missed_while_down = add_orders(sandbox, 3)
        second = Running(watcher(store))
        payload = await second.next()
        await second.stop()
        return missed_while_down, payload

    missed, payload = asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))
    assert payload["order_ids"] == sorted(missed)  # the earlier two are not announced again


def test_errors_back_off_and_never_fire(consentio_connection, sandbox):
    httpx.put(
        f"{sandbox.base_url}/_sandbox/faults", json={"paths": r"/order$", "rules": [{"kind": "503", "every": 1}]}
    ).raise_for_status()

    async def scenario() -> dict[str, Any]:
        running = Running(watcher(DictStateStore(), max_backoff=1.0))
        async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as admin:
            while (await admin.get("/_sandbox/stats")).json()["faults"].get("503", 0) < 3:
                await asyncio.sleep(0.05)
            assert running.events.empty() and not running.task.done()  # an error is no event: it would start a run
            (await admin.put("/_sandbox/faults", json={"rules": []})).raise_for_status()
        added = add_orders(sandbox, 2)
        payload = await running.next()
        await running.stop()
        assert payload["order_ids"] == sorted(added)
        return payload

    asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))


def test_new_edits_fire_once_each(consentio_connection, sandbox):
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-08T00:00:00Z", "kind": "sale", "status": "accepted"}
    hash_ids = [o["hash_id"] for o in httpx.get(f"{sandbox.base_url}/_sandbox/orders", params=query).json()[:3]]
    store = DictStateStore()
    start = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()

    def edit(hash_id: str) -> None:
        httpx.post(f"{sandbox.base_url}/_sandbox/orders/{hash_id}/edit", timeout=10).raise_for_status()

    async def scenario() -> list[dict[str, Any]]:
        store.values["consentio:consentio_default:edited_orders:edited"] = {"until": start}
        edit(hash_ids[0])
        edit(hash_ids[1])
        running = Running(watcher(store, watch="edited_orders"))
        first = await running.next()
        edit(hash_ids[2])
        second = await running.next()
        await polls_pass_edited(sandbox, 3)
        assert running.events.empty(), "the same unseen edits fired again"
        await running.stop()
        return [first, second]

    first, second = asyncio.run(asyncio.wait_for(scenario(), GUARD_SECONDS))
    assert sorted(order["hash_id"] for order in first["orders"]) == sorted(hash_ids[:2])
    assert [order["hash_id"] for order in second["orders"]] == [hash_ids[2]]


async def polls_pass_edited(sandbox, polls: int) -> None:
    def edited_polls() -> int:
        requests = httpx.get(f"{sandbox.base_url}/_sandbox/stats", timeout=10).json()["requests"]
        return sum(count for path, count in requests.items() if "edited" in path)

    target = edited_polls() + polls
    while edited_polls() < target:
        await asyncio.sleep(0.05)
