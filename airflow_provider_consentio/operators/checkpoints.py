"""Durable long exports: completed sub-windows survive a dead worker, and the retried attempt resumes after them.

Airflow 3.3's task state store (``context["task_state_store"]``) outlives an attempt; XComs do not (they are cleared
when an attempt starts). A windowed export (orders, changed products) writes its sub-windows in parts, hidden
beside the final file (``.<name>.parts-<job>/000001.jsonl``, each written atomically), and after each part records
in the store how far it got. A retried attempt of the same task instance finds that record, checks it describes
the same export (window, resource, kind, statuses, path) and continues after the last completed part; at the end
the parts are joined into the final file in one atomic write, so the final path only ever holds the whole, exact
file. Before 3.3 there is no store: the export runs as before (one atomic write, a retry starts from zero) and
says so in its log.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any

from airflow_provider_consentio.operators._common import Logger, plural

STATE_KEY = "consentio_export_checkpoint"
PERIODS_KEY = "consentio_export_by_period_checkpoint"


def job_id(job: Mapping[str, Any]) -> str:
    """A short fingerprint of what an export is asked to do: a checkpoint resumes only the same export."""
    return hashlib.sha256(json.dumps(dict(job), sort_keys=True, default=str).encode()).hexdigest()[:16]


def task_state_store(context: Mapping[str, Any], log: Logger) -> Any:
    """This task instance's state store, or None (with a warning) where Airflow has none (before 3.3)."""
    store = context.get("task_state_store")
    if store is None:
        log.warning(
            "This Airflow has no task state store (new in 3.3): the export is not durable, a retry starts over."
        )
    return store


@dataclass(frozen=True)
class Checkpoint:
    """How far an export got: [start, done_until) is written, in ``parts`` part files, ``exported`` records."""

    job: str
    done_until: str
    last_lower: str
    exported: int
    parts: int
    window_seconds: float


class SwitchableStream:
    """The stream the export loop writes to; its target changes at each part boundary."""

    def __init__(self) -> None:
        self.target: IO[bytes] | None = None

    def write(self, data: bytes) -> int:
        assert self.target is not None
        return self.target.write(data)


class ExportCheckpoints:
    """The parts and the task state store record of one export of one task instance."""

    def __init__(self, store: Any, final_path: Any, job: Mapping[str, Any], interval: float, log: Logger):
        from airflow_provider_consentio.operators.storage import as_storage_path

        self.store = store
        self.final = as_storage_path(final_path)
        self.job = job_id(job)
        self.interval = interval
        self.log = log
        self.parts_dir = self.final.parent / f".{self.final.name}.parts-{self.job}"

    @classmethod
    def for_task(
        cls, context: Mapping[str, Any], final_path: Any, job: Mapping[str, Any], interval: float, log: Logger
    ) -> ExportCheckpoints | None:
        """The checkpoints of this task instance, or None where Airflow keeps no task state (before 3.3)."""
        store = task_state_store(context, log)
        return cls(store, final_path, job, interval, log) if store is not None else None

    def resume(self) -> Checkpoint | None:
        """The checkpoint a previous attempt left for this same export, if its parts are all there."""
        stored = self.store.get(STATE_KEY)
        if isinstance(stored, dict) and stored.get("job") == self.job:
            checkpoint = Checkpoint(**stored)
            if all(self.part_path(number).exists() for number in range(1, checkpoint.parts + 1)):
                self.log.info(
                    "Resuming after the checkpoint of a previous attempt: [.., %s) done, %s in %s",
                    checkpoint.done_until,
                    plural(checkpoint.exported, "record"),
                    plural(checkpoint.parts, "part"),
                )
                return checkpoint
            self.log.warning("A checkpoint was stored but some of its parts are gone: starting over")
        elif stored is not None:
            self.log.info("The stored checkpoint is of another export (window, kind or path changed): starting over")
        self._remove_parts()
        return None

    def part_path(self, number: int) -> Any:
        return self.parts_dir / f"{number:06d}.jsonl"

    def write_parts(
        self,
        sub_windows: Iterator[tuple[datetime, datetime, int]],
        stream: SwitchableStream,
        resumed: Checkpoint | None,
        window_seconds: Any,
    ) -> Iterator[tuple[datetime, datetime, int]]:
        """Drive the export loop, cutting a part (and recording a checkpoint) every ``interval`` seconds."""
        from airflow_provider_consentio.operators.storage import atomic_writer

        parts = resumed.parts if resumed else 0
        finished = False
        while not finished:
            parts += 1
            cut_at = time.monotonic() + self.interval
            last = None
            with atomic_writer(self.part_path(parts)) as part:
                stream.target = part
                for last in sub_windows:
                    yield last
                    if time.monotonic() >= cut_at:
                        break
                else:
                    finished = True
            if last is None:  # nothing left after the previous part: drop the empty one
                self.part_path(parts).unlink(missing_ok=True)
                parts -= 1
                break
            lower, upper, exported = last
            checkpoint = Checkpoint(self.job, upper.isoformat(), lower.isoformat(), exported, parts, window_seconds())
            self.store.set(STATE_KEY, asdict(checkpoint))
            self.log.info(
                "Checkpoint: [.., %s) done, %s in %s",
                checkpoint.done_until,
                plural(exported, "record"),
                plural(parts, "part"),
            )
        self.parts = parts

    def finish(self) -> None:
        """Join the parts into the final file (one atomic write), then forget them."""
        from airflow_provider_consentio.operators.storage import atomic_writer

        with atomic_writer(self.final) as out:
            for number in range(1, self.parts + 1):
                with self.part_path(number).open("rb") as part:
                    shutil.copyfileobj(part, out, length=1024 * 1024)
        self._remove_parts()
        self.store.delete(STATE_KEY)

    def abandon(self) -> None:
        """Remove the parts and the checkpoint: no attempt will resume from them."""
        self._remove_parts()
        self.store.delete(STATE_KEY)

    def _remove_parts(self) -> None:
        if self.parts_dir.exists():
            self.parts_dir.fs.rm(self.parts_dir.path, recursive=True)


class PeriodCheckpoints:
    """The export by period's checkpoint: how many periods (files, each written atomically) are done, and counts."""

    def __init__(self, store: Any, job: Mapping[str, Any], log: Logger):
        self.store, self.job, self.log = store, job_id(job), log

    @classmethod
    def for_task(cls, context: Mapping[str, Any], job: Mapping[str, Any], log: Logger) -> PeriodCheckpoints | None:
        store = task_state_store(context, log)
        return cls(store, job, log) if store is not None else None

    def resume(self) -> list[int]:
        """The order counts of the periods a previous attempt of this same export completed (oldest first)."""
        stored = self.store.get(PERIODS_KEY)
        if isinstance(stored, dict) and stored.get("job") == self.job:
            counts = list(stored["counts"])
            self.log.info(
                "Resuming after the checkpoint of a previous attempt: %d periods already written", len(counts)
            )
            return counts
        return []

    def save(self, counts: list[int]) -> None:
        self.store.set(PERIODS_KEY, {"job": self.job, "counts": counts})

    def forget(self) -> None:
        self.store.delete(PERIODS_KEY)
