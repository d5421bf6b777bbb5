"""What the client and the operators did, as Airflow's own metrics (StatsD, Datadog or OpenTelemetry: whichever the
deployment's ``[metrics]`` section switches on; none by default). The README's "Metrics" section lists them.

Names follow Airflow's (``ti.finish``, ``dag_processing.processes``): dotted, lower case, a ``consentio.`` prefix,
and the variable parts as tags, never in the name. One call per request, retry, wait or batch of records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_consentio.client.observer import ClientObserver

REQUESTS = "consentio.api.requests"
REQUEST_DURATION = "consentio.api.request_duration"
RATE_LIMITED = "consentio.api.rate_limited"
RETRIES = "consentio.api.retries"
WAIT = "consentio.api.wait"
BYTES_RECEIVED = "consentio.api.bytes_received"
BYTES_SENT = "consentio.api.bytes_sent"
RECORDS_READ = "consentio.records.read"
RECORDS_WRITTEN = "consentio.records.written"

# StatsD with InfluxDB-style tags puts them in the name, where only these characters pass Airflow's check.
_NOT_IN_TAG = re.compile(r"[^A-Za-z0-9_./-]")

log = logging.getLogger(__name__)


def incr(metric: str, count: int, tags: Mapping[str, Any]) -> None:
    _emit("incr", metric, count, tags)


def timing(metric: str, seconds: float, tags: Mapping[str, Any]) -> None:
    _emit("timing", metric, timedelta(seconds=seconds), tags)


def _emit(kind: str, metric: str, value: Any, tags: Mapping[str, Any]) -> None:
    from airflow_provider_consentio.version_compat import airflow_stats

    try:
        getattr(airflow_stats(), kind)(metric, value, tags={key: _tag(tag) for key, tag in tags.items()})
    except Exception:
        # A metrics backend that misbehaves must not fail an export that succeeded.
        log.debug("Could not emit %s", metric, exc_info=True)


def _tag(value: Any) -> str:
    return _NOT_IN_TAG.sub("_", str(value))


def status_class(status: int | None) -> str:
    """``2xx``, ``4xx``, ``5xx``; ``error`` for an attempt that got no answer."""
    return f"{status // 100}xx" if status is not None else "error"


class StatsObserver(ClientObserver):
    """Forwards a client's requests, retries and waits to Airflow's metrics, tagged with ``tags`` (the connection ID;
    the DAG and task IDs when a task made the client)."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        self.tags = dict(tags)

    def on_request(
        self, endpoint: str, method: str, status: int | None, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        tags = {**self.tags, "endpoint": endpoint, "method": method, "status": status_class(status)}
        incr(REQUESTS, 1, tags)
        timing(REQUEST_DURATION, seconds, tags)
        if status == 429:
            incr(RATE_LIMITED, 1, tags)
        if bytes_in:
            incr(BYTES_RECEIVED, bytes_in, tags)
        if bytes_out:
            incr(BYTES_SENT, bytes_out, tags)

    def on_retry(self, endpoint: str, method: str, reason: str) -> None:
        incr(RETRIES, 1, {**self.tags, "endpoint": endpoint, "method": method, "reason": reason})

    def on_wait(self, seconds: float, reason: str) -> None:
        timing(WAIT, seconds, {**self.tags, "reason": reason})
