"""Sandbox tokens: HS256 JWTs signed with the stdlib, revocable, with a lifetime changeable at runtime."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any

ACCESS, REFRESH = "access", "refresh"


class TokenError(Exception):
    """Why a token is not accepted; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)
        self._live: dict[str, float] = {}  # jti -> exp, for access tokens not revoked
        self._lock = threading.Lock()

    def issue(self, workspace_id: int, ttl: float) -> dict[str, Any]:
        now = time.time()
        tokens = {}
        for kind, lifetime in ((ACCESS, ttl), (REFRESH, ttl * 24)):
            jti = secrets.token_hex(8)
            expires = int(now + lifetime)  # NumericDate: whole seconds, like iat
            claims: dict[str, Any] = {
                "sub": str(workspace_id),
                "ws": workspace_id,
                "typ": kind,
                "iat": int(now),
                "exp": expires,
                "jti": jti,
            }
            tokens[kind] = self._sign(claims)
            if kind == ACCESS:
                with self._lock:
                    self._live[jti] = expires
        return {
            "access_token": tokens[ACCESS],
            "refresh_token": tokens[REFRESH],
            "token_type": "Bearer",
            "expires_in": ttl,
        }

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, live access token; TokenError otherwise."""
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), expected):
                raise ValueError("bad signature")
            claims = json.loads(_unb64(payload))
        except ValueError:
            raise TokenError("invalid_token", "the access token is malformed or its signature is invalid") from None
        if not isinstance(claims, dict) or claims.get("typ") != ACCESS:
            raise TokenError("invalid_token", "not an access token")
        with self._lock:
            live = claims.get("jti") in self._live
        if not live or claims.get("exp", 0) < time.time():
            raise TokenError("token_expired", "the access token has expired or was revoked; log in again")
        return claims

    def revoke(self, token: str) -> None:
        try:
            claims = json.loads(_unb64(token.split(".")[1]))
        except (ValueError, IndexError):
            return
        with self._lock:
            self._live.pop(claims.get("jti"), None)

    def revoke_all(self) -> None:
        with self._lock:
            self._live.clear()
