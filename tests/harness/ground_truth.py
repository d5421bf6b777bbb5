"""What the seller and buyer DAGs must have done, checked against the sandbox's ground truth after a backfill.

Shared by the distributed test and the infrastructure-faults test: one definition of "nothing lost, nothing
duplicated", whatever failed meanwhile. The usage::

    watcher = BucketWatcher(stack.s3.client(), stack.bucket, "pipelines/orders/")
    watcher.start()
    world = World.before_backfill(stack, first_day, days, demand_lines_per_day)  # before the backfills start
    ...  # backfill the seller and buyer DAGs over those days
    watcher.stop()
    outcome = world.check(stack, watcher)
    assert outcome.ok, outcome.figures()

``stack`` is a ``ProductionAirflow`` (or anything with its ``erp``, ``erp_many``, ``erp_connection`` and
``sandbox``); every check reads in bulk (one admin request per day or per kind of fact, one ERP connection), so it
stays quick at 10,000 orders a day.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_provider_consentio.demo.erp import COLUMNS, DEMAND_LINES_TABLE, demand_line

# The seller fetches edits made since its interval start minus 7 days (ConsentioEditedOrdersOperator's lookback).
EDIT_LOOKBACK = timedelta(days=7)
ORDERS_PREFIX = "pipelines/orders/"


class BucketWatcher(threading.Thread):
    """Reads every object under a prefix as soon as it is listed, and keeps what each version of it held.

    Objects under a hidden folder (a durable export's parts, ``.<name>.parts-<job>/``) are only counted: the export
    deletes them once the final object is written, possibly between a listing and the read.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = ORDERS_PREFIX, interval: float = 0.3):
        super().__init__(daemon=True)
        self.client, self.bucket, self.prefix, self.interval = client, bucket, prefix, interval
        self.versions: dict[str, dict[str, list[str]]] = {}  # key -> ETag -> hash IDs in that version
        self.broken: list[str] = []
        self.parts_seen: set[str] = set()
        self.errors: list[str] = []  # reads that failed (the S3 server down, say): retried at the next scan
        self.done = threading.Event()

    def listing(self) -> list[tuple[str, str]]:
        """(key, ETag) of every object under the prefix now."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        return [(item["Key"], item["ETag"]) for page in pages for item in page.get("Contents", [])]

    def run(self) -> None:
        while not self.done.is_set():
            self._scan_once()
            self.done.wait(self.interval)
        self._scan_once()

    def _scan_once(self) -> None:
        # A fault scenario may take S3 itself away for a while: the watcher keeps watching, it does not die.
        try:
            self.scan()
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def scan(self) -> None:
        for key, etag in self.listing():
            if is_part(key):
                self.parts_seen.add(key)
                continue
            if etag in self.versions.get(key, {}):
                continue
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            try:
                orders = [json.loads(line) for line in body.decode().splitlines()]
                if body and not body.endswith(b"\n"):
                    raise ValueError("no final newline")
            except ValueError as exc:
                self.broken.append(f"{key} ({len(body)} bytes): {exc}")
                continue
            self.versions.setdefault(key, {})[etag] = [order["hash_id"] for order in orders]

    def stop(self, timeout: float = 60.0) -> None:
        """Scan a last time and stop."""
        self.done.set()
        self.join(timeout)


def is_part(key: str) -> bool:
    """A durable export's part object (under a hidden folder), not a final one."""
    return any(folder.startswith(".") for folder in key.split("/")[:-1])


def seed_demand_lines(stack: Any, first: date, days: int, lines_per_day: int, seed: int = 7) -> set[str]:
    """Plan ``lines_per_day`` demand lines per day in the ERP; their codes. One connection, one executemany: at
    1,000 lines a day a connection per row took minutes. A line already planned (same code) is kept."""
    rng = random.Random(seed)
    lines = [demand_line(first + timedelta(days=d), n, rng) for d in range(days) for n in range(1, lines_per_day + 1)]
    marks = ", ".join(["%s"] * len(COLUMNS))
    insert = f"INSERT INTO demand_lines ({', '.join(COLUMNS)}) VALUES ({marks}) ON CONFLICT (line_code) DO NOTHING"
    with stack.erp_connection() as conn, conn.cursor() as cursor:
        cursor.execute(DEMAND_LINES_TABLE)
        cursor.executemany(insert, [tuple(line[c] for c in COLUMNS) for line in lines])
    return {line["line_code"] for line in lines}


def edits(stack: Any) -> list[dict[str, Any]]:
    """Every order the sandbox ever edited: hash_id, kind, updated_at (current version), edit_count, pending_edit."""
    answer: list[dict[str, Any]] = stack.sandbox.admin("GET", "/_sandbox/edits")
    return answer


def pending_edits_since(stack: Any, since: datetime) -> set[tuple[str, str]]:
    """(hash ID, version) of every sale order edit not yet seen whose version is at or after ``since``."""
    return {
        (edit["hash_id"], edit["updated_at"])
        for edit in edits(stack)
        if edit["pending_edit"] and edit["kind"] == "sale" and _instant(edit["updated_at"]) >= since
    }


def accepted_orders(stack: Any, day: date) -> list[str]:
    """The hash IDs of the sale orders accepted on ``day``, in creation order: what its export must hold."""
    start = datetime(day.year, day.month, day.day)
    orders = stack.sandbox.admin(
        "GET",
        "/_sandbox/orders",
        params={
            "from": start.isoformat() + "Z",
            "to": (start + timedelta(days=1)).isoformat() + "Z",
            "kind": "sale",
            "status": "accepted",
            "fields": "hash_id",
        },
    )
    return [order["hash_id"] for order in orders]


def day_key(prefix: str, day: date) -> str:
    return f"{prefix}{day}.jsonl"


def _instant(value: Any) -> datetime:
    """A version as an aware UTC datetime, from the API's text or the ERP's TIMESTAMPTZ (or SQLite's text)."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace(" ", "T", 1))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _table_exists(stack: Any, name: str) -> bool:
    return bool(stack.erp("SELECT to_regclass(%s) IS NOT NULL", name)[0][0])


@dataclass
class Outcome:
    """What a check found: the counts for a line of figures, ``lost`` and ``duplicated``, and the evidence."""

    days: int
    orders_per_day: list[int]
    objects: int
    parts_seen: int
    erp_rows: int
    refs: int
    edits_seen: int
    edits_expected: int
    needs: int
    needs_expected: int
    stale_versions: int  # edited orders whose ERP row is not the sandbox's current version
    lost: int
    duplicated: int
    broken: list[str] = field(default_factory=list)  # S3 objects seen partial or not JSONL
    leftover_parts: list[str] = field(default_factory=list)  # part objects still there after the backfill
    replaced: dict[str, int] = field(default_factory=dict)  # key -> versions seen, for keys written more than once
    missing_days: list[date] = field(default_factory=list)  # days without an object
    stale_examples: list[str] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(self.orders_per_day)

    @property
    def ok(self) -> bool:
        """Nothing lost or duplicated, every S3 version complete and final, every edited order at its latest version."""
        return (self.lost, self.duplicated, self.stale_versions) == (0, 0, 0) and not (
            self.broken or self.leftover_parts or self.replaced or self.missing_days
        )

    def figures(self) -> str:
        per_day = f" (per day {min(self.orders_per_day)}-{max(self.orders_per_day)})" if self.orders_per_day else ""
        problems = "".join(
            f" {name}={value}"
            for name, value in (
                ("broken", self.broken),
                ("leftover_parts", self.leftover_parts),
                ("replaced", self.replaced),
                ("missing_days", [str(day) for day in self.missing_days]),
                ("stale", self.stale_examples),
            )
            if value
        )
        return (
            f"orders={self.orders}{per_day} objects={self.objects} parts_seen={self.parts_seen}"
            f" erp_rows={self.erp_rows} refs={self.refs} edits_seen={self.edits_seen}/{self.edits_expected}"
            f" needs={self.needs}/{self.needs_expected} stale_versions={self.stale_versions}"
            f" lost={self.lost} duplicated={self.duplicated}{problems}"
        )


@dataclass
class World:
    """What a backfill of the seller and buyer DAGs from ``first_day`` must achieve, snapshotted before it starts.

    ``expected_edits``: the sale order edits pending inside the seller's lookback of ``first_day``; every one must
    be applied in the ERP once and marked seen. ``demand_codes``: the demand lines planned for the buyer's days.
    ``erp_before`` and ``needs_before``: what the ERP and Consentio already held (an earlier scenario's days on the
    same stack), so this check neither counts them as duplicates nor requires them.
    """

    first_day: date
    days: int
    expected_edits: set[tuple[str, str]]
    demand_codes: set[str]
    erp_before: set[str] = field(default_factory=set)
    needs_before: set[str] = field(default_factory=set)
    prefix: str = ORDERS_PREFIX

    @classmethod
    def before_backfill(
        cls,
        stack: Any,
        first_day: date,
        days: int,
        demand_lines_per_day: int,
        *,
        prefix: str = ORDERS_PREFIX,
        edit_lookback: timedelta = EDIT_LOOKBACK,
        seed: int = 7,
    ) -> World:
        """Snapshot the pending edits and what is already loaded, and plan the demand lines of ``days`` days."""
        since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) - edit_lookback
        expected_edits = pending_edits_since(stack, since)
        erp_before = (
            {hash_id for (hash_id,) in stack.erp("SELECT hash_id FROM erp_orders")}
            if _table_exists(stack, "erp_orders")
            else set()
        )
        needs_before = {need["code"] for need in stack.sandbox.admin("GET", "/_sandbox/purchase-needs")}
        demand_codes = seed_demand_lines(stack, first_day, days, demand_lines_per_day, seed)
        return cls(first_day, days, expected_edits, demand_codes, erp_before, needs_before, prefix)

    def day_list(self, days: int | None = None) -> list[date]:
        return [self.first_day + timedelta(days=offset) for offset in range(days or self.days)]

    def check(self, stack: Any, watcher: BucketWatcher, *, days: int | None = None) -> Outcome:
        """Compare S3, the ERP and Consentio with the ground truth, over ``days`` days from ``first_day`` (default
        the world's; more when the seller was backfilled further than the buyer). Stop the watcher first."""
        all_days = self.day_list(days)
        truth = {day: accepted_orders(stack, day) for day in all_days}

        # S3: one object per day, exactly that day's accepted orders; every version ever seen was complete and final.
        # The exports are durable (retries, Airflow 3.3): each removed its parts once its object was written.
        leftover_parts = [key for key, _ in watcher.listing() if is_part(key)]
        replaced = {key: len(versions) for key, versions in watcher.versions.items() if len(versions) > 1}
        objects = {
            day: next(iter(watcher.versions[day_key(self.prefix, day)].values()))
            for day in all_days
            if day_key(self.prefix, day) in watcher.versions
        }
        lost = sum(len(set(truth[day]) - set(objects.get(day, []))) for day in all_days)
        in_objects = Counter(hash_id for hash_ids in objects.values() for hash_id in hash_ids)
        duplicated = sum(count - 1 for count in in_objects.values()) + sum(
            len(set(objects.get(day, [])) - set(truth[day])) for day in all_days
        )

        # ERP: each order once, with its ERP number pushed back to Consentio, and at its latest version.
        erp_rows, applied_rows = stack.erp_many(
            [
                ("SELECT hash_id, erp_number, updated_at FROM erp_orders", ()),
                ("SELECT hash_id, updated_at FROM erp_order_edits", ()),
            ],
        )
        expected_orders = {hash_id for day in all_days for hash_id in truth[day]}
        loaded = {hash_id: erp_number for hash_id, erp_number, _ in erp_rows}
        loaded_version = {hash_id: _instant(version) for hash_id, _, version in erp_rows}
        edited_hash_ids = {hash_id for hash_id, _ in self.expected_edits}
        lost += len(expected_orders - set(loaded))
        duplicated += (
            len(erp_rows) - len(loaded) + len(set(loaded) - expected_orders - edited_hash_ids - self.erp_before)
        )
        references = stack.sandbox.admin("GET", "/_sandbox/state")["external_refs"]
        refs = sum(
            1
            for hash_id in expected_orders
            if references.get(hash_id) == {"external_id": loaded.get(hash_id), "external_status": "imported"}
        )
        lost += len(expected_orders) - refs

        # Edits: every pending edit inside the lookback applied once in the ERP and marked seen; and every edited
        # order the ERP holds is at the sandbox's current version (the newest edit won, not an older one).
        applied = Counter((hash_id, str(version)) for hash_id, version in applied_rows)
        edited_now = edits(stack)
        still_pending = {edit["hash_id"] for edit in edited_now if edit["pending_edit"]}
        edits_seen = sum(1 for edit in self.expected_edits if applied[edit] and edit[0] not in still_pending)
        lost += len(self.expected_edits) - edits_seen
        stale = [
            f"{edit['hash_id']}: ERP {loaded_version[edit['hash_id']]:%Y-%m-%dT%H:%M:%SZ}, sandbox {edit['updated_at']}"
            for edit in edited_now
            if edit["hash_id"] in loaded_version
            and (edit["hash_id"] in edited_hash_ids or not edit["pending_edit"])
            and loaded_version[edit["hash_id"]] != _instant(edit["updated_at"])
        ]

        # Purchase needs: exactly the planned demand lines.
        needs = stack.sandbox.admin("GET", "/_sandbox/purchase-needs")
        need_codes = Counter(need["code"] for need in needs if need["code"] not in self.needs_before)
        lost += len(self.demand_codes - set(need_codes) - self.needs_before)
        duplicated += sum(count - 1 for count in need_codes.values()) + len(set(need_codes) - self.demand_codes)

        return Outcome(
            days=len(all_days),
            orders_per_day=[len(truth[day]) for day in all_days],
            objects=len(objects),
            parts_seen=len(watcher.parts_seen),
            erp_rows=len(erp_rows),
            refs=refs,
            edits_seen=edits_seen,
            edits_expected=len(self.expected_edits),
            needs=len(needs),
            needs_expected=len(self.demand_codes | self.needs_before),
            stale_versions=len(stale),
            lost=lost,
            duplicated=duplicated,
            broken=list(watcher.broken),
            leftover_parts=leftover_parts,
            replaced=replaced,
            missing_days=[day for day in all_days if day not in objects],
            stale_examples=stale[:5],
        )
