"""Pieces the operators share. Heavy imports (httpx, pydantic models) stay inside functions: DAG files import the
operator modules at parse time, and parsing must stay as fast as a DAG of EmptyOperators."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError, ConsentioValidationError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_provider_consentio.hooks.consentio import ConsentioHook
    from airflow_provider_consentio.models import BatchResult, RecordError

ON_INVALID_POLICIES = ("fail", "skip")
# How many problems/rejections a message or an XCom summary lists before it only counts.
LISTED_AT_MOST = 100

T = TypeVar("T")


class Logger(Protocol):
    """What these helpers need of a logger (the stdlib's or Airflow's structlog-based task logger)."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


class ConsentioOperator(BaseOperator):
    """Base of the Consentio operators: owns the connection ID and the hook."""

    def __init__(self, *, consentio_conn_id: str = "consentio_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consentio_conn_id = consentio_conn_id

    @cached_property
    def hook(self) -> ConsentioHook:
        from airflow_provider_consentio.hooks.consentio import ConsentioHook

        return ConsentioHook(self.consentio_conn_id, **self.hook_options())

    def hook_options(self) -> dict[str, Any]:
        return {}

    def record_asset_event(self, context: Mapping[str, Any], extra: dict[str, Any]) -> None:
        """Attach the run's facts (workspace, path, count, window) to the event of every Asset this task produces."""
        from airflow.sdk import Asset

        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = {
                    "workspace_id": self.hook.get_conn().settings.workspace_id,
                    **extra,
                }


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConsentioConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def listing(items: Sequence[Any], what: str) -> str:
    """Bullet lines for the first LISTED_AT_MOST items, and how many were left out."""
    lines = [f"  - {item}" for item in items[:LISTED_AT_MOST]]
    if len(items) > LISTED_AT_MOST:
        lines.append(f"  ... and {len(items) - LISTED_AT_MOST} more {what}")
    return "\n".join(lines)


def validate_input(
    model: type[BaseModel],
    records: Sequence[Any],
    key_field: str,
    *,
    on_invalid: str,
    source: str,
    log: Logger,
) -> tuple[list[Any], list[str]]:
    """Validate every record before anything is sent, then drop duplicate keys (the last occurrence wins).

    Returns the records to send and one problem line per invalid record. With ``on_invalid="fail"`` any invalid
    record raises :class:`ConsentioValidationError` listing all of them.
    """
    from airflow_provider_consentio.models import validate_records

    valid, problems = validate_records(model, records, key_field, source="record")
    problem_lines = [str(problem) for problem in problems]
    if problems:
        message = (
            f"{len(problems)} of {len(records)} records from {source} are invalid:\n{listing(problem_lines, 'records')}"
        )
        if on_invalid == "fail":
            raise ConsentioValidationError(
                f"{message}\nNothing was sent. Fix them, or set on_invalid='skip' to send the valid ones.",
                problem_lines,
            )
        log.warning("%s\nSending the %d valid records (on_invalid='skip').", message, len(valid))
    return last_wins(valid, key_field, log), problem_lines


def last_wins(items: list[Any], key_field: str, log: Logger) -> list[Any]:
    latest: dict[Any, Any] = {}
    repeated: dict[Any, int] = {}
    for item in items:
        key = getattr(item, key_field)
        if key in latest:
            repeated[key] = repeated.get(key, 1) + 1
            del latest[key]  # keep the surviving record at the position of its last occurrence
        latest[key] = item
    if repeated:
        shown = ", ".join(f"{key} (x{count})" for key, count in list(repeated.items())[:20])
        log.warning(
            "%d %s value(s) occur more than once in the input; the last occurrence of each is sent: %s%s",
            len(repeated),
            key_field,
            shown,
            " ..." if len(repeated) > 20 else "",
        )
    return list(latest.values())


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
    if batch_size < 1 or concurrency < 1:
        raise ConsentioConfigError(f"batch_size and concurrency must be at least 1 (got {batch_size}, {concurrency})")
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    outcome = BatchOutcome(batches=len(batches))
    failures: list[tuple[Sequence[T], ConsentioError]] = []
    started = time.monotonic()
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
            if done == len(batches) or done % max(1, len(batches) // 20) == 0:
                elapsed = max(time.monotonic() - started, 1e-9)
                sent = min(done * batch_size, len(items))
                log.info(
                    "Batch %d/%d done: %d records sent, %d rejected so far (%.0f records/s)",
                    done,
                    len(batches),
                    sent,
                    len(outcome.rejected),
                    sent / elapsed,
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


def as_list(value: Any, name: str) -> list[Any]:
    """A list from a single value, a list/tuple, or None (empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ConsentioConfigError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
