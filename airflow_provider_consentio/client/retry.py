"""Retry policy and status mapping, shared by the sync and async clients: which failures are transient, how long to
wait, when to give up, and which exception each HTTP answer becomes."""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

import httpx

from airflow_provider_consentio.client.excerpt import excerpt
from airflow_provider_consentio.errors import (
    ConsentioAPIError,
    ConsentioAuthError,
    ConsentioConfigError,
    ConsentioError,
    ConsentioNotFoundError,
    ConsentioTLSError,
    ConsentioTransientError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_consentio.client.endpoints import Call

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient failures, bounded in count and in total time.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param initial_backoff: ceiling of the first wait, in seconds; it doubles each retry.
    :param max_backoff: largest wait between two attempts when the server gives no Retry-After.
    :param max_elapsed: total seconds one call may spend retrying, Retry-After waits included.
    """

    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_elapsed: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_backoff < 0 or self.max_backoff < 0 or self.max_elapsed < 0:
            raise ConsentioConfigError(f"retry settings must not be negative: {self}")

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        if retry_after is not None:
            # Honour the server's hint; a little jitter keeps parallel workers from retrying in lockstep.
            return retry_after * random.uniform(1.0, 1.1)
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry_number - 1))
        return random.uniform(ceiling / 2, ceiling)


class TokenRejected(ConsentioAuthError):
    """401 on an authenticated call: log in again once, then retry."""

    def __init__(self, endpoint: str, status: int, detail: str, code: str | None, token: str | None):
        super().__init__(endpoint, status, detail, code)
        self.token = token


class RetryBudget:
    """Counts the retries and the re-login of one logical call against the policy."""

    def __init__(self, policy: RetryPolicy, call: Call):
        self._policy = policy
        self._call = call
        self._started = time.monotonic()
        self._retries = 0
        self._relogged = False

    def relogin(self, rejection: TokenRejected) -> None:
        if self._relogged or not self._call.authenticated:
            raise ConsentioAuthError(
                rejection.endpoint,
                rejection.status,
                f"{rejection.detail} (the token was rejected again right after a fresh login)",
                rejection.code,
            ) from None
        self._relogged = True
        log.info("%s: access token rejected (%s); logging in again", self._call.endpoint, rejection.code or 401)

    def next_delay(self, error: ConsentioTransientError) -> float:
        repeatable = self._call.idempotent or error.request_not_sent
        if not repeatable:
            raise error
        self._retries += 1
        if self._retries > self._policy.max_retries:
            raise ConsentioTransientError(
                f"{error} (gave up after {self._policy.max_retries} retries)", error.retry_after, status=error.status
            ) from error
        delay = self._policy.delay(self._retries, error.retry_after)
        elapsed = time.monotonic() - self._started
        if elapsed + delay > self._policy.max_elapsed:
            raise ConsentioTransientError(
                f"{error} (gave up: waiting {delay:.1f}s more would pass the {self._policy.max_elapsed:.0f}s "
                "retry budget)",
                error.retry_after,
                status=error.status,
            ) from error
        log.warning("%s; retry %d/%d in %.2fs", error, self._retries, self._policy.max_retries, delay)
        return delay


def raise_for_status(
    call: Call,
    response: httpx.Response,
    body: bytes,
    token: str | None,
    *,
    workspace_id: int,
) -> None:
    """Nothing for a 2xx; else the exception the answer maps to (transient ones are retried by the caller).
    ``body`` is already redacted (ClientBase._received)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    code, detail = _error_detail(response, body)
    if status == 401 and call.authenticated:
        raise TokenRejected(call.endpoint, status, detail, code, token)
    if status == 403:
        # The API's own wording of a 403 is undocumented: say which workspace and what to check either way.
        hint = f"the API key has no permission for workspace {workspace_id}"
        detail = f"{detail} ({hint}: check the connection's workspace ID (login) and API key)"
    if status in (401, 403):
        raise ConsentioAuthError(call.endpoint, status, detail, code)
    if status == 404:
        raise ConsentioNotFoundError(call.endpoint, status, detail, code)
    if status in (408, 429) or status >= 500:
        raise ConsentioTransientError(
            f"{call.endpoint} -> HTTP {status}: {f'{code}: ' if code else ''}{detail}",
            _retry_after(response),
            status=status,
        )
    raise ConsentioAPIError(call.endpoint, status, detail, code)


def transport_error(call: Call, exc: httpx.TransportError) -> ConsentioTransientError | ConsentioTLSError:
    verification = _certificate_failure(exc)
    if verification is not None:
        return ConsentioTLSError(
            f"{call.endpoint} failed: the server's TLS certificate could not be verified ({verification}). "
            "If the server uses a private CA, set the connection's ca_bundle to its CA file."
        )
    return ConsentioTransientError(
        f"{call.endpoint} failed: {type(exc).__name__}: {exc or 'no detail'}",
        # These fail before the request is written, so even a non-idempotent call may be sent again.
        request_not_sent=isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout),
    )


def _certificate_failure(exc: BaseException) -> str | None:
    """The reason a TLS certificate was refused, found in the exception's chain; None for any other failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _error_detail(response: httpx.Response, body: bytes) -> tuple[str | None, str]:
    """(code, readable detail) from an error body: the JSON error fields, or an excerpt of anything else."""
    text = body.decode(response.encoding or "utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        code = error if isinstance(error, str) else None
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            data = error
        message = data.get("message") or data.get("detail") or data.get("error_description")
        if message:
            return code, str(message) if not isinstance(message, list | dict) else excerpt(json.dumps(message))
        return code, excerpt(text)
    if not text.strip():
        return None, "empty body"
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    return None, f"non-JSON body ({content_type}): {excerpt(text)!r}"


# --- writes that must not be applied twice ---------------------------------------------------------------------------

R = TypeVar("R")


@dataclass(frozen=True)
class SettleWindow:
    """How long a write whose outcome is unknown is looked for (read back) before it counts as not applied.

    Many APIs list a new record only some time after they created it (read-after-write lag): one read right after a
    dropped connection misses a record that exists, and a re-send then creates it twice.

    :param seconds: how long to keep reading back. A longer Retry-After or retry backoff lengthens the wait;
        nothing shortens it.
    :param poll_every: seconds between two read-backs.
    """

    seconds: float = 10.0
    poll_every: float = 0.5

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.poll_every <= 0:
            raise ConsentioConfigError(f"the settle window must not be negative, nor its poll interval 0: {self}")


def poll_until(read: Callable[[], R], done: Callable[[R], bool], seconds: float, poll_every: float) -> R:
    """``read()`` every ``poll_every`` seconds until ``done`` says its answer is the one awaited, or ``seconds``
    have passed; the last answer either way. The last read starts once the time is up, so it sees everything the
    server shows by then. A transient failure of an earlier read only counts as "not yet"; of the last, it raises.
    """
    deadline = time.monotonic() + seconds
    while True:
        last = time.monotonic() >= deadline
        try:
            answer = read()
        except ConsentioTransientError as exc:
            if last:
                raise
            log.warning("A read-back failed (%s); reading again in %.1fs", exc, poll_every)
        else:
            if last or done(answer):
                return answer
        time.sleep(max(0.0, min(poll_every, deadline - time.monotonic())))


def send_at_most_once(
    send: Callable[[], str],
    find: Callable[[], str | None],
    *,
    what: str,
    settle: SettleWindow,
    policy: RetryPolicy,
    attempts: int,
) -> tuple[str, bool]:
    """Send a write that must not be applied twice; after an unknown outcome, read back before any re-send.

    ``send`` makes the write once (its call is never retried once the request may have reached the server) and
    returns the ID of what it created; ``find`` reads back and returns that ID if the write was applied. After a
    failure that leaves the outcome unknown (a dropped connection, a timeout, a 5xx), ``find`` is polled for the
    settle window (lengthened by the server's Retry-After and the retry backoff); only if it never finds the write
    is it sent again, and the read-back is repeated after every later failure.

    :returns: the ID, and whether a read-back found it (the answer to the create was lost).
    :raises ConsentioError: still not applied after ``attempts`` sends, each followed by a read-back.
    """
    for attempt in range(1, attempts + 1):
        try:
            return send(), False
        except ConsentioTransientError as exc:
            wait = max(settle.seconds, exc.retry_after or 0.0, policy.delay(attempt, exc.retry_after))
            log.warning(
                "%s: %s; reading back for up to %.1fs before deciding whether to send it again", what, exc, wait
            )
            found = poll_until(find, lambda answer: answer is not None, wait, settle.poll_every)
            if found is not None:
                log.warning("%s: the read-back found it created (%s): not sent again", what, found)
                return found, True
            if attempt == attempts:
                raise ConsentioError(
                    f"{what}: not created after {attempt} attempts ({exc}); the read-back found none within "
                    f"{wait:.1f}s of the last one, so re-running is safe unless the API lists new ones later than that"
                ) from exc
            log.warning("%s: the read-back found none within %.1fs: sending it again", what, wait)
    raise AssertionError("unreachable")
