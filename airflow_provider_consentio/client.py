"""HTTP client for the Consentio Partner API: plain httpx, no Airflow import.

:class:`ConsentioClient` (sync, used by operators) and :class:`AsyncConsentioClient` (used by triggers) share one
endpoint layer, one retry policy and one process-wide token cache; they differ only in how they wait for I/O.

Behaviour:
* Logs in with the API key once per process and workspace, reuses the access token until shortly before its
  ``exp`` (read, unverified, from the JWT), logs in again once on a 401 and retries the call.
* Retries 429 (honouring Retry-After), 408, 5xx, timeouts and dropped connections with exponential backoff and
  jitter, bounded in count and in total time, for calls that are safe to repeat. A call that is not (creating a
  promoted order) is retried only when the request never left this machine.
* Every request has a timeout; connections are kept alive and reused; TLS is verified; plain http is refused
  except for loopback hosts (the local sandbox).
* Error messages name the endpoint and HTTP status and never contain the API key or a token.

Wire assumptions the docs leave open live in the endpoint section below (marked ASSUMPTION) and in models.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import msgspec
from pydantic import BaseModel, ValidationError

from airflow_provider_consentio import __version__
from airflow_provider_consentio.errors import (
    ConsentioAPIError,
    ConsentioAuthError,
    ConsentioConfigError,
    ConsentioNotFoundError,
    ConsentioResponseError,
    ConsentioTransientError,
)
from airflow_provider_consentio.jsonwire import JSONShapeError, compact_line, dumps, has_line_breaks, loads, split_array
from airflow_provider_consentio.models import (
    ORDER_KINDS,
    ORDER_STATUSES,
    BatchResult,
    ExternalReference,
    Order,
    PurchaseNeed,
    RawRecord,
    RecordError,
    Session,
)

log = logging.getLogger(__name__)

PARTNER_PREFIX = "/v2/partner"
ENVIRONMENTS: dict[str, str] = {
    "production": "https://api.consentio.co",
    "staging": "https://staging.api.consentio.co",
    "sandbox": "https://sandbox.api.consentio.co",
}
USER_AGENT = f"airflow-provider-consentio/{__version__}"
# Answers larger than these are refused rather than held in memory. A list (one export sub-window) may be larger
# than other answers; past the limit the error says so.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_LIST_BYTES = 512 * 1024 * 1024
# Renew a token this long before it expires: 10% of its lifetime, at most a minute.
RENEW_MARGIN_MAX = 60.0
RENEW_MARGIN_SHARE = 0.1

ModelT = TypeVar("ModelT", bound=BaseModel)


# Key structs and RawRecord are created by the hundred thousand and hold no cycles: gc=False keeps them out of the
# garbage collector's passes, which otherwise cost an export a fifth of its time in a worker's large heap.
class OrderId(msgspec.Struct, gc=False):
    """What an export reads of each order (its ID, to de-duplicate); the rest travels as raw bytes."""

    id: int


class EditedOrderKeys(msgspec.Struct, gc=False):
    """What the edited-orders flow reads of each order: its identity and version."""

    id: int
    hash_id: str
    updated_at: str


class PurchaseNeedKeys(msgspec.Struct, gc=False):
    code: str


# ------------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ConsentioSettings:
    """Everything a client needs. Build ``base_url`` with :func:`resolve_base_url`."""

    workspace_id: int
    base_url: str = ENVIRONMENTS["production"]
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None
    max_connections: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.workspace_id, bool) or not isinstance(self.workspace_id, int) or self.workspace_id <= 0:
            raise ConsentioConfigError(f"workspace_id must be a positive integer, got {self.workspace_id!r}")
        if not self.timeout > 0:
            raise ConsentioConfigError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.max_connections < 1:
            raise ConsentioConfigError(f"max_connections must be at least 1, got {self.max_connections!r}")
        require_secure_url(self.base_url)


def resolve_base_url(environment: str | None = None, base_url: str | None = None) -> str:
    """The API root for an explicit ``base_url`` (wins) or a named environment (default production).

    A bare host gets ``https://``; a trailing ``/v2/partner`` is dropped (the client adds it).
    """
    if base_url and base_url.strip():
        url = base_url.strip()
        if "://" not in url:
            url = f"https://{url}"
    else:
        name = (environment or "production").strip().lower()
        if name not in ENVIRONMENTS:
            raise ConsentioConfigError(
                f"Unknown Consentio environment {environment!r}: use one of {', '.join(ENVIRONMENTS)} "
                "or give a base URL"
            )
        url = ENVIRONMENTS[name]
    url = url.rstrip("/")
    url = url.removesuffix(PARTNER_PREFIX)
    require_secure_url(url)
    return url


def require_secure_url(url: str) -> None:
    """Refuse anything but https, except plain http to a loopback host; refuse credentials in the URL."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    if parts.username or parts.password:
        raise ConsentioConfigError(f"The Consentio base URL must not contain credentials ({shown}...)")
    if not parts.hostname:
        raise ConsentioConfigError(f"The Consentio base URL has no host: {shown!r}")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConsentioConfigError(
        f"Refusing base URL {shown!r}: the API key and tokens would cross the network unencrypted. "
        "Use https:// (plain http is allowed only for loopback hosts such as the local sandbox)."
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    renew_at: float | None  # time.monotonic() after which to log in again; None: lifetime unknown

    def usable(self) -> bool:
        return self.renew_at is None or time.monotonic() < self.renew_at


def _token_lifetime(session: Session) -> float | None:
    """Seconds the access token lives, from its JWT claims (exp - iat) or the login's ``expires_in``.

    Measured as a duration, not against our clock, so clock skew with the server does not matter. JWT times are
    whole seconds (iat is rounded down), so a second is taken off to stay on the safe side.
    """
    claims = _jwt_claims(session.access_token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float):
        return max(0.0, float(exp) - float(iat) - 1.0)
    if isinstance(exp, int | float):
        return max(0.0, float(exp) - time.time())
    if session.expires_in is not None:
        return max(0.0, session.expires_in)
    return None


def _jwt_claims(token: str) -> dict[str, Any]:
    """The unverified payload of a JWT, or {} if the token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class TokenCache:
    """Access tokens shared by every client in a process, one per (base URL, workspace, API key)."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._login_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> _Token | None:
        token = self._tokens.get(key)
        return token if token is not None and token.usable() else None

    def put(self, key: str, token: _Token) -> None:
        self._tokens[key] = token

    def discard(self, key: str, rejected: str | None) -> None:
        """Forget the token the server rejected, unless another caller already replaced it."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and current.value == rejected:
                del self._tokens[key]

    def login_lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._login_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


PROCESS_TOKEN_CACHE = TokenCache()


# ------------------------------------------------------------------------------------------------------
# Responses and errors
# ------------------------------------------------------------------------------------------------------


class _TokenRejected(ConsentioAuthError):
    """401 on an authenticated call: log in again once, then retry."""

    def __init__(self, endpoint: str, status: int, detail: str, code: str | None, token: str | None):
        super().__init__(endpoint, status, detail, code)
        self.token = token


@dataclass(frozen=True)
class _Call:
    method: str
    path: str  # below /v2/partner
    params: Mapping[str, str] | None = None
    body: Any = None
    authenticated: bool = True
    # Safe to send twice: reads, and writes keyed by an idempotency key (hash_id, purchase-need code).
    idempotent: bool = True

    @property
    def endpoint(self) -> str:
        return f"{self.method} {PARTNER_PREFIX}{self.path}"


class _RetryBudget:
    """Counts the retries and the re-login of one logical call against the policy."""

    def __init__(self, policy: RetryPolicy, call: _Call):
        self._policy = policy
        self._call = call
        self._started = time.monotonic()
        self._retries = 0
        self._relogged = False

    def relogin(self, rejection: _TokenRejected) -> None:
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
                f"{error} (gave up after {self._policy.max_retries} retries)", error.retry_after
            ) from error
        delay = self._policy.delay(self._retries, error.retry_after)
        elapsed = time.monotonic() - self._started
        if elapsed + delay > self._policy.max_elapsed:
            raise ConsentioTransientError(
                f"{error} (gave up: waiting {delay:.1f}s more would pass the {self._policy.max_elapsed:.0f}s "
                "retry budget)",
                error.retry_after,
            ) from error
        log.warning("%s; retry %d/%d in %.2fs", error, self._retries, self._policy.max_retries, delay)
        return delay


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def _excerpt(text: str, limit: int = 200) -> str:
    if "<" in text[:200] and ">" in text:
        text = _TAGS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


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
            return code, str(message) if not isinstance(message, list | dict) else _excerpt(json.dumps(message))
        return code, _excerpt(text)
    if not text.strip():
        return None, "empty body"
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    return None, f"non-JSON body ({content_type}): {_excerpt(text)!r}"


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (the reader of the error knows the API, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = ((dict, "an object"), (list, "an array"), (str, "a string"), (int | float | Decimal, "a number"))
    return next((kind for python_type, kind in kinds if isinstance(value, python_type)), type(value).__name__)


def _transport_error(call: _Call, exc: httpx.TransportError) -> ConsentioTransientError:
    return ConsentioTransientError(
        f"{call.endpoint} failed: {type(exc).__name__}: {exc or 'no detail'}",
        # These fail before the request is written, so even a non-idempotent call may be sent again.
        request_not_sent=isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout),
    )


def _rfc3339(value: datetime, name: str) -> str:
    if not isinstance(value, datetime):
        raise ConsentioConfigError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConsentioConfigError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    utc = value.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


# ------------------------------------------------------------------------------------------------------
# The shared core: endpoint layer, request building, response checking
# ------------------------------------------------------------------------------------------------------


class _ClientCore:
    def __init__(
        self,
        settings: ConsentioSettings,
        token_cache: TokenCache | None,
        on_secret: Callable[[str], None] | None,
    ):
        self.settings = settings
        self._tokens = token_cache if token_cache is not None else PROCESS_TOKEN_CACHE
        self._on_secret = on_secret or (lambda secret: None)
        key_fingerprint = hashlib.sha256((settings.api_key or "").encode()).hexdigest()[:16]
        self._cache_key = f"{settings.base_url}|{settings.workspace_id}|{key_fingerprint}"
        self._secrets: set[str] = set()
        if settings.api_key:
            self._remember_secret(settings.api_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r}, workspace={self.settings.workspace_id})"

    # --- endpoint layer: every path, parameter and body shape the client sends ------------------------------

    @property
    def _ws(self) -> str:
        return f"/{self.settings.workspace_id}"

    def _login_call(self) -> _Call:
        if not self.settings.api_key:
            raise ConsentioConfigError(
                f"No API key for workspace {self.settings.workspace_id}: set the connection's password "
                "(only the public prepare and export-template endpoints work without one)"
            )
        return _Call("POST", f"{self._ws}/login", body={"api_key": self.settings.api_key}, authenticated=False)

    def _orders_call(self, start: datetime, end: datetime, kind: str, status: str | None) -> _Call:
        # ASSUMPTION: from/to filter created_at over the half-open window [from, to); one status per request.
        if kind not in ORDER_KINDS:
            raise ConsentioConfigError(f"kind must be one of {', '.join(ORDER_KINDS)}, got {kind!r}")
        if status is not None and status not in ORDER_STATUSES:
            raise ConsentioConfigError(f"status must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
        # Formatted first: it refuses naive datetimes, which the comparison below would fail on with a TypeError.
        params = {"from": _rfc3339(start, "start"), "to": _rfc3339(end, "end"), "kind": kind}
        if end < start:
            raise ConsentioConfigError(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        if status:
            params["status"] = status
        return _Call("GET", f"{self._ws}/order", params=params)

    def _edited_orders_call(self, since: datetime) -> _Call:
        # ASSUMPTION: the parameter is named `since`; orders whose edit was marked seen drop out.
        return _Call("GET", f"{self._ws}/order/edited", params={"since": _rfc3339(since, "since")})

    def _external_references_call(self, references: Sequence[ExternalReference]) -> _Call:
        # ASSUMPTION: body {"orders": [{hash_id, external_id, external_status, cancel}]}.
        return _Call("PUT", f"{self._ws}/order/external", body={"orders": [ref.to_wire() for ref in references]})

    def _mark_seen_call(self, hash_ids: Sequence[str]) -> _Call:
        # ASSUMPTION: body {"hash_ids": [...]}; response {"seen": [...], "errors": ["<hash_id>: <reason>"]}.
        return _Call("POST", f"{self._ws}/order/seen", body={"hash_ids": list(hash_ids)})

    def _prepare_call(self, hash_id: str) -> _Call:
        # Public endpoint: no Authorization header. ASSUMPTION: no body; 404 for an unknown hash.
        if not hash_id or not isinstance(hash_id, str):
            raise ConsentioConfigError(f"hash_id must be a non-empty string, got {hash_id!r}")
        return _Call("POST", f"{self._ws}/order/{quote(hash_id, safe='')}/prepare", authenticated=False)

    def _template_methods_call(self) -> _Call:
        return _Call("GET", "/export/template/methods", authenticated=False)

    def _upsert_purchase_needs_call(self, needs: Sequence[PurchaseNeed]) -> _Call:
        if not needs:
            raise ConsentioConfigError("upsert_purchase_needs needs at least one record (the API requires one)")
        # Idempotent: `code` is the idempotency key, so a repeated batch replaces records with the same values.
        return _Call("POST", f"{self._ws}/purchase-needs", body={"purchase_needs": [n.to_wire() for n in needs]})

    def _purchase_needs_call(self, start_date: date, end_date: date, status: str | None) -> _Call:
        if end_date < start_date:
            raise ConsentioConfigError(f"end_date {end_date} is before start_date {start_date}")
        params = {"start_date": start_date.isoformat(), "end_date": end_date.isoformat()}
        if status:
            params["status"] = status
        return _Call("GET", f"{self._ws}/purchase-needs", params=params)

    def _promoted_order_call(self, order: Mapping[str, Any]) -> _Call:
        # Creates an order: never repeated once the request may have reached the server.
        return _Call("POST", f"{self._ws}/promoted-order", body=dict(order), idempotent=False)

    # --- parsing ---------------------------------------------------------------------------------------------

    @staticmethod
    def _models(call: _Call, body: Any, model: type[ModelT]) -> list[ModelT]:
        if not isinstance(body, list):
            raise ConsentioResponseError(f"{call.endpoint}: expected a JSON array, got {_json_kind(body)}")
        try:
            return [model.model_validate(item) for item in body]
        except ValidationError as exc:
            raise ConsentioResponseError(f"{call.endpoint}: unexpected item shape: {exc}") from None

    @staticmethod
    def _batch_result(call: _Call, body: Any, saved_key: str) -> BatchResult:
        if not isinstance(body, dict):
            raise ConsentioResponseError(f"{call.endpoint}: expected a JSON object, got {_json_kind(body)}")
        if saved_key not in body and "errors" not in body:
            # Read as "nothing saved, nothing rejected", such an answer would pass a batch that did nothing as done.
            raise ConsentioResponseError(
                f"{call.endpoint}: the answer has neither '{saved_key}' nor 'errors' "
                f"(keys: {', '.join(map(str, body)) or 'none'})"
            )
        saved = body.get(saved_key) or []
        errors = body.get("errors") or []
        if not isinstance(saved, list) or not isinstance(errors, list):
            raise ConsentioResponseError(f"{call.endpoint}: '{saved_key}' and 'errors' must be arrays")
        return BatchResult(saved=saved, errors=[RecordError.parse(message) for message in errors])

    def _start_session(self, call: _Call, body: Any) -> Session:
        """Parse a login response and cache its token for every client of this process."""
        try:
            session = Session.model_validate(body)
        except ValidationError:
            raise ConsentioResponseError(f"{call.endpoint}: the login response has no access_token") from None
        self._remember_secret(session.access_token)
        if session.refresh_token:
            self._remember_secret(session.refresh_token)
        lifetime = _token_lifetime(session)
        renew_at = None
        if lifetime is not None:
            renew_at = time.monotonic() + lifetime - min(RENEW_MARGIN_MAX, RENEW_MARGIN_SHARE * lifetime)
        self._tokens.put(self._cache_key, _Token(session.access_token, renew_at))
        lifetime_text = f"{lifetime:.0f}s" if lifetime is not None else "unknown"
        log.info("Logged in to Consentio workspace %s (token lifetime %s)", self.settings.workspace_id, lifetime_text)
        return session

    # --- requests --------------------------------------------------------------------------------------------

    def _remember_secret(self, secret: str) -> None:
        self._secrets.add(secret)
        self._on_secret(secret)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret and secret in text:
                text = text.replace(secret, "***")
        return text

    def _httpx_options(self) -> dict[str, Any]:
        settings = self.settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle:
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        return {
            "base_url": settings.base_url + PARTNER_PREFIX,
            "timeout": httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            "verify": verify,
            "limits": httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
        }

    def _request_args(self, call: _Call, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        args: dict[str, Any] = {"method": call.method, "url": call.path, "params": call.params, "headers": headers}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
            args["content"] = dumps(call.body).encode()
        return args

    def _check_status(self, call: _Call, response: httpx.Response, body: bytes, token: str | None) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        code, detail = _error_detail(response, body)
        detail = self._redact(detail)
        if status == 401 and call.authenticated:
            raise _TokenRejected(call.endpoint, status, detail, code, token)
        if status == 403:
            # The API's own wording of a 403 is undocumented: say which workspace and what to check either way.
            hint = f"the API key has no permission for workspace {self.settings.workspace_id}"
            detail = f"{detail} ({hint}: check the connection's workspace ID (login) and API key)"
        if status in (401, 403):
            raise ConsentioAuthError(call.endpoint, status, detail, code)
        if status == 404:
            raise ConsentioNotFoundError(call.endpoint, status, detail, code)
        if status in (408, 429) or status >= 500:
            raise ConsentioTransientError(
                f"{call.endpoint} -> HTTP {status}: {f'{code}: ' if code else ''}{detail}", _retry_after(response)
            )
        raise ConsentioAPIError(call.endpoint, status, detail, code)

    def _json_body(self, call: _Call, response: httpx.Response, body: bytes) -> Any:
        if not body.strip():
            raise ConsentioResponseError(f"{call.endpoint} -> HTTP {response.status_code} with an empty body")
        try:
            return loads(body.decode(response.encoding or "utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            content_type = response.headers.get("content-type", "no content type").split(";")[0]
            text = body[:2000].decode("utf-8", errors="replace")
            raise ConsentioResponseError(
                f"{call.endpoint} -> HTTP {response.status_code} but the body is not valid JSON "
                f"({content_type}, {len(body)} bytes; {exc}): {self._redact(_excerpt(text))!r}"
            ) from None

    def _records(
        self, call: _Call, response: httpx.Response, body: bytes, keys: type[msgspec.Struct], envelope: str | None
    ) -> list[RawRecord]:
        """The elements of a list response as exact bytes, each with its key fields (validated).

        Two passes in C over the body, one splitting it and one reading the key fields of every element, cost far
        less than a Python call per element.
        """
        try:
            array, elements = split_array(body, envelope)
        except JSONShapeError as exc:
            raise self._not_a_list(call, response, body, str(exc)) from None
        try:
            key_fields = msgspec.json.decode(array, type=list[keys])  # type: ignore[valid-type]  # a runtime type
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._not_a_list(call, response, body, str(exc)) from None
        lines: list[Any] = elements
        if has_line_breaks(body):  # a pretty-printed answer: each element must still become one JSONL line
            lines = [compact_line(element) for element in elements]
        return [RawRecord(line, fields) for line, fields in zip(lines, key_fields, strict=True)]

    def _not_a_list(self, call: _Call, response: httpx.Response, body: bytes, problem: str) -> ConsentioResponseError:
        content_type = response.headers.get("content-type", "no content type").split(";")[0]
        text = body[:2000].decode("utf-8", errors="replace")
        return ConsentioResponseError(
            f"{call.endpoint} -> HTTP {response.status_code} but the body is not a JSON array of records "
            f"({content_type}, {len(body)} bytes; {problem}): {self._redact(_excerpt(text))!r}"
        )


def _read_bounded(chunks: Iterable[bytes], endpoint: str, limit: int) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise ConsentioResponseError(f"{endpoint}: the response is larger than {limit // 2**20} MiB")
    return bytes(body)


# ------------------------------------------------------------------------------------------------------
# Sync client
# ------------------------------------------------------------------------------------------------------


class ConsentioClient(_ClientCore):
    """Blocking client; thread-safe (one pool of keep-alive connections shared by all threads).

    :param settings: workspace, base URL, API key, timeout and retry policy.
    :param token_cache: where access tokens are shared; the process-wide cache by default.
    :param on_secret: called with the API key and every token obtained, e.g. Airflow's ``mask_secret``.
    :param transport: an httpx transport, for tests that cannot use a real server.
    """

    def __init__(
        self,
        settings: ConsentioSettings,
        *,
        token_cache: TokenCache | None = None,
        on_secret: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        super().__init__(settings, token_cache, on_secret)
        self._http = httpx.Client(**self._httpx_options(), transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConsentioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- auth ------------------------------------------------------------------------------------------------

    def login(self) -> Session:
        """Log in with the API key now (even if a cached token is still valid) and cache the new token."""
        call = self._login_call()
        try:
            return self._start_session(call, self._request(call))
        except ConsentioAuthError as exc:
            raise _rejected_key(self.settings, exc) from None

    def _access_token(self) -> str:
        token = self._tokens.get(self._cache_key)
        if token is not None:
            return token.value
        with self._tokens.login_lock(self._cache_key):
            token = self._tokens.get(self._cache_key)  # another thread may have logged in meanwhile
            return token.value if token is not None else self.login().access_token

    # --- transport -------------------------------------------------------------------------------------------

    def _request(self, call: _Call) -> Any:
        return self._json_body(call, *self._exchange(call, MAX_BODY_BYTES))

    def _list(self, call: _Call, keys: type[msgspec.Struct], envelope: str | None = None) -> list[RawRecord]:
        return self._records(call, *self._exchange(call, MAX_LIST_BYTES), keys, envelope)

    def _exchange(self, call: _Call, limit: int) -> tuple[httpx.Response, bytes]:
        """Send ``call`` until it succeeds or the retry budget is spent; return the whole body (at most ``limit``)."""
        budget = _RetryBudget(self.settings.retry, call)
        while True:
            try:
                return self._attempt(call, limit)
            except _TokenRejected as rejection:
                budget.relogin(rejection)
                self._tokens.discard(self._cache_key, rejection.token)
            except ConsentioTransientError as error:
                time.sleep(budget.next_delay(error))

    def _attempt(self, call: _Call, limit: int) -> tuple[httpx.Response, bytes]:
        token = self._access_token() if call.authenticated else None
        try:
            with self._http.stream(**self._request_args(call, token)) as response:
                body = _read_bounded(response.iter_bytes(), call.endpoint, limit)
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        self._check_status(call, response, body, token)
        return response, body

    # --- seller orders ---------------------------------------------------------------------------------------

    def get_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", status: str | None = None
    ) -> list[Order]:
        """Orders created in [start, end), parsed (numbers as exact Decimals, unknown fields kept)."""
        call = self._orders_call(start, end, kind, status)
        return self._models(call, self._request(call), Order)

    def iter_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", statuses: Sequence[str] | None = None
    ) -> Iterator[RawRecord]:
        """Orders created in [start, end), each as its exact source bytes with its key fields.

        Memory holds one response at a time, so fetch long ranges window by window. Several statuses are fetched
        one request each (the API filters on one status at a time).
        """
        wanted: Sequence[str | None] = statuses or [None]
        for call in [self._orders_call(start, end, kind, status) for status in wanted]:
            yield from self._list(call, OrderId)

    def update_external_references(self, references: Sequence[ExternalReference]) -> BatchResult:
        """Push ERP order IDs/statuses (or cancel); per-order failures come back in ``errors``."""
        call = self._external_references_call(references)
        return self._batch_result(call, self._request(call), "orders")

    def iter_edited_orders(self, since: datetime) -> list[RawRecord]:
        """Orders edited after acceptance at or after ``since`` whose edit was not marked seen yet."""
        return self._list(self._edited_orders_call(since), EditedOrderKeys)

    def get_edited_orders(self, since: datetime) -> list[Order]:
        call = self._edited_orders_call(since)
        return self._models(call, self._request(call), Order)

    def mark_orders_seen(self, hash_ids: Sequence[str]) -> BatchResult:
        """Acknowledge edits so they are not delivered again; ``saved`` lists the acknowledged hash IDs."""
        call = self._mark_seen_call(hash_ids)
        return self._batch_result(call, self._request(call), "seen")

    def prepare_order(self, hash_id: str) -> Order:
        """Mark every item of an order prepared (public endpoint: works without an API key)."""
        call = self._prepare_call(hash_id)
        return Order.model_validate(self._request(call))

    def get_export_template_methods(self) -> list[str]:
        call = self._template_methods_call()
        body = self._request(call)
        if not isinstance(body, list):
            raise ConsentioResponseError(f"{call.endpoint}: expected a JSON array, got {_json_kind(body)}")
        return [str(name) for name in body]

    # --- buyer -----------------------------------------------------------------------------------------------

    def upsert_purchase_needs(self, needs: Sequence[PurchaseNeed]) -> BatchResult:
        """Create or fully replace purchase needs by ``code``; rejected records come back in ``errors``."""
        call = self._upsert_purchase_needs_call(needs)
        return self._batch_result(call, self._request(call), "purchase_needs")

    def iter_purchase_needs(self, start_date: date, end_date: date, *, status: str | None = None) -> list[RawRecord]:
        """Purchase needs with start_date >= ``start_date`` and end_date <= ``end_date``, as exact bytes."""
        call = self._purchase_needs_call(start_date, end_date, status)
        return self._list(call, PurchaseNeedKeys, envelope="purchase_needs")

    def create_promoted_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Create an order on behalf of a buyer. Not retried once the request may have been received."""
        call = self._promoted_order_call(order)
        body = self._request(call)
        if not isinstance(body, dict):
            raise ConsentioResponseError(f"{call.endpoint}: expected a JSON object, got {_json_kind(body)}")
        return body


def _rejected_key(settings: ConsentioSettings, exc: ConsentioAuthError) -> ConsentioAuthError:
    return ConsentioAuthError(
        exc.endpoint,
        exc.status,
        f"Consentio rejected the API key for workspace {settings.workspace_id} ({exc.detail}). "
        "Check the connection's API key (password) and workspace ID (login).",
        exc.code,
    )


# ------------------------------------------------------------------------------------------------------
# Async client (for triggers)
# ------------------------------------------------------------------------------------------------------


class AsyncConsentioClient(_ClientCore):
    """Non-blocking twin of :class:`ConsentioClient` for triggers: same endpoints, retries and token cache."""

    def __init__(
        self,
        settings: ConsentioSettings,
        *,
        token_cache: TokenCache | None = None,
        on_secret: Callable[[str], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        super().__init__(settings, token_cache, on_secret)
        self._http = httpx.AsyncClient(**self._httpx_options(), transport=transport)
        self._login_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncConsentioClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def login(self) -> Session:
        call = self._login_call()
        try:
            return self._start_session(call, await self._request(call))
        except ConsentioAuthError as exc:
            raise _rejected_key(self.settings, exc) from None

    async def _access_token(self) -> str:
        token = self._tokens.get(self._cache_key)
        if token is not None:
            return token.value
        async with self._login_lock:
            token = self._tokens.get(self._cache_key)
            return token.value if token is not None else (await self.login()).access_token

    async def _request(self, call: _Call) -> Any:
        budget = _RetryBudget(self.settings.retry, call)
        while True:
            try:
                return self._json_body(call, *await self._attempt(call))
            except _TokenRejected as rejection:
                budget.relogin(rejection)
                self._tokens.discard(self._cache_key, rejection.token)
            except ConsentioTransientError as error:
                await asyncio.sleep(budget.next_delay(error))

    async def _attempt(self, call: _Call) -> tuple[httpx.Response, bytes]:
        token = await self._access_token() if call.authenticated else None
        try:
            async with self._http.stream(**self._request_args(call, token)) as response:
                body = await _aread_bounded(response.aiter_bytes(), call.endpoint)
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        self._check_status(call, response, body, token)
        return response, body

    async def get_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", status: str | None = None
    ) -> list[Order]:
        call = self._orders_call(start, end, kind, status)
        return self._models(call, await self._request(call), Order)

    async def get_edited_orders(self, since: datetime) -> list[Order]:
        call = self._edited_orders_call(since)
        return self._models(call, await self._request(call), Order)


async def _aread_bounded(chunks: AsyncIterator[bytes], endpoint: str) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ConsentioResponseError(f"{endpoint}: the response is larger than {MAX_BODY_BYTES // 2**20} MiB")
    return bytes(body)


__all__ = [
    "ENVIRONMENTS",
    "PROCESS_TOKEN_CACHE",
    "AsyncConsentioClient",
    "ConsentioClient",
    "ConsentioSettings",
    "RetryPolicy",
    "TokenCache",
    "resolve_base_url",
]
