"""Fault injection for the Partner API routes (never for /_sandbox), reproducible under a seed.

A plan is a list of rules, each firing with a ``probability`` or on ``every`` Nth matching request; a rule with
``burst: n`` then also answers the next n - 1 matching requests the same way (an outage, not a blip):

* ``429`` (with ``Retry-After: retry_after`` seconds), ``500``, ``502`` (an HTML page, like a proxy), ``503``;
  with ``after_applying: true`` the request is handled first (a write is applied) and its answer replaced by
  the error, as when a proxy times out on a server that went on working;
* ``slow``: wait ``delay`` seconds, then answer normally;
* ``drop``: answer normally (a write is applied) but cut the connection after the headers and half the body;
* ``expire_token``: revoke the request's token, so it is answered 401 token_expired;
* ``garbage``: answer 200 with a body that is not what the endpoint returns (``variant``: html, truncated,
  empty or wrong_shape; default html);
* ``echo_token``: answer normally, but quote the request's bearer token in every per-record error of a batch
  answer (``"errors": [...]``), as some APIs echo request headers in their messages.

The plan's ``listing_lag`` (seconds, default 0) makes the order listing (GET /order) show an order created through
the API (POST /promoted-order, the admin's add) only that long after its creation: the read-after-write lag of many
real APIs. It applies whatever the plan's ``paths`` and ``methods``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_consentio.sandbox.state import Stats
from airflow_provider_consentio.sandbox.wire import decode, encode

FAULT_KINDS = ("429", "500", "502", "503", "slow", "drop", "expire_token", "garbage", "echo_token")
STATUS_KINDS = ("429", "500", "502", "503")
GARBAGE_VARIANTS = ("html", "truncated", "empty", "wrong_shape")
PARTNER_PREFIX = "/v2/partner"
BAD_GATEWAY_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


class DroppedConnection(Exception):
    """Raised mid-response so the server closes the connection (and filtered out of its error log)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


@dataclass
class Rule:
    kind: str
    probability: float | None = None
    every: int | None = None
    retry_after: float = 1.0
    delay: float = 1.0
    variant: str = "html"
    burst: int = 1
    after_applying: bool = False
    matched: int = 0
    burst_left: int = 0

    @classmethod
    def parse(cls, raw: Any) -> Rule:
        if not isinstance(raw, dict) or raw.get("kind") not in FAULT_KINDS:
            raise ValueError(f"each rule needs a kind in {', '.join(FAULT_KINDS)}")
        fields = {"kind", "probability", "every", "retry_after", "delay", "variant", "burst", "after_applying"}
        unknown = set(raw) - fields
        if unknown:
            raise ValueError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        rule = cls(**raw)
        if (rule.probability is None) == (rule.every is None):
            raise ValueError("each rule needs exactly one of probability or every")
        if rule.every is not None and (not isinstance(rule.every, int) or rule.every < 1):
            raise ValueError("every must be a positive integer")
        if rule.probability is not None and not 0 <= rule.probability <= 1:
            raise ValueError("probability must be between 0 and 1")
        if not isinstance(rule.burst, int) or rule.burst < 1:
            raise ValueError("burst must be a positive integer")
        if rule.variant not in GARBAGE_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(GARBAGE_VARIANTS)}")
        if not isinstance(rule.after_applying, bool) or (rule.after_applying and rule.kind not in STATUS_KINDS):
            raise ValueError(f"after_applying is true or false, and only for the kinds {', '.join(STATUS_KINDS)}")
        return rule


@dataclass
class FaultPlan:
    rules: list[Rule] = field(default_factory=list)
    seed: int = 0
    paths: str | None = None
    methods: list[str] | None = None
    listing_lag: float = 0.0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, raw: Any) -> FaultPlan:
        if not isinstance(raw, dict):
            raise ValueError("the fault plan must be an object")
        unknown = set(raw) - {"rules", "seed", "paths", "methods", "listing_lag"}
        if unknown:
            raise ValueError(f"unknown plan field(s): {', '.join(sorted(unknown))}")
        plan = cls(
            rules=[Rule.parse(rule) for rule in raw.get("rules") or []],
            seed=int(raw.get("seed", 0)),
            paths=raw.get("paths"),
            methods=[m.upper() for m in raw["methods"]] if raw.get("methods") else None,
            listing_lag=raw.get("listing_lag", 0.0),
        )
        if isinstance(plan.listing_lag, bool) or not isinstance(plan.listing_lag, int | float) or plan.listing_lag < 0:
            raise ValueError("listing_lag must be a number of seconds, 0 or more")
        if plan.paths:
            try:
                re.compile(plan.paths)
            except re.error as exc:
                raise ValueError(f"paths is not a regular expression: {exc}") from None
        plan._rng.seed(plan.seed)
        return plan

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "paths": self.paths,
            "methods": self.methods,
            "listing_lag": self.listing_lag,
            "rules": [
                {k: v for k, v in rule.__dict__.items() if v is not None and k not in ("matched", "burst_left")}
                for rule in self.rules
            ],
        }

    def pick(self, method: str, path: str) -> Rule | None:
        if not self.rules or (self.methods and method not in self.methods):
            return None
        if self.paths and not re.search(self.paths, path):
            return None
        with self._lock:
            for rule in self.rules:
                rule.matched += 1
            for rule in self.rules:
                if rule.burst_left:
                    rule.burst_left -= 1
                    return rule
            for rule in self.rules:
                fires = (rule.every is not None and rule.matched % rule.every == 0) or (
                    rule.probability is not None and self._rng.random() < rule.probability
                )
                if fires:
                    rule.burst_left = rule.burst - 1
                    return rule
        return None


class FaultMiddleware:
    """Pure ASGI middleware: decides per request whether and how to misbehave."""

    def __init__(self, app: Any, holder: Any):
        self.app = app
        self.holder = holder  # has .faults (FaultPlan), .stats (Stats), .issuer (TokenIssuer)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PARTNER_PREFIX):
            await self.app(scope, receive, send)
            return
        rule = self.holder.faults.pick(scope["method"], scope["path"])
        stats: Stats = self.holder.stats
        if rule is None:
            await self.app(scope, receive, send)
            return
        stats.faults[rule.kind] += 1
        if rule.after_applying:
            await self.app(scope, receive, _discard)
        if rule.kind in ("429", "500", "503"):
            headers = [(b"retry-after", str(rule.retry_after).encode())] if rule.kind == "429" else []
            message = {"429": "rate limit exceeded", "500": "internal error", "503": "service unavailable"}[rule.kind]
            code = {"429": "rate_limited", "500": "internal_error", "503": "unavailable"}[rule.kind]
            body = json.dumps({"error": code, "message": message}).encode()
            await _respond(send, int(rule.kind), body, b"application/json", headers)
        elif rule.kind == "502":
            await _respond(send, 502, BAD_GATEWAY_HTML, b"text/html; charset=utf-8")
        elif rule.kind == "garbage":
            await _respond(send, 200, *_garbage(rule.variant))
        elif rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            await self.app(scope, receive, send)
        elif rule.kind == "expire_token":
            self.holder.issuer.revoke(_bearer_token(scope))
            await self.app(scope, receive, send)
        elif rule.kind == "echo_token":
            await self.app(scope, receive, _TokenEchoingSend(send, _bearer_token(scope)))
        else:  # drop
            await self.app(scope, receive, _DroppingSend(send))


def _bearer_token(scope: dict[str, Any]) -> str:
    return str(dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ").strip())


async def _discard(message: dict[str, Any]) -> None:
    """The answer of a request whose reply a fault replaces: the write is applied, nothing reaches the client."""


def _garbage(variant: str) -> tuple[bytes, bytes]:
    if variant == "truncated":
        return b'[{"id": 1, "hash_id": "abc", "status": "acc', b"application/json"
    if variant == "empty":
        return b"", b"application/json"
    if variant == "wrong_shape":
        return b'{"data": "not what this endpoint returns"}', b"application/json"
    return b"<html><body><h1>Maintenance</h1><p>Back soon.</p></body></html>", b"text/html; charset=utf-8"


async def _respond(
    send: Any, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _DroppingSend:
    """Passes the headers and half of the body through, then cuts the connection."""

    def __init__(self, send: Any):
        self._send = send
        self._body = bytearray()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await self._send(message)
            return
        self._body += message.get("body", b"")
        if message.get("more_body"):
            return
        await self._send(
            {"type": "http.response.body", "body": bytes(self._body[: len(self._body) // 2]), "more_body": True}
        )
        raise DroppedConnection("connection dropped by the sandbox's fault plan")


class _TokenEchoingSend:
    """Holds the answer back and, if it is a batch answer with per-record errors, quotes the token in each one."""

    def __init__(self, send: Any, token: str):
        self._send = send
        self._token = token
        self._start: dict[str, Any] | None = None
        self._body = bytearray()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        self._body += message.get("body", b"")
        if message.get("more_body"):
            return
        body = self._echoed(bytes(self._body))
        start = self._start or {"type": "http.response.start", "status": 200, "headers": []}
        headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
        await self._send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "http.response.body", "body": body})

    def _echoed(self, body: bytes) -> bytes:
        try:
            answer = decode(body)
        except (ValueError, UnicodeDecodeError):
            return body
        if not isinstance(answer, dict) or not isinstance(answer.get("errors"), list) or not answer["errors"]:
            return body
        answer["errors"] = [f"{error} (request authorised by Bearer {self._token})" for error in answer["errors"]]
        return encode(answer)
