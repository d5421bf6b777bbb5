"""One request budget per workspace: a rate and a burst that every client of a process draws from, shared across
processes and machines through a Redis store when one is named.

The arithmetic is pyrate-limiter's GCRA (a leaky bucket kept as one timestamp, the model of the API's own limit),
in memory or in one Redis hash updated atomically by a Lua script. pyrate-limiter and redis come with the
``rate-limit`` extra and are imported only when a budget is configured.

A store that cannot be reached never fails a request: the budget falls back to this process's own bucket (with a
warning), counted as full since the shared one's level is unknown, and tries the store again after a pause that
starts short and doubles; no request goes before that first retry, which a restart is usually over by. When the
store answers again, the units this process spent meanwhile are charged to it first, so a store that restarted
empty does not hand out a fresh burst on top of what was just sent. A process that never saw the store down finds
the state gone although it drew from it too recently for it to have expired: it counts that bucket as full too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_consentio.errors import ConsentioConfigError

log = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'airflow-provider-consentio[rate-limit]'"
# How long a store that failed is left alone before it is tried again: STORE_FIRST_RETRY, doubling up to
# STORE_RETRY_AFTER.
STORE_FIRST_RETRY = 0.25
STORE_RETRY_AFTER = 5.0
# A store slower than this is treated as down: the budget exists to keep requests moving.
STORE_TIMEOUT = 0.5
# pyrate-limiter's Rate counts whole units per interval in ms: 1000 units keep fractional rates (0.5/s) exact.
_UNITS = 1000


@dataclass(frozen=True)
class RateLimit:
    """Requests per second and a burst (requests that may go at once after a quiet spell).

    :param store_url: ``redis://`` or ``rediss://`` URL of a store shared by every process using this budget;
        None keeps the budget to this process.
    """

    per_second: float
    burst: int
    store_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.per_second, bool) or not self.per_second > 0:
            raise ConsentioConfigError(f"the rate limit must be a positive number of requests/s, got {self.per_second}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ConsentioConfigError(f"the rate burst must be a whole number of requests >= 1, got {self.burst!r}")
        if self.store_url is not None and urlsplit(self.store_url).scheme not in ("redis", "rediss"):
            raise ConsentioConfigError("the rate budget's store must be a redis:// or rediss:// URL")


class RateBudget:
    """Admits requests at ``limit.per_second`` with bursts of ``limit.burst``; thread-safe, and usable from async
    code (:meth:`acquire_async` never blocks the event loop).

    Build one per workspace and process with :func:`shared_budget`, so every client of the process draws from it.

    :param key: names the budget in the store; every process of one workspace must use the same key.
    """

    def __init__(self, limit: RateLimit, key: str):
        try:
            from pyrate_limiter import GCRA, InMemoryStateStore, Rate
        except ImportError:
            raise ConsentioConfigError(f"A rate limit is set but pyrate-limiter is missing: {EXTRA_HINT}") from None
        self.limit = limit
        self.key = key
        self._algorithm = GCRA()
        self._rates = [Rate(_UNITS, round(_UNITS * 1000 / limit.per_second), burst=limit.burst)]
        self._local = InMemoryStateStore()
        self._lock = threading.Lock()
        self._local_paused_until = 0.0
        self._store: _SharedStore | None = _SharedStore(limit.store_url, key) if limit.store_url else None
        self._store_down_since: float | None = None
        self._store_failures = 0
        self._store_retry_at = 0.0
        # When this process last drew from the store (monotonic), and how long the store keeps the budget's state
        # after a draw (pyrate-limiter's RedisStateStore: twice a full bucket's drain time).
        self._store_drawn_at: float | None = None
        self._state_lifetime = 2 * limit.burst / limit.per_second

    def __repr__(self) -> str:
        shared = f", shared through {self._store.shown}" if self._store else ""
        return f"RateBudget({self.limit.per_second}/s, burst {self.limit.burst}{shared})"

    # --- drawing -------------------------------------------------------------------------------------------------

    def acquire(self) -> float:
        """Wait until a request may go; the seconds waited."""
        waited = 0.0
        while (wait := self.try_acquire()) > 0:
            time.sleep(wait)
            waited += wait
        return waited

    async def acquire_async(self) -> float:
        """The twin of :meth:`acquire`; a shared store is asked from a worker thread, the waits are awaited."""
        waited = 0.0
        while True:
            wait = await asyncio.to_thread(self.try_acquire) if self._store else self.try_acquire()
            if wait <= 0:
                return waited
            await asyncio.sleep(wait)
            waited += wait

    def try_acquire(self) -> float:
        """Take one request from the budget now and answer 0, or answer how many seconds to wait before asking
        again (nothing is taken then)."""
        now_ms = _wall_ms()
        paused = self._paused_until()
        if paused > now_ms:
            return (paused - now_ms) / 1000
        decision = self._check(now_ms, weight=1)
        return 0.0 if decision.allowed else max(decision.retry_after_ms or 1, 1) / 1000

    # --- a 429 pauses every sharer ---------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """No request of anyone sharing this budget goes before ``seconds`` from now (the API's Retry-After)."""
        until_ms = _wall_ms() + seconds * 1000
        with self._lock:
            self._local_paused_until = max(self._local_paused_until, until_ms)
        if self._store is not None and self._store_usable():
            try:
                self._store.pause_until(until_ms)
            except Exception as exc:  # any failure of the store means only: this process goes on alone
                self._store_failed(exc)
        log.warning("Consentio answered 429: every request of budget %s waits %.2fs", self.key, seconds)

    def _paused_until(self) -> float:
        shared = 0.0
        if self._store is not None and self._store_usable():
            try:
                shared = self._store.paused_until()
            except Exception as exc:
                self._store_failed(exc)
        return max(self._local_paused_until, shared)  # read after the store: its failure pauses this process

    # --- the store, and the fallback when it is down -----------------------------------------------------------

    def _check(self, now_ms: int, weight: int) -> Any:
        """The budget's decision, from the store while it answers, else from this process's bucket.

        The local bucket is charged with every request that goes, so it always holds what this process sent lately:
        that is what the fallback starts from, and what the store is charged when it comes back.
        """
        if self._store_usable():
            assert self._store is not None
            try:
                if self._store_down_since is not None:
                    self._recharge_store(now_ms)
                elif self._store_forgot():
                    log.warning(
                        "The rate budget's store %s lost the budget's state (restarted?): its bucket counts as full",
                        self._store.shown,
                    )
                    self._charge(self._store, self.limit.burst, now_ms)
                shared = self._store.check(self._algorithm, self._rates, now_ms, weight)
            except Exception as exc:  # any failure of the store means only: this process goes on alone
                self._store_failed(exc)
            else:
                if shared.allowed:
                    self._store_drawn_at = time.monotonic()
                    with self._lock:
                        self._local.check(self._algorithm, self._rates, now_ms, weight)
                return shared
        with self._lock:
            return self._local.check(self._algorithm, self._rates, now_ms, weight)

    def _recharge_store(self, now_ms: int) -> None:
        """Charge the store with what this process sent while it was down (a restarted store has forgotten)."""
        assert self._store is not None
        with self._lock:
            owed = self._algorithm.consumed(self._rates, self._local.read(self._algorithm, self._rates), now_ms)
        self._charge(self._store, owed, now_ms)
        log.warning("The rate budget's store %s answers again: shared budget resumed", self._store.shown)
        self._store_down_since = None
        self._store_failures = 0

    def _store_forgot(self) -> bool:
        """The budget's state is gone from the store although this process drew from it too recently for it to
        have expired (half its lifetime: a margin for the store's own clock): the store restarted empty."""
        assert self._store is not None
        drawn = self._store_drawn_at
        if drawn is None or time.monotonic() - drawn >= self._state_lifetime / 2:
            return False
        return not self._store.has_state()

    def _charge(self, state: Any, owed: int, now_ms: int) -> None:
        """Charge ``state`` (the store, or the local bucket under the lock) with ``owed`` units, or with what fits:
        less fits when others charged it too; halving what is tried."""
        while owed > 0:
            if state.check(self._algorithm, self._rates, now_ms, min(owed, self.limit.burst)).allowed:
                return
            owed //= 2

    def _store_usable(self) -> bool:
        return self._store is not None and (self._store_down_since is None or time.monotonic() >= self._store_retry_at)

    def _store_failed(self, exc: Exception) -> None:
        assert self._store is not None
        first = self._store_down_since is None
        now = time.monotonic()
        self._store_down_since = self._store_down_since if not first else now
        self._store_retry_at = now + min(STORE_RETRY_AFTER, STORE_FIRST_RETRY * 2**self._store_failures)
        self._store_failures += 1
        if first:
            # The others may go on sending meanwhile: a burst from this process on top could only be refused. And
            # a restart is over within the first retry's pause: waited out, it costs no request at all.
            now_ms = _wall_ms()
            with self._lock:
                self._charge(self._local, self.limit.burst, now_ms)
                self._local_paused_until = max(self._local_paused_until, now_ms + STORE_FIRST_RETRY * 1000)
            log.warning(
                "The rate budget's store %s failed (%s: %s): this process keeps to the budget on its own and tries "
                "the store again within %.0fs",
                self._store.shown,
                type(exc).__name__,
                exc,
                STORE_RETRY_AFTER,
            )

    @property
    def store_down(self) -> bool:
        return self._store_down_since is not None


class _SharedStore:
    """The budget's state in Redis: the GCRA hash (pyrate-limiter's RedisStateStore) and a "paused until" key."""

    def __init__(self, url: str, key: str):
        try:
            import redis
            from pyrate_limiter import RedisStateStore
        except ImportError:
            raise ConsentioConfigError(f"A rate budget store is set but redis is missing: {EXTRA_HINT}") from None
        parts = urlsplit(url)
        self.shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"  # never the password
        # No retries inside redis-py: a store that does not answer at once sends us to the fallback.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=STORE_TIMEOUT,
            socket_connect_timeout=STORE_TIMEOUT,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        self._state_key = f"{key}:gcra"
        self._state = RedisStateStore(self._redis, self._state_key)
        self._pause_key = f"{key}:paused-until"

    def check(self, algorithm: Any, rates: Any, now_ms: int, weight: int) -> Any:
        return self._state.check(algorithm, rates, now_ms, weight)

    def has_state(self) -> bool:
        return bool(self._redis.exists(self._state_key))

    def pause_until(self, until_ms: float) -> None:
        ttl = max(1, int(until_ms - _wall_ms()))
        current: Any = self._redis.get(self._pause_key)  # a sync client: bytes or None
        if current is None or float(current) < until_ms:
            self._redis.set(self._pause_key, f"{until_ms:.0f}", px=ttl)

    def paused_until(self) -> float:
        value: Any = self._redis.get(self._pause_key)
        return float(value) if value is not None else 0.0


def _wall_ms() -> int:
    # Wall time, not monotonic: the store compares the instants of different machines.
    return time.time_ns() // 1_000_000


_BUDGETS: dict[tuple[str, RateLimit], RateBudget] = {}
_BUDGETS_GUARD = threading.Lock()


def budget_key(base_url: str, workspace_id: int) -> str:
    """The store key of a workspace's budget: one per API root and workspace, whatever the API key."""
    root = hashlib.sha256(base_url.encode()).hexdigest()[:12]
    return f"airflow-provider-consentio:rate-budget:{root}:{workspace_id}"


def shared_budget(base_url: str, workspace_id: int, limit: RateLimit) -> RateBudget:
    """The process's one budget for this workspace and limit: every client built for it draws from the same one."""
    key = budget_key(base_url, workspace_id)
    with _BUDGETS_GUARD:
        budget = _BUDGETS.get((key, limit))
        if budget is None:
            budget = _BUDGETS[(key, limit)] = RateBudget(limit, key)
        return budget
