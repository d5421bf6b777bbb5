"""What the sync and async clients share besides I/O: settings, the token cache entry, secrets, request building."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from airflow_provider_consentio.client.auth import (
    PROCESS_TOKEN_CACHE,
    Secrets,
    TokenCache,
    cache_key,
    token_from_session,
)
from airflow_provider_consentio.client.endpoints import Call, PartnerAPI
from airflow_provider_consentio.client.observer import (
    NO_ANSWER,
    NO_OBSERVER,
    WAIT_BACKOFF,
    WAIT_RATE_BUDGET,
    WAIT_RETRY_AFTER,
    ClientObserver,
    route,
)
from airflow_provider_consentio.client.rate_budget import RateBudget
from airflow_provider_consentio.client.retry import TokenRejected, raise_for_status
from airflow_provider_consentio.client.settings import ConsentioSettings
from airflow_provider_consentio.errors import ConsentioResponseError, ConsentioTransientError
from airflow_provider_consentio.models import Session
from airflow_provider_consentio.models.jsonwire import dumps

log = logging.getLogger("airflow_provider_consentio.client")


class ClientBase:
    def __init__(
        self,
        settings: ConsentioSettings,
        token_cache: TokenCache | None,
        on_secret: Callable[[str], None] | None,
        rate_budget: RateBudget | None = None,
        observer: ClientObserver | None = None,
    ):
        self.settings = settings
        self.rate_budget = rate_budget
        self.observer = observer if observer is not None else NO_OBSERVER
        self.api = PartnerAPI(settings.workspace_id, settings.api_key)
        self._tokens = token_cache if token_cache is not None else PROCESS_TOKEN_CACHE
        self._cache_key = cache_key(settings.base_url, settings.workspace_id, settings.api_key)
        self._secrets = Secrets(on_secret)
        if settings.api_key:
            self._secrets.remember(settings.api_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r}, workspace={self.settings.workspace_id})"

    def redact(self, text: str) -> str:
        """``text`` with the API key and every token this client has seen cut out."""
        return self._secrets.redact(text)

    def _rate_limited(self, error: ConsentioTransientError) -> None:
        """A 429 that says how long to wait holds back everyone who shares the budget, not only this call."""
        if self.rate_budget is not None and error.status == 429 and error.retry_after:
            self.rate_budget.pause(error.retry_after)

    def _start_session(self, call: Call, value: Any) -> Session:
        """Parse a login answer and cache its token for every client of this process."""
        try:
            session = Session.model_validate(value)
        except ValidationError:
            raise ConsentioResponseError(f"{call.endpoint}: the login response has no access_token") from None
        self._secrets.remember(session.access_token)
        if session.refresh_token:
            self._secrets.remember(session.refresh_token)
        token, lifetime = token_from_session(session)
        self._tokens.put(self._cache_key, token)
        lifetime_text = f"{lifetime:.0f}s" if lifetime is not None else "unknown"
        log.info("Logged in to Consentio workspace %s (token lifetime %s)", self.settings.workspace_id, lifetime_text)
        return session

    @staticmethod
    def _request_args(call: Call, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        args: dict[str, Any] = {"method": call.method, "url": call.path, "params": call.params, "headers": headers}
        if call.content is not None:
            headers["Content-Type"] = call.content_type
            args["content"] = call.content
        elif call.body is not None:
            headers["Content-Type"] = "application/json"
            args["content"] = dumps(call.body).encode()
        return args

    def _received(
        self, call: Call, response: httpx.Response, body: bytes, token: str | None, *, as_sent: bool = False
    ) -> bytes:
        """An answer's body with every known secret (the API key, each token) cut out, once its status is checked.

        Every answer of both clients passes here before anything reads it, so each text that comes from the API
        (HTTP error bodies, per-record errors, warnings, saved records) is redacted before it can be logged, raised
        or put in XCom: an API that echoes the request's bearer token leaks nothing. Two successful answers are
        kept as sent: a login's, which holds the new token (it becomes a known secret as it is parsed), and a
        listing read ``as_sent``, whose records an export writes byte for byte (a pass per known secret over every
        byte, 0.1 s per 200 MB here, would add about 15% to an export; the one text made of such a body, the
        excerpt of one that cannot be parsed, goes through the same redaction where it is built,
        endpoints._unexpected_body).
        """
        if token:
            # Known to this client even when another one logged in for it (the process-wide token cache).
            self._secrets.remember(token)
        if not (response.is_success and (as_sent or call.returns_secrets)):
            body = self._secrets.redact(body)
        raise_for_status(call, response, body, token, workspace_id=self.settings.workspace_id)
        return body

    @contextmanager
    def _observed(self, call: Call, request: dict[str, Any]) -> Iterator[Attempt]:
        """Reports the attempt made inside to the observer once it ends, answered or not."""
        attempt = Attempt()
        started = time.monotonic()
        try:
            yield attempt
        finally:
            response = attempt.response
            content = request.get("content")
            self.observer.on_request(
                route(call.path, self.settings.workspace_id),
                call.method,
                response.status_code if response is not None else None,
                time.monotonic() - started,
                response.num_bytes_downloaded if response is not None else 0,
                len(content) if content else 0,
            )

    def _retrying(self, call: Call, failure: TokenRejected | ConsentioTransientError, delay: float = 0.0) -> None:
        """Tells the observer that ``call`` is sent again after ``failure``, ``delay`` seconds from now."""
        reason = str(failure.status) if failure.status is not None else NO_ANSWER
        self.observer.on_retry(route(call.path, self.settings.workspace_id), call.method, reason)
        if delay > 0:
            retry_after = isinstance(failure, ConsentioTransientError) and failure.retry_after is not None
            self.observer.on_wait(delay, WAIT_RETRY_AFTER if retry_after else WAIT_BACKOFF)

    def _waited_for_budget(self, seconds: float) -> None:
        if seconds > 0:
            self.observer.on_wait(seconds, WAIT_RATE_BUDGET)


@dataclass
class Attempt:
    """The answer of one attempt, once there is one."""

    response: httpx.Response | None = None


def too_large(endpoint: str, limit: int) -> ConsentioResponseError:
    return ConsentioResponseError(f"{endpoint}: the response is larger than {limit // 2**20} MiB")
