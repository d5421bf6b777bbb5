"""Trigger that waits, in the triggerer, until Consentio has orders (or edits) to process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_consentio.errors import ConsentioError, ConsentioTransientError
from airflow_provider_consentio.hooks.consentio import ConsentioHook
from airflow_provider_consentio.triggers.watches import OrdersWatch, watch_type


class ConsentioOrdersTrigger(BaseTrigger):
    """Poll until at least ``min_count`` orders match, then fire once.

    * ``watch="new_orders"``: orders of ``kind`` and ``status`` created in [start, end).
    * ``watch="edited_orders"``: orders edited at or after ``since`` whose edit is not marked seen yet.

    Transient failures (429, 5xx, dropped connections) are retried by the client and then simply polled again:
    a network blip never fails the task. Any other error (rejected key, bad request) fires an error event.
    ``request_timeout`` and ``max_retries`` override the connection's (None: the connection's).
    All arguments are JSON-safe and every one is serialized, so the triggerer runs exactly what was configured.
    """

    def __init__(
        self,
        *,
        consentio_conn_id: str,
        watch: str,
        start: str | None = None,
        end: str | None = None,
        since: str | None = None,
        kind: str = "sale",
        status: str | None = "accepted",
        min_count: int = 1,
        poll_interval: float = 60.0,
        max_retries: int | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__()
        watch_type(watch)  # an unknown watch fails where the trigger is made, not in the triggerer
        self.consentio_conn_id = consentio_conn_id
        self.watch = watch
        self.start = start
        self.end = end
        self.since = since
        self.kind = kind
        self.status = status
        self.min_count = min_count
        self.poll_interval = poll_interval
        self.max_retries = max_retries
        self.request_timeout = request_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "consentio_conn_id": self.consentio_conn_id,
                "watch": self.watch,
                "start": self.start,
                "end": self.end,
                "since": self.since,
                "kind": self.kind,
                "status": self.status,
                "min_count": self.min_count,
                "poll_interval": self.poll_interval,
                "max_retries": self.max_retries,
                "request_timeout": self.request_timeout,
            },
        )

    def watched(self) -> OrdersWatch:
        return watch_type(self.watch).from_kwargs(
            kind=self.kind, status=self.status, start=self.start, end=self.end, since=self.since
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = ConsentioHook(self.consentio_conn_id, max_retries=self.max_retries, timeout=self.request_timeout)
        try:
            watch = self.watched()
            client = await hook.get_async_client()
        except ConsentioError as exc:
            yield TriggerEvent({"status": "error", "message": str(exc)})
            return
        async with client:
            while True:
                try:
                    count = len(await watch.fetch(client))
                except ConsentioTransientError as exc:
                    self.log.warning("%s; polling again in %.0fs", exc, self.poll_interval)
                except ConsentioError as exc:
                    yield TriggerEvent({"status": "error", "message": str(exc)})
                    return
                else:
                    if count >= self.min_count:
                        yield TriggerEvent({"status": "success", "count": count, "watch": self.watch})
                        return
                    self.log.info(
                        "%s: %d of %d wanted; polling again in %.0fs",
                        self.watch,
                        count,
                        self.min_count,
                        self.poll_interval,
                    )
                await asyncio.sleep(self.poll_interval)
