"""What ConsentioOrdersSensor and the two triggers watch: one type per watch, each knowing its records' request (sync
or async client alike), its JSON-safe arguments for the triggerer, its lineage resource, and, for the event
trigger, its watermark key and the event it announces.

``watch="new_orders"`` and ``watch="edited_orders"`` stay the user-facing spelling: :func:`watch_type` turns the name
into the type once, and nothing else looks at the string.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.base.windows import parse_instant, resolve_window

# An event names at most this many orders; ``count`` is always the full number.
LISTED_ORDERS = 200

Announcement = tuple[dict[str, Any] | None, dict[str, Any]]


@dataclass(frozen=True)
class OrdersWatch(ABC):
    """One watch's request. ``kind`` and ``status`` are carried by every watch so that the triggerer receives
    every option the user gave, whether or not this watch filters on it."""

    name: ClassVar[str]

    kind: str = "sale"
    status: str | None = "accepted"

    @classmethod
    @abstractmethod
    def for_run(
        cls,
        context: Mapping[str, Any],
        *,
        start: Any,
        end: Any,
        since: Any,
        kind: str,
        status: str | None,
        empty_interval: str,
        lookback: timedelta,
        task: str,
    ) -> OrdersWatch:
        """The watch of one run, its instants resolved against the run's data interval."""

    @classmethod
    @abstractmethod
    def from_kwargs(
        cls, *, kind: str, status: str | None, start: str | None, end: str | None, since: str | None
    ) -> OrdersWatch:
        """The watch a deferrable trigger was serialized with (the inverse of :meth:`as_kwargs`)."""

    @abstractmethod
    def fetch(self, client: Any) -> Any:
        """The raw records to count, from a sync client; from an async one, an awaitable of them."""

    @abstractmethod
    def as_kwargs(self) -> dict[str, Any]:
        """JSON-safe keyword arguments of ConsentioOrdersTrigger, ``watch`` included."""

    @classmethod
    @abstractmethod
    def lineage_resource(cls, kind: str) -> str:
        """The API resource the watch reads, as lineage names it."""

    # --- the event trigger: a watermark that only moves forward, and one event per batch of news ---------------

    @classmethod
    @abstractmethod
    def state_key(cls, conn_id: str, kind: str, status: str | None) -> str:
        """The watermark's key in the asset state store: one per connection and watch."""

    @classmethod
    @abstractmethod
    async def announce(
        cls, client: Any, state: dict[str, Any], *, kind: str, status: str | None, settle: float
    ) -> Announcement:
        """What to announce since the watermark ``state`` (None: nothing new), and the watermark after it."""

    @staticmethod
    @abstractmethod
    def describe(payload: Mapping[str, Any]) -> str:
        """An announced event, for the triggerer's log."""


@dataclass(frozen=True, kw_only=True)
class NewOrders(OrdersWatch):
    """Orders of ``kind`` with ``status`` created in [start, end)."""

    name: ClassVar[str] = "new_orders"

    start: datetime
    end: datetime

    @classmethod
    def for_run(
        cls,
        context: Mapping[str, Any],
        *,
        start: Any,
        end: Any,
        since: Any,
        kind: str,
        status: str | None,
        empty_interval: str,
        lookback: timedelta,
        task: str,
    ) -> NewOrders:
        window_start, window_end = resolve_window(
            context, start, end, empty_interval=empty_interval, lookback=lookback, task=task
        )
        return cls(kind, status, start=window_start, end=window_end)

    @classmethod
    def from_kwargs(
        cls, *, kind: str, status: str | None, start: str | None, end: str | None, since: str | None
    ) -> NewOrders:
        return cls(kind, status, start=parse_instant(start, "start"), end=parse_instant(end, "end"))

    def fetch(self, client: Any) -> Any:
        return client.get_raw_orders(
            self.start, self.end, kind=self.kind, statuses=[self.status] if self.status else None
        )

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "watch": self.name,
            "kind": self.kind,
            "status": self.status,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    @classmethod
    def lineage_resource(cls, kind: str) -> str:
        return f"orders/{kind}"

    @classmethod
    def state_key(cls, conn_id: str, kind: str, status: str | None) -> str:
        return f"consentio:{conn_id}:{cls.name}:{kind}:{status}"

    @classmethod
    async def announce(
        cls, client: Any, state: dict[str, Any], *, kind: str, status: str | None, settle: float
    ) -> Announcement:
        """Orders created in [watermark, now - settle): consecutive events cover consecutive windows."""
        start = parse_instant(state["until"], "watermark")
        # Whole seconds: creation times are to the second, so the current second is announced once it is over.
        end = (datetime.now(UTC) - timedelta(seconds=settle)).replace(microsecond=0)
        if end <= start:
            return None, state
        records = await cls(kind, status, start=start, end=end).fetch(client)
        state = {"until": end.isoformat()}
        if not records:
            return None, state
        ids = sorted({record.keys.id for record in records})
        payload = {
            "watch": cls.name,
            "kind": kind,
            "status": status,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "count": len(ids),
            "order_ids": ids[:LISTED_ORDERS],
        }
        return payload, state

    @staticmethod
    def describe(payload: Mapping[str, Any]) -> str:
        return f"orders created in [{payload['start']}, {payload['end']})"


@dataclass(frozen=True, kw_only=True)
class EditedOrders(OrdersWatch):
    """Orders edited at or after ``since`` whose edit is not marked seen yet."""

    name: ClassVar[str] = "edited_orders"

    since: datetime

    @classmethod
    def for_run(
        cls,
        context: Mapping[str, Any],
        *,
        start: Any,
        end: Any,
        since: Any,
        kind: str,
        status: str | None,
        empty_interval: str,
        lookback: timedelta,
        task: str,
    ) -> EditedOrders:
        since = since if since is not None else context.get("data_interval_start")
        if since is None:
            raise ConsentioConfigError(f"{task}: no data interval; pass since explicitly")
        return cls(kind, status, since=parse_instant(since, "since"))

    @classmethod
    def from_kwargs(
        cls, *, kind: str, status: str | None, start: str | None, end: str | None, since: str | None
    ) -> EditedOrders:
        return cls(kind, status, since=parse_instant(since, "since"))

    def fetch(self, client: Any) -> Any:
        return client.get_raw_edited_orders(self.since)

    def as_kwargs(self) -> dict[str, Any]:
        return {"watch": self.name, "kind": self.kind, "status": self.status, "since": self.since.isoformat()}

    @classmethod
    def lineage_resource(cls, kind: str) -> str:
        return "orders/edited"

    @classmethod
    def state_key(cls, conn_id: str, kind: str, status: str | None) -> str:
        return f"consentio:{conn_id}:{cls.name}:edited"

    @classmethod
    async def announce(
        cls, client: Any, state: dict[str, Any], *, kind: str, status: str | None, settle: float
    ) -> Announcement:
        """Unseen edits newer than the last one announced. The API lists an edit until it is marked seen, so the
        watermark also remembers which edits at its own instant were announced already."""
        since = parse_instant(state["until"], "watermark")
        announced = set(state.get("announced_at_until", []))
        fresh = [
            record.keys
            for record in await cls(kind, status, since=since).fetch(client)
            if parse_instant(record.keys.updated_at, "updated_at") > since or record.keys.hash_id not in announced
        ]
        if not fresh:
            return None, state
        newest = max(parse_instant(keys.updated_at, "updated_at") for keys in fresh)
        at_newest = [keys.hash_id for keys in fresh if parse_instant(keys.updated_at, "updated_at") == newest]
        if newest == since:
            at_newest += sorted(announced)
        payload = {
            "watch": cls.name,
            "since": since.isoformat(),
            "until": newest.isoformat(),
            "count": len(fresh),
            "orders": [{"hash_id": keys.hash_id, "updated_at": keys.updated_at} for keys in fresh[:LISTED_ORDERS]],
        }
        return payload, {"until": newest.isoformat(), "announced_at_until": sorted(set(at_newest))}

    @staticmethod
    def describe(payload: Mapping[str, Any]) -> str:
        return f"edits ({payload['since']}, {payload['until']}]"


WATCHES: dict[str, type[OrdersWatch]] = {watch.name: watch for watch in (NewOrders, EditedOrders)}


def watch_type(name: str) -> type[OrdersWatch]:
    """The watch a user named; refuses an unknown name with the ones there are."""
    try:
        return WATCHES[name]
    except (KeyError, TypeError):
        raise ConsentioConfigError(f"watch must be one of {', '.join(WATCHES)}, got {name!r}") from None
