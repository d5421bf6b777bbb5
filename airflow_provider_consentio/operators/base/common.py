"""Pieces the operators share. Heavy imports (httpx, pydantic models) stay inside functions: DAG files import the
operator modules at parse time, and parsing must stay as fast as a DAG of EmptyOperators."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import BaseOperator

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioValidationError
from airflow_provider_consentio.hooks.owner import ConsentioHookOwner
from airflow_provider_consentio.operators.base.lineage import LineageDataset, LineageMixin, api_dataset
from airflow_provider_consentio.version_compat import AirflowFailException

if TYPE_CHECKING:
    pass

# How many problems/rejections an error message or a log line lists before it only counts.
LISTED_AT_MOST = 100
# A write's XCom summary lists this many rejected and invalid records at the most; its counts count them all.
SUMMARY_LISTS_AT_MOST = 1000


class Logger(Protocol):
    """What these helpers need of a logger (the stdlib's or Airflow's structlog-based task logger)."""

    def info(self, event: Any, *args: Any, **kw: Any) -> Any: ...

    def warning(self, event: Any, *args: Any, **kw: Any) -> Any: ...


class ConsentioInvalidRecordsError(ConsentioValidationError, AirflowFailException):
    """Records refused before anything was sent. Fails the task without its retries: they would be refused again."""


class ConsentioOperator(ConsentioHookOwner, LineageMixin, BaseOperator):
    """Base of the Consentio operators: owns the connection ID and the hook, reports lineage."""

    def __init__(self, *, consentio_conn_id: str = "consentio_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consentio_conn_id = consentio_conn_id

    def api_dataset(self, resource: str, rows: int | None = None) -> LineageDataset:
        """The lineage dataset of one API resource (``orders/sale``...) of this task's workspace."""
        return api_dataset(self.hook.get_conn().settings, resource, rows)

    def count_records(self, metric: str, count: int, resource: str) -> None:
        """Add ``count`` records of ``resource`` to one of this task's record metrics (hooks/metrics.py)."""
        from airflow_provider_consentio.hooks.metrics import incr

        if count:
            incr(metric, count, {**self.metric_tags(), "resource": resource})

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


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 order``, ``2 orders``: counts in log lines read as a person would write them."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


class ProgressLog:
    """When a long operation logs its progress: every ``every_seconds`` or each ``step`` share of the work done.

    One line per unit is fine for 27 sub-windows and noise for 500; the final summary is the caller's to log.
    """

    def __init__(self, every_seconds: float = 5.0, step: float = 0.1) -> None:
        self.every_seconds, self.step = every_seconds, step
        self.started = self._last_time = time.monotonic()
        self._last_share = 0.0

    def due(self, share_done: float) -> bool:
        """Whether to log now, ``share_done`` (0..1) of the work being done; a True answer restarts both clocks."""
        now = time.monotonic()
        waited_long = now - self._last_time >= self.every_seconds
        if share_done >= 1.0 or waited_long or share_done - self._last_share >= self.step:
            self._last_time, self._last_share = now, share_done
            return True
        return False

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def rate(self, done: float) -> float:
        """``done`` per second since the start."""
        return done / max(self.elapsed(), 1e-9)


def as_list(value: Any, name: str) -> list[Any]:
    """A list from a single value, a list/tuple, or None (empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ConsentioConfigError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
