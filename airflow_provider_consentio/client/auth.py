"""Auth: access tokens from a login, their lifetime, the process-wide token cache, and redaction of every secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

from airflow_provider_consentio.errors import ConsentioAuthError
from airflow_provider_consentio.models import Session

# Renew a token this long before it expires: 10% of its lifetime, at most a minute.
RENEW_MARGIN_MAX = 60.0
RENEW_MARGIN_SHARE = 0.1


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    renew_at: float | None  # time.monotonic() after which to log in again; None: lifetime unknown

    def usable(self) -> bool:
        return self.renew_at is None or time.monotonic() < self.renew_at


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


def cache_key(base_url: str, workspace_id: int, api_key: str | None) -> str:
    """One cache entry per API root, workspace and key; the key itself is never stored, only a fingerprint."""
    fingerprint = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"{base_url}|{workspace_id}|{fingerprint}"


def token_from_session(session: Session) -> tuple[_Token, float | None]:
    """The token to cache for a login, renewed a margin before it expires, and its lifetime in seconds."""
    lifetime = _token_lifetime(session)
    renew_at = None
    if lifetime is not None:
        renew_at = time.monotonic() + lifetime - min(RENEW_MARGIN_MAX, RENEW_MARGIN_SHARE * lifetime)
    return _Token(session.access_token, renew_at), lifetime


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


class Secrets:
    """The API key and every token a client has seen: handed to ``on_secret`` (e.g. Airflow's mask_secret) and
    cut out of any text an error message is built from."""

    def __init__(self, on_secret: Callable[[str], None] | None) -> None:
        self._known: set[str] = set()
        self._on_secret = on_secret or (lambda secret: None)

    def remember(self, secret: str) -> None:
        if secret in self._known:
            return
        self._known.add(secret)
        self._on_secret(secret)

    @overload
    def redact(self, text: str) -> str: ...

    @overload
    def redact(self, text: bytes) -> bytes: ...

    def redact(self, text: str | bytes) -> str | bytes:
        """``text`` with every known secret replaced by ``***``: the one redaction every text from the API passes
        through (ClientBase._received applies it to each answer's body before anything reads it)."""
        for secret in self._known:
            if not secret:
                continue
            if isinstance(text, bytes):
                if secret.encode() in text:
                    text = text.replace(secret.encode(), b"***")
            elif secret in text:
                text = text.replace(secret, "***")
        return text


def rejected_key(workspace_id: int, exc: ConsentioAuthError) -> ConsentioAuthError:
    """A failed login, worded for the person who set up the connection."""
    return ConsentioAuthError(
        exc.endpoint,
        exc.status,
        f"Consentio rejected the API key for workspace {workspace_id} ({exc.detail}). "
        "Check the connection's API key (password) and workspace ID (login).",
        exc.code,
    )
