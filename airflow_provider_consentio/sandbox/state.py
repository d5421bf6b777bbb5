"""The sandbox's in-memory state and every business rule of the emulated Partner API.

Each order is kept as its wire dict plus its serialized bytes (re-rendered only when it changes), and orders are
indexed by creation time, so a window is a bisect and a join of ready bytes.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import InvalidOperation
from typing import Any

from airflow_provider_consentio.sandbox.catalogue import Catalogue
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.data import PENDING_EDIT_EVERY, Generator, apply_edit, parse_rfc3339
from airflow_provider_consentio.sandbox.wire import dec, encode, has_nul, is_num

ORDER_STATUSES = ("accepted", "pending", "canceled", "incomplete")
QUANTITY_UNITS = ("box", "pallet", "kg", "piece", "unknown")
TENDER_KINDS = (
    "standard", "promotion", "regional_promotion", "weekend_flash_offer", "promotion_radio", "promotion_leaflet",
)  # fmt: skip
NEED_TEXT_LIMITS = {"code": 256, "reference_code": 256, "external_status": 32}
NEED_CODE_LIMITS = ("storage_location_code", "delivery_address_code", "logistics_unit_code")
NEED_FIELDS = {
    "code", "reference_code", "start_date", "end_date", "quantity", "quantity_unit", "external_status",
    "storage_location_code", "delivery_address_code", "logistics_unit_code", "tender_kind", "metadata",
}  # fmt: skip
NEED_READ_ONLY = {"id", "created_at", "updated_at"}
MAX_NEEDS_PER_REQUEST = 5000
MAX_ORDERS_PER_REQUEST = 1000


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass
class StoredOrder:
    data: dict[str, Any]
    kind: str
    created_ts: float
    pending_edit: bool = False
    edit_count: int = 0
    # time.monotonic() when added through the API or the admin (0 for the generated data): what a listing lag
    # (the fault plan's listing_lag) counts from.
    added_at: float = 0.0
    _json: bytes | None = field(default=None, repr=False)

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = encode(self.data)
        return self._json

    def changed(self) -> None:
        self._json = None


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    logins: int = 0
    orders_served: int = 0

    def clear(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.logins = 0
        self.orders_served = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "faults": dict(self.faults),
            "logins": self.logins,
            "orders_served": self.orders_served,
        }


class State:
    """Everything the emulated workspace holds. Thread-safe: one lock around every read-modify-write."""

    def __init__(self, config: SandboxConfig):
        self.lock = threading.RLock()
        self.stats = Stats()
        self.reset(config)

    def reset(self, config: SandboxConfig) -> None:
        with self.lock:
            self.config = config
            self.token_ttl = config.token_ttl
            self.generator = Generator(config)
            self.edit_rng = random.Random(config.seed + 1)
            self.orders: dict[str, StoredOrder] = {}
            self.index: dict[str, tuple[list[float], list[StoredOrder]]] = {"sale": ([], []), "purchase": ([], [])}
            self.needs: dict[str, dict[str, Any]] = {}
            self.next_need_id = 1
            self.next_order_id = 0
            self.catalogue, self.other_catalogue = Catalogue(), Catalogue()
            for kind, order in self.generator.orders():
                self._add(order, kind)
            self._seed_pending_edits()

    # --- orders ----------------------------------------------------------------------------------------------

    def _add(self, data: dict[str, Any], kind: str) -> StoredOrder:
        stored = StoredOrder(data, kind, parse_rfc3339(data["created_at"]).timestamp())
        self.orders[data["hash_id"]] = stored
        times, orders = self.index[kind]
        position = bisect.bisect_right(times, stored.created_ts)
        times.insert(position, stored.created_ts)
        orders.insert(position, stored)
        self.next_order_id = max(self.next_order_id, data["id"] + 1)
        return stored

    def _seed_pending_edits(self) -> None:
        for number, stored in enumerate(self.index["sale"][1]):
            if stored.data["status"] == "accepted" and number % PENDING_EDIT_EVERY == 7:
                self.edit(stored.data["hash_id"], parse_rfc3339(stored.data["created_at"]) + timedelta(hours=20))

    def window(self, start: datetime, end: datetime, kind: str, status: str | None) -> list[StoredOrder]:
        times, orders = self.index[kind]
        selected = orders[bisect.bisect_left(times, start.timestamp()) : bisect.bisect_left(times, end.timestamp())]
        return [o for o in selected if o.data["status"] == status] if status else selected

    def listed(self, orders: list[StoredOrder], lag: float) -> list[StoredOrder]:
        """``orders`` as a listing that lags ``lag`` seconds behind the writes shows them."""
        if not lag:
            return orders
        shown_until = time.monotonic() - lag
        return [order for order in orders if order.added_at <= shown_until]

    def order(self, hash_id: str) -> StoredOrder:
        stored = self.orders.get(hash_id)
        if stored is None:
            raise NotFound(f"order {hash_id} not found")
        return stored

    def add_order(self, created_at: datetime, kind: str, status: str, overrides: dict[str, Any]) -> StoredOrder:
        return self.add_orders(1, created_at, kind, status, overrides)[0]

    def add_orders(
        self, count: int, created_at: datetime, kind: str, status: str, overrides: dict[str, Any]
    ) -> list[StoredOrder]:
        """``count`` new orders, added at once: no listing sees some of them without the others."""
        with self.lock:
            added = []
            for _ in range(count):
                data = self.generator.order(self.next_order_id, created_at, kind, status)
                data.update({k: v for k, v in overrides.items() if k in data and k not in ("id", "hash_id", "items")})
                stored = self._add(data, kind)
                stored.added_at = time.monotonic()
                added.append(stored)
            return added

    def edit(self, hash_id: str, at: datetime | None = None) -> StoredOrder:
        with self.lock:
            stored = self.order(hash_id)
            if stored.data["status"] != "accepted":
                raise Conflict(f"order {hash_id} is {stored.data['status']}: only accepted orders can be edited")
            moment = at or datetime.now(UTC)
            # Versions (updated_at, to the second) must strictly increase, even for two edits in one second.
            previous = parse_rfc3339(stored.data["updated_at"])
            apply_edit(stored.data, max(moment, previous + timedelta(seconds=1)), self.edit_rng)
            stored.pending_edit = True
            stored.edit_count += 1
            stored.changed()
            return stored

    def edited_since(self, since: datetime) -> list[StoredOrder]:
        with self.lock:
            pending = [o for o in self.orders.values() if o.pending_edit and o.kind == "sale"]
            pending = [o for o in pending if parse_rfc3339(o.data["updated_at"]) >= since]
            return sorted(pending, key=lambda o: (o.data["updated_at"], o.data["id"]))

    def mark_seen(self, hash_ids: list[Any]) -> tuple[list[str], list[str]]:
        seen, errors = [], []
        with self.lock:
            for hash_id in hash_ids:
                stored = self.orders.get(hash_id) if isinstance(hash_id, str) else None
                if stored is None:
                    errors.append(f"{hash_id}: order not found")
                    continue
                stored.pending_edit = False
                seen.append(hash_id)
        return seen, errors

    def set_external(self, records: list[Any]) -> tuple[list[bytes], list[str]]:
        updated, errors = [], []
        with self.lock:
            for position, record in enumerate(records, start=1):
                problem = _external_problem(record)
                key = (
                    record.get("hash_id")
                    if isinstance(record, dict) and isinstance(record.get("hash_id"), str)
                    else None
                )
                if problem:
                    errors.append(f"{key or f'#{position}'}: {problem}")
                    continue
                stored = self.orders.get(key)  # type: ignore[arg-type]
                if stored is None:
                    errors.append(f"{key}: order not found")
                    continue
                side = "seller" if stored.kind == "sale" else "buyer"
                for name in ("external_id", "external_status"):
                    if record.get(name) is not None:
                        stored.data[f"{name}_{side}"] = record[name]
                        stored.data[name] = record[name]
                if record.get("cancel"):
                    stored.data["status"] = "canceled"
                stored.changed()
                updated.append(stored.json)
        return updated, errors

    def prepare(self, hash_id: str) -> StoredOrder:
        with self.lock:
            stored = self.order(hash_id)
            for item in stored.data["items"]:
                item["prepared"] = True
            stored.changed()
            return stored

    # --- purchase needs --------------------------------------------------------------------------------------

    def upsert_needs(self, records: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        now = datetime.now(UTC)
        with self.lock:
            for position, record in enumerate(records, start=1):
                problems = need_problems(record)
                code = record.get("code") if isinstance(record, dict) else None
                name = code if isinstance(code, str) and code.strip() else f"#{position}"
                if not problems and str(record["reference_code"]).startswith("INVALID"):
                    problems = [f"reference_code '{record['reference_code']}' not found"]
                if problems:
                    errors.append(f"{name}: {'; '.join(problems)}")
                    continue
                saved.append(self._store_need(record, now))
        return saved, errors

    def _store_need(self, record: dict[str, Any], now: datetime) -> dict[str, Any]:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        existing = self.needs.get(record["code"])
        need = {name: record.get(name) for name in sorted(NEED_FIELDS, key=_NEED_ORDER.index)}
        if existing is None:
            need = {"id": self.next_need_id, **need, "created_at": stamp, "updated_at": stamp}
            self.next_need_id += 1
        else:
            # Full replace: same id and created_at; a new updated_at even if nothing changed (as GORM's Save does),
            # strictly after the previous one.
            previous = existing["updated_at"]
            stamp = stamp if stamp > previous else _later(previous)
            need = {"id": existing["id"], **need, "created_at": existing["created_at"], "updated_at": stamp}
        self.needs[record["code"]] = need
        return need

    def needs_between(self, start: date, end: date, status: str | None) -> list[dict[str, Any]]:
        with self.lock:
            selected = [
                need
                for need in self.needs.values()
                if need["start_date"] >= start.isoformat()
                and need["end_date"] <= end.isoformat()
                and (status is None or need["external_status"] == status)
            ]
        return sorted(selected, key=lambda need: (need["start_date"], need["code"]))

    # --- admin views -----------------------------------------------------------------------------------------

    def admin_view(self, stored: StoredOrder) -> dict[str, Any]:
        return {
            "seen": not stored.pending_edit,
            "pending_edit": stored.pending_edit,
            "edit_count": stored.edit_count,
            "prepared": all(item["prepared"] for item in stored.data["items"]),
            "external_id": stored.data["external_id_seller" if stored.kind == "sale" else "external_id_buyer"],
            "external_status": stored.data[
                "external_status_seller" if stored.kind == "sale" else "external_status_buyer"
            ],
            "kind": stored.kind,
        }

    def edits(self) -> list[dict[str, Any]]:
        """Every order edited at least once: hash ID, kind, current version (updated_at), edit count, pending."""
        with self.lock:
            return [
                {
                    "hash_id": hash_id,
                    "kind": o.kind,
                    "updated_at": o.data["updated_at"],
                    "edit_count": o.edit_count,
                    "pending_edit": o.pending_edit,
                }
                for hash_id, o in self.orders.items()
                if o.edit_count
            ]

    def summary(self) -> dict[str, Any]:
        with self.lock:
            orders = list(self.orders.values())
            return {
                "external_refs": {
                    o.data["hash_id"]: {
                        "external_id": o.data["external_id"],
                        "external_status": o.data["external_status"],
                    }
                    for o in orders
                    if o.data["external_id"] is not None or o.data["external_status"] is not None
                },
                "seen": sorted(o.data["hash_id"] for o in orders if o.edit_count and not o.pending_edit),
                "pending_edits": sorted(o.data["hash_id"] for o in orders if o.pending_edit),
                "prepared": sorted(o.data["hash_id"] for o in orders if all(i["prepared"] for i in o.data["items"])),
                "canceled": sorted(o.data["hash_id"] for o in orders if o.data["status"] == "canceled"),
                "counts": {"orders": len(orders), "purchase_needs": len(self.needs), **self.catalogue.summary()},
            }


_NEED_ORDER = [
    "code", "reference_code", "start_date", "end_date", "quantity", "quantity_unit", "external_status",
    "storage_location_code", "delivery_address_code", "logistics_unit_code", "tender_kind", "metadata",
]  # fmt: skip


def _later(stamp: str) -> str:
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(microseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _external_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "must be an object"
    unknown = set(record) - {"hash_id", "external_id", "external_status", "cancel"}
    if unknown:
        return f"unknown field(s) {', '.join(sorted(unknown))}"
    if not isinstance(record.get("hash_id"), str) or not record["hash_id"]:
        return "hash_id is required"
    for name, limit in (("external_id", 256), ("external_status", 32)):
        value = record.get(name)
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= limit):
            return f"{name} must be a string of 1 to {limit} characters"
    if not isinstance(record.get("cancel", False), bool):
        return "cancel must be a boolean"
    if has_nul(record):
        return "control characters are not allowed"
    return None


def need_problems(record: Any) -> list[str]:
    """Every documented rule a purchase need breaks (empty when valid)."""
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = []
    unknown = set(record) - NEED_FIELDS - NEED_READ_ONLY
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    for name, limit in NEED_TEXT_LIMITS.items():
        value = record.get(name)
        if value is None:
            problems.append(f"{name} is required")
        elif not isinstance(value, str) or is_num(value) or not 1 <= len(value) <= limit:
            problems.append(f"{name} must be a string of 1 to {limit} characters")
    for name in NEED_CODE_LIMITS:
        value = record.get(name)
        if value is not None and (not isinstance(value, str) or is_num(value) or len(value) > 20):
            problems.append(f"{name} must be a string of at most 20 characters")
    dates = {}
    for name in ("start_date", "end_date"):
        value = record.get(name)
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError
            dates[name] = date.fromisoformat(value)
        except ValueError:
            problems.append(f"{name} {'is required' if value is None else 'must be a date (YYYY-MM-DD)'}")
    if len(dates) == 2 and dates["end_date"] < dates["start_date"]:
        problems.append("end_date must not be before start_date")
    quantity = record.get("quantity")
    try:
        if isinstance(quantity, bool) or not (is_num(quantity) or isinstance(quantity, int)):
            raise InvalidOperation
        if dec(quantity) < 0 or not dec(quantity).is_finite():
            problems.append("quantity must not be negative")
    except InvalidOperation:
        problems.append("quantity is required" if quantity is None else "quantity must be a number")
    if record.get("quantity_unit") not in QUANTITY_UNITS:
        problems.append(f"quantity_unit must be one of {', '.join(QUANTITY_UNITS)}")
    if record.get("tender_kind") is not None and record["tender_kind"] not in TENDER_KINDS:
        problems.append(f"tender_kind must be one of {', '.join(TENDER_KINDS)}")
    if record.get("metadata") is not None and not isinstance(record["metadata"], dict):
        problems.append("metadata must be an object")
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems
