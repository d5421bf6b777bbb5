"""What ConsentioOrdersSensor and ConsentioOrdersTrigger watch: the one place that turns ``watch`` into a target
(JSON-safe, so it travels to the triggerer) and into the request whose records are counted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.windows import parse_instant, resolve_window

WATCHES = ("new_orders", "edited_orders")


@dataclass(frozen=True)
class OrdersWatch:
    """``new_orders``: orders of ``kind`` with ``status`` created in [start, end). ``edited_orders``: orders edited
    at or after ``since`` whose edit is not marked seen yet. Instants are ISO strings."""

    watch: str
    kind: str = "sale"
    status: str | None = "accepted"
    start: str | None = None
    end: str | None = None
    since: str | None = None

    def __post_init__(self) -> None:
        if self.watch not in WATCHES:
            raise ConsentioConfigError(f"watch must be one of {', '.join(WATCHES)}, got {self.watch!r}")

    @classmethod
    def for_run(
        cls,
        watch: str,
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
        if watch == "edited_orders":
            since = since if since is not None else context.get("data_interval_start")
            if since is None:
                raise ConsentioConfigError(f"{task}: no data interval; pass since explicitly")
            return cls(watch, kind, status, since=parse_instant(since, "since").isoformat())
        window_start, window_end = resolve_window(
            context, start, end, empty_interval=empty_interval, lookback=lookback, task=task
        )
        return cls(watch, kind, status, start=window_start.isoformat(), end=window_end.isoformat())

    def fetch(self, client: Any) -> Any:
        """The raw records to count, from a sync client; from an async one, an awaitable of them."""
        if self.watch == "edited_orders":
            return client.get_raw_edited_orders(parse_instant(self.since, "since"))
        start, end = parse_instant(self.start, "start"), parse_instant(self.end, "end")
        return client.get_raw_orders(start, end, kind=self.kind, statuses=[self.status] if self.status else None)

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)
