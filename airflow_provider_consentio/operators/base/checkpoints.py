"""Durable long exports: completed sub-windows survive a dead worker, and the retried attempt resumes after them.

Airflow 3.3's task state store (``context["task_state_store"]``) outlives an attempt; XComs do not (they are cleared
when an attempt starts). A windowed export (orders, changed products) writes its sub-windows in parts, hidden
beside the final file (``.<name>.parts-<job>/000001.jsonl``, each written atomically), and after each part records
in the store how far it got: :class:`CheckpointedFile` is the export loop's sink that does it, on the loop's
"window written" events. A retried attempt of the same task instance finds that record, checks it describes
the same export (window, resource, kind, statuses, path) and continues after the last completed part; at the end
the parts are joined into the final file in one atomic write, so the final path only ever holds the whole, exact
file. Before 3.3 there is no store: the export runs as before (one atomic write, a retry starts from zero) and
says so in its log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_consentio.operators.base.common import Logger, plural
from airflow_provider_consentio.operators.base.export_loop import ExportResult, OneFile, StartAt, WindowWritten
from airflow_provider_consentio.operators.base.windows import parse_instant

if TYPE_CHECKING:
    from airflow_provider_consentio.operators.base.export_loop import Fetch
    from airflow_provider_consentio.resources import Resource

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


class ExportCheckpoints:
    """The parts and the task state store record of one export of one task instance."""

    def __init__(self, store: Any, final_path: Any, job: Mapping[str, Any], interval: float, log: Logger):
        from airflow_provider_consentio.operators.base.storage import as_storage_path

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

    def save(self, checkpoint: Checkpoint) -> None:
        self.store.set(STATE_KEY, asdict(checkpoint))
        self.log.info(
            "Checkpoint: [.., %s) done, %s in %s",
            checkpoint.done_until,
            plural(checkpoint.exported, "record"),
            plural(checkpoint.parts, "part"),
        )

    def join(self, parts: int) -> None:
        """Join the parts into the final file (one atomic write), then forget them."""
        from airflow_provider_consentio.operators.base.storage import atomic_writer, storage_errors

        with atomic_writer(self.final) as out:
            for number in range(1, parts + 1):
                with (
                    storage_errors("Reading the part", self.part_path(number)),
                    self.part_path(number).open("rb") as part,
                ):
                    shutil.copyfileobj(part, out, length=1024 * 1024)
        self._remove_parts()
        self.store.delete(STATE_KEY)

    def abandon(self) -> None:
        """Remove the parts and the checkpoint: no attempt will resume from them."""
        self._remove_parts()
        self.store.delete(STATE_KEY)

    def _remove_parts(self) -> None:
        from airflow_provider_consentio.operators.base.storage import storage_errors

        with storage_errors("Removing the parts", self.parts_dir):
            if self.parts_dir.exists():
                self.parts_dir.fs.rm(self.parts_dir.path, recursive=True)


class CheckpointedFile(OneFile):
    """The export's one file, written in parts: it receives the loop's "window written" events and, every
    ``interval`` seconds, closes the part being written and records the checkpoint; leaving it joins the parts
    into the final file. A retried attempt resumes after the checkpoint (:meth:`plan`)."""

    def __init__(
        self,
        checkpoints: ExportCheckpoints,
        resource: Resource,
        window_size: timedelta,
        *,
        retry_follows: bool,
    ) -> None:
        super().__init__(checkpoints.final, resource, window_size)
        self.checkpoints, self.retry_follows = checkpoints, retry_follows
        self.resumed: Checkpoint | None = None
        self.parts = 0
        self._windows_in_part = 0
        self._cut_at = 0.0

    def plan(self, start: datetime, end: datetime, fetch: Fetch) -> tuple[Sequence[tuple[datetime, datetime]], StartAt]:
        self.resumed = resumed = self.checkpoints.resume()
        if resumed is None:
            return super().plan(start, end, fetch)
        self.parts = resumed.parts
        done_until = parse_instant(resumed.done_until, "checkpoint")
        # The IDs the previous attempt wrote in its last sub-window (asked again: one request), to skip at its edge;
        # on at the window size it had settled on.
        try:
            last_window = fetch(parse_instant(resumed.last_lower, "checkpoint"), done_until)
        except BaseException:
            self._abandon_unless_retried()
            raise
        return [(done_until, end)], StartAt(
            exported=resumed.exported,
            window_size=timedelta(seconds=resumed.window_seconds),
            seen_before={record.keys.id for record in last_window},
        )

    def summary(
        self, result: ExportResult, fields: Mapping[str, Any], start: datetime, end: datetime
    ) -> dict[str, Any]:
        summary = super().summary(result, fields, start, end)
        if self.resumed:
            summary["resumed_from"] = self.resumed.done_until
        return summary

    def __enter__(self) -> CheckpointedFile:
        self._open_part()
        return self

    def window_written(self, event: WindowWritten) -> None:
        self._windows_in_part += 1
        if time.monotonic() >= self._cut_at:
            self._stack.close()
            self.checkpoints.save(
                Checkpoint(
                    self.checkpoints.job,
                    event.upper.isoformat(),
                    event.lower.isoformat(),
                    event.exported,
                    self.parts,
                    event.next_size.total_seconds(),
                )
            )
            self._open_part()

    def __exit__(self, *exc_info: Any) -> None:
        from airflow_provider_consentio.operators.base.storage import storage_errors

        try:
            self._stack.__exit__(*exc_info)
            if exc_info[0] is None:
                if not self._windows_in_part:  # nothing came after the last cut: drop the empty part
                    empty = self.checkpoints.part_path(self.parts)
                    with storage_errors("Removing the empty last part", empty):
                        empty.unlink(missing_ok=True)
                    self.parts -= 1
                self.checkpoints.join(self.parts)
        except BaseException:
            self._abandon_unless_retried()
            raise
        if exc_info[0] is not None:
            self._abandon_unless_retried()

    def _open_part(self) -> None:
        from airflow_provider_consentio.operators.base.storage import atomic_writer

        self.parts += 1
        self._windows_in_part = 0
        self._cut_at = time.monotonic() + self.checkpoints.interval
        self._stack = contextlib.ExitStack()
        self._out = self._stack.enter_context(atomic_writer(self.checkpoints.part_path(self.parts)))

    def _abandon_unless_retried(self) -> None:
        if not self.retry_follows:  # the last attempt: no retry will resume from its parts
            self.checkpoints.abandon()


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
