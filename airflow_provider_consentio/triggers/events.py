"""Event-driven runs: a trigger for ``AssetWatcher`` that fires when Consentio has new accepted orders or new edits.

Schedule a DAG on ``Asset(..., watchers=[AssetWatcher(name=..., trigger=ConsentioOrdersEventTrigger(...))])``: the
triggerer polls, and the DAG runs only when something happened. Each event's payload says exactly what happened
(the window of new orders, or the edits), so the run processes those and nothing else.

The watermark (how far the trigger has announced) lives in Airflow 3.3's asset state store, under the watched
asset: it survives triggerer restarts and a DAG re-parse, which an in-memory watermark would not (a restart would
re-announce old orders or skip new ones), and the event itself cannot carry it (the trigger reads no events back).
Before 3.3 there is no store: the watermark is kept in memory and starts at the trigger's start, so orders created
while no triggerer ran are not announced (logged as a warning at start).

This module is imported by DAG files at parse time: the hook and client are imported inside ``run()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError
from airflow_provider_consentio.operators.base.windows import parse_instant
from airflow_provider_consentio.triggers.watches import WATCHES, NewOrders, watch_type


class ConsentioOrdersEventTrigger(BaseEventTrigger):
    """Fire once per batch of new orders (or new edits): never twice for the same ones, never without new ones.

    * ``watch="new_orders"``: orders of ``kind`` with ``status`` created in [watermark, now - ``settle``). The event
      payload is ``{"watch", "kind", "status", "start", "end", "count", "order_ids"}``: export exactly [start, end)
      with that status. Windows of consecutive events are consecutive, so several events merged into one DAG run
      cover [first start, last end). Orders are found by creation time: one created before a window closed and
      accepted only after it was announced is not announced again.
    * ``watch="edited_orders"``: unseen edits newer than the last one announced. Payload ``{"watch", "since",
      "until", "count", "orders": [{"hash_id", "updated_at"}]}``: fetch edits since ``since`` and mark seen the
      ones processed. Unseen edits stay listed by the API until marked seen; only edits not yet announced fire.
    * Polls every ``poll_interval`` seconds and sleeps between polls whatever happens. Errors: the client retries
      transient ones (one policy with the sync client); then the trigger backs off, doubling the wait up to
      ``max_backoff``, and keeps polling (an error never starts a DAG run, and a fixed connection resumes it).

    :param start_from: the first watermark (ISO 8601) when none is stored yet; default: when the trigger starts.
    :param settle: seconds an order may take to become visible after its creation time.
    """

    def __init__(
        self,
        *,
        consentio_conn_id: str = "consentio_default",
        watch: str = "new_orders",
        kind: str = "sale",
        status: str = "accepted",
        poll_interval: float = 60.0,
        settle: float = 5.0,
        max_backoff: float = 900.0,
        start_from: str | None = None,
        max_retries: int | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__()
        try:
            self.watch_type = watch_type(watch)
        except ConsentioConfigError as exc:
            raise ValueError(str(exc)) from None
        if not poll_interval > 0:
            raise ValueError(
                f"poll_interval must be positive (a trigger must sleep between polls), got {poll_interval}"
            )
        if start_from is not None:
            parse_instant(start_from, "start_from")
        self.consentio_conn_id = consentio_conn_id
        self.watch = watch
        self.kind = kind
        self.status = status
        self.poll_interval = poll_interval
        self.settle = settle
        self.max_backoff = max(max_backoff, poll_interval)
        self.start_from = start_from
        self.max_retries = max_retries
        self.request_timeout = request_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "consentio_conn_id": self.consentio_conn_id,
                "watch": self.watch,
                "kind": self.kind,
                "status": self.status,
                "poll_interval": self.poll_interval,
                "settle": self.settle,
                "max_backoff": self.max_backoff,
                "start_from": self.start_from,
                "max_retries": self.max_retries,
                "request_timeout": self.request_timeout,
            },
        )

    @property
    def state_key(self) -> str:
        """The watermark's key in the asset state store: one per connection and watch."""
        return self.watch_type.state_key(self.consentio_conn_id, self.kind, self.status)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_consentio.hooks.consentio import ConsentioHook

        watermark = Watermark(self)
        state = await watermark.load()
        failures = 0
        hook = ConsentioHook(self.consentio_conn_id, max_retries=self.max_retries, timeout=self.request_timeout)
        while True:
            try:
                # A new client after a failure: the connection is read again, so fixing it resumes the watch.
                async with await hook.get_async_client() as client:
                    while True:
                        payload, state = await self.watch_type.announce(
                            client, state, kind=self.kind, status=self.status, settle=self.settle
                        )
                        await watermark.save(state)
                        failures = 0
                        if payload is not None:
                            self.log.info(
                                "%s: %d new; firing %s", self.watch, payload["count"], self.watch_type.describe(payload)
                            )
                            yield TriggerEvent(payload)
                        await asyncio.sleep(self.poll_interval)
            except ConsentioError as exc:
                # The client has already retried this poll as its policy allows. The trigger must outlive the
                # failure (it would stop watching the asset), so it polls again later, pausing longer after each
                # failure in a row so that a broken connection is not hammered every poll_interval.
                failures += 1
                wait = min(self.max_backoff, self.poll_interval * 2**failures)
                self.log.warning("%s: poll failed (%s); polling again in %.0fs", self.watch, exc, wait)
                await asyncio.sleep(wait)


class Watermark:
    """Where the trigger keeps its watermark: the watched asset's state store (Airflow 3.3+), else memory."""

    def __init__(self, trigger: ConsentioOrdersEventTrigger):
        self.trigger = trigger
        self.store = getattr(trigger, "asset_state_store", None)
        # What the store holds: a poll that changed nothing (no new edit) is not written again.
        self.stored: dict[str, Any] | None = None

    async def load(self) -> dict[str, Any]:
        if self.store is not None:
            stored = await self.store.aget(self.trigger.state_key)
            if isinstance(stored, dict) and "until" in stored:
                self.trigger.log.info("Resuming from the stored watermark %s", stored["until"])
                self.stored = stored
                return stored
        else:
            self.trigger.log.warning(
                "No asset state store (Airflow < 3.3, or the trigger is not in an AssetWatcher): the watermark is "
                "kept in memory, so orders created while no triggerer runs this trigger are not announced."
            )
        start = self.trigger.start_from if self.store is not None and self.trigger.start_from else None
        return {"until": start or datetime.now(UTC).replace(microsecond=0).isoformat()}

    async def save(self, state: dict[str, Any]) -> None:
        if self.store is not None and state != self.stored:
            await self.store.aset(self.trigger.state_key, state)
            self.stored = state


def announced_window(triggering_asset_events: Any, asset: Any) -> dict[str, str]:
    """The [start, end) of new orders a run was started for, from its triggering asset events.

    The scheduler may fold several events into one run; their windows are consecutive, so the run covers
    [first start, last end).
    """
    payloads = [event.extra["payload"] for event in (triggering_asset_events or {}).get(asset, [])]
    windows = [payload for payload in payloads if WATCHES.get(payload.get("watch")) is NewOrders]
    if not windows:
        raise ConsentioError(f"this run was not started by a new-orders event of {asset.name}; nothing to export")
    return {"start": min(w["start"] for w in windows), "end": max(w["end"] for w in windows)}
