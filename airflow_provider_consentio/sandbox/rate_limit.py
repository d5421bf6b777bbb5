"""The sandbox's rate limit: a leaky bucket of ``capacity`` requests that leaks ``leak_rate`` requests a second.

Each Partner API request (the admin API is exempt) adds one to the bucket; a request that would overflow it is
answered 429 with a ``Retry-After`` (fractional seconds) saying when it would fit, and adds nothing. Off unless
``rate_limit`` is set (CLI ``--rate-limit``/``--rate-burst``, or ``POST /_sandbox/reset``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

PARTNER_PREFIX = "/v2/partner"


class LeakyBucket:
    def __init__(self, leak_rate: float, capacity: int):
        self.leak_rate = leak_rate
        self.capacity = capacity
        self._level = 0.0
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def admit(self) -> float | None:
        """None when the request fits (it is added), else the seconds until it would."""
        with self._lock:
            now = time.monotonic()
            self._level = max(0.0, self._level - (now - self._at) * self.leak_rate)
            self._at = now
            if self._level + 1 <= self.capacity:
                self._level += 1
                return None
            return (self._level + 1 - self.capacity) / self.leak_rate


class RateLimitMiddleware:
    """Pure ASGI middleware: answers 429 when the sandbox's bucket (``holder.rate_bucket``) is full."""

    def __init__(self, app: Any, holder: Any):
        self.app = app
        self.holder = holder

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        bucket: LeakyBucket | None = self.holder.rate_bucket
        if bucket is None or scope["type"] != "http" or not scope["path"].startswith(PARTNER_PREFIX):
            await self.app(scope, receive, send)
            return
        wait = bucket.admit()
        if wait is None:
            await self.app(scope, receive, send)
            return
        self.holder.stats.faults["rate_limited"] += 1
        body = json.dumps({"error": "rate_limited", "message": "rate limit exceeded"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", f"{wait:.3f}".encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
