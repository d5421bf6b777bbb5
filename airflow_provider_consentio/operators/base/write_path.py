"""The write path every write operator takes, as plain functions (no Airflow): the operators' base
(operators/_write.py) feeds it the loaded records and the send step of the resource it writes.

load -> keep the latest record per key (logged) -> validate -> send in batches with concurrency -> attribute the
API's per-record rejections to keys -> apply max_rejected -> summary. Deduplicating BEFORE validation matters: after
it, an earlier valid version would be sent when the last one is invalid and skipped, i.e. data the source itself
has replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError
from airflow_provider_consentio.operators.base.common import (
    ConsentioInvalidRecordsError,
    Logger,
    ProgressLog,
    check_choice,
    listing,
    plural,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_provider_consentio.models import BatchResult, RecordError

ON_INVALID_POLICIES = ("fail", "skip")

T = TypeVar("T")


@dataclass(frozen=True)
class WritePolicy:
    """How a write operator sends: batch size, concurrency, what to do with invalid records and API rejections."""

    batch_size: int
    concurrency: int = 1
    on_invalid: str = "fail"
    max_rejected: int = 0

    def __post_init__(self) -> None:
        check_choice("on_invalid", self.on_invalid, ON_INVALID_POLICIES)
        if self.batch_size < 1 or self.concurrency < 1:
            raise ConsentioConfigError(
                f"batch_size and concurrency must be at least 1 (got {self.batch_size}, {self.concurrency})"
            )
        if self.max_rejected < 0:
            raise ConsentioConfigError(f"max_rejected must not be negative, got {self.max_rejected}")


@dataclass
class WriteResult:
    """What the write path did; ``rejected`` holds the API's per-record rejections, each attributed to its key."""

    source: str
    read: int
    sent: list[Any]
    invalid: list[str]
    saved: list[Any]
    rejected: list[RecordError]
    batches: int

    def counts(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "submitted": len(self.sent),
            "rejected_count": len(self.rejected),
            "invalid_count": len(self.invalid),
            "batches": self.batches,
        }


def write_records(
    records: Sequence[Any],
    *,
    source: str,
    what: str,
    model: type[BaseModel],
    key_field: str,
    send: Callable[[Sequence[Any]], BatchResult],
    policy: WritePolicy,
    log: Logger,
    hold_back: Callable[[list[Any]], list[Any]] | None = None,
) -> WriteResult:
    """Take loaded ``records`` down the write path (see above) and return what happened.

    :param what: the records' name in messages, plural (``"purchase needs"``).
    :param send: sends one batch of validated models; its per-record errors are collected, not raised.
    :param hold_back: given the validated models, returns those to send (e.g. leaves out orders edited again).
    :raises ConsentioInvalidRecordsError: invalid records with ``on_invalid="fail"``; nothing was sent (no retry).
    :raises ConsentioError: more API rejections than ``max_rejected``, or batches that failed after retries.
    """
    latest = latest_per_key(records, key_field, log)
    valid, invalid = validate_input(
        model, latest, key_field, on_invalid=policy.on_invalid, source=source, total=len(records), log=log
    )
    if hold_back is not None:
        valid = hold_back(valid)
    log.info("Sending %d %s from %s", len(valid), what, source)
    outcome = send_batches(
        valid, send, batch_size=policy.batch_size, concurrency=policy.concurrency, key_field=key_field, log=log
    )
    rejected = attribute_rejections(outcome.rejected, {getattr(item, key_field) for item in valid})
    if len(rejected) > policy.max_rejected:
        raise ConsentioError(
            f"Consentio rejected {len(rejected)} of {len(valid)} {what} (max_rejected={policy.max_rejected}); "
            f"the other {len(outcome.saved)} were saved:\n"
            + listing([f"{error.key or '?'}: {error.reason}" for error in rejected], "records")
        )
    result = WriteResult(source, len(records), valid, invalid, outcome.saved, rejected, outcome.batches)
    log.info("%s: %s", what.capitalize(), result.counts())
    return result


def latest_per_key(records: Sequence[Any], key_field: str, log: Logger) -> list[Any]:
    """The last occurrence of each key, the earlier ones dropped (logged), survivors where they last occurred.

    Records without a usable (string) key are kept for validation to report.
    """
    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    for position, record in enumerate(records):
        key = _key_of(record, key_field)
        if key is not None:
            last[key] = position
            counts[key] = counts.get(key, 0) + 1
    repeated = {key: count for key, count in counts.items() if count > 1}
    if not repeated:
        return list(records)
    shown = ", ".join(f"{key} (x{count})" for key, count in list(repeated.items())[:20])
    log.warning(
        "%d %s value(s) occur more than once in the input; the last occurrence of each is sent: %s%s",
        len(repeated),
        key_field,
        shown,
        " ..." if len(repeated) > 20 else "",
    )
    keep = set(last.values())
    return [record for position, record in enumerate(records) if position in keep or _key_of(record, key_field) is None]


def _key_of(record: Any, key_field: str) -> str | None:
    key = record.get(key_field) if isinstance(record, Mapping) else None
    return key if isinstance(key, str) else None


def validate_input(
    model: type[BaseModel],
    records: Sequence[Any],
    key_field: str,
    *,
    on_invalid: str,
    source: str,
    total: int,
    log: Logger,
) -> tuple[list[Any], list[str]]:
    """Validate every record before anything is sent; return the valid models and one line per invalid record.

    Read-only and unknown fields are left out of the bodies (models/write_fields.py), named in one logged line.

    With ``on_invalid="fail"`` any invalid record raises :class:`ConsentioInvalidRecordsError` listing all of them.
    """
    from airflow_provider_consentio.models import validate_records
    from airflow_provider_consentio.models.write_fields import DroppedFields

    dropped = DroppedFields()
    valid, problems = validate_records(model, records, key_field, source="record", dropped=dropped)
    if dropped:
        # One line per run, however many records hold them: an exported file sent back has them in every record.
        log.info(
            "Not sent (Consentio sets them, or does not know them; the count is of records): %s", dropped.describe()
        )
    problem_lines = [str(problem) for problem in problems]
    if problems:
        message = f"{len(problems)} of {total} records from {source} are invalid:\n{listing(problem_lines, 'records')}"
        if on_invalid == "fail":
            raise ConsentioInvalidRecordsError(
                f"{message}\nNothing was sent. Fix them, or set on_invalid='skip' to send the valid ones.",
                problem_lines,
            )
        log.warning("%s\nSending the %d valid records (on_invalid='skip').", message, len(valid))
    return valid, problem_lines


def attribute_rejections(errors: Sequence[RecordError], keys: set[str]) -> list[RecordError]:
    """Each API rejection with its key matched against the keys sent (:meth:`RecordError.parse`)."""
    from airflow_provider_consentio.models import RecordError

    return [RecordError.parse(str(error), keys) for error in errors]


@dataclass
class BatchOutcome:
    saved: list[Any] = field(default_factory=list)
    rejected: list[RecordError] = field(default_factory=list)
    batches: int = 0


def send_batches(
    items: Sequence[T],
    send: Callable[[Sequence[T]], BatchResult],
    *,
    batch_size: int,
    concurrency: int,
    key_field: str,
    log: Logger,
) -> BatchOutcome:
    """Send ``items`` in batches, up to ``concurrency`` at a time; collect what was saved and what was rejected.

    Every batch is attempted even if one fails, so one bad batch does not hide the state of the others; then the
    first failure is raised with the keys of every failed batch.
    """
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    outcome = BatchOutcome(batches=len(batches))
    failures: list[tuple[Sequence[T], ConsentioError]] = []
    progress = ProgressLog()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="consentio-batch") as pool:
        futures = {pool.submit(send, batch): batch for batch in batches}
        for done, future in enumerate(as_completed(futures), start=1):
            batch = futures[future]
            try:
                result = future.result()
            except ConsentioError as exc:
                failures.append((batch, exc))
                continue
            outcome.saved.extend(result.saved)
            outcome.rejected.extend(result.errors)
            if progress.due(done / len(batches)):
                sent = min(done * batch_size, len(items))
                log.info(
                    "Batch %d/%d done: %s sent, %d rejected so far (%.0f records/s)",
                    done,
                    len(batches),
                    plural(sent, "record"),
                    len(outcome.rejected),
                    progress.rate(sent),
                )
    if failures:
        described = [
            f"{getattr(batch[0], key_field)} .. {getattr(batch[-1], key_field)} ({len(batch)} records): {exc}"
            for batch, exc in failures
        ]
        raise ConsentioError(
            f"{len(failures)} of {len(batches)} batches failed after retries (the others were saved; "
            f"re-running is safe, {key_field} is the idempotency key):\n{listing(described, 'batches')}"
        ) from failures[0][1]
    return outcome
