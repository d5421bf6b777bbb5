"""What the clients tell an observer about the requests they make: plain callbacks, no Airflow (the hook's observer
forwards them to Airflow's metrics, hooks/metrics.py).

Both twins call the same methods at the same points (client/base.py): one call per HTTP attempt, one per retry,
one per wait. Nothing is called per record, so an observer that does nothing costs nothing worth measuring.
"""

from __future__ import annotations

import re

# Why a client waited before sending, the ``reason`` of :meth:`ClientObserver.on_wait`.
WAIT_RETRY_AFTER = "retry_after"  # the server's Retry-After
WAIT_BACKOFF = "backoff"  # exponential backoff after a transient failure without Retry-After
WAIT_RATE_BUDGET = "rate_budget"  # the workspace's request budget had no request left

# The status of an attempt that got no HTTP answer (connection refused, timeout, dropped).
NO_ANSWER = "error"

# A path segment that names one record (an order's hash ID) would make every order an endpoint of its own.
_RECORD_IN_PATH = re.compile(r"^/order/[^/]+/prepare$")


class ClientObserver:
    """Told of every attempt, retry and wait of a client; this base does nothing with it (the default)."""

    def on_request(
        self, endpoint: str, method: str, status: int | None, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        """One HTTP attempt ended: its answer's ``status`` (None: no answer), how long it took, the bytes of the
        answer as received and of the request's body."""

    def on_retry(self, endpoint: str, method: str, reason: str) -> None:
        """A call is sent again: ``reason`` is the failed attempt's status (``429``, ``503``, ``401``) or ``error``."""

    def on_wait(self, seconds: float, reason: str) -> None:
        """The client is about to wait ``seconds`` before sending (``retry_after``, ``backoff``, ``rate_budget``)."""


NO_OBSERVER = ClientObserver()


def route(path: str, workspace_id: int) -> str:
    """A request path as a low-cardinality name: ``/{workspace_id}/order`` -> ``/order``; a hash ID -> ``*``."""
    prefix = f"/{workspace_id}"
    if path == prefix or path.startswith(prefix + "/"):
        path = path[len(prefix) :] or "/"
    if _RECORD_IN_PATH.match(path):
        return "/order/*/prepare"
    return path
