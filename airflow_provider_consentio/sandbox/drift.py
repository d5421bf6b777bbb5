"""Drift: the sandbox answers its listings with the provider's assumptions changed, as a real workspace might.

``SandboxConfig(drift=("renamed_key",))``, ``python -m airflow_provider_consentio.sandbox --drift renamed_key`` or
``POST /_sandbox/reset {"drift": ["data_envelope"]}``. The modes, applied to every GET listing of the Partner API:

* ``renamed_key``: each record's key field under another name (orders ``id`` -> ``order_id``, purchase needs
  ``code`` -> ``need_code``, products ``sku`` -> ``product_sku``, clients ``client_external_id`` ->
  ``external_client_id``, addresses ``external_id`` -> ``address_external_id``);
* ``amount_as_string``: the numbers of orders (price, item amount, price, total_price) and purchase needs
  (quantity) as JSON strings (``"10"``) instead of numbers;
* ``amount_as_number``: the product ``base_price`` as a JSON number instead of the documented string;
* ``data_envelope``: the array inside ``{"data": [...]}``;
* ``capped``: at most ``drift_cap`` records per answer, the full count in an ``X-Total-Count`` header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from airflow_provider_consentio.sandbox.wire import decode, encode

DRIFT_MODES = ("renamed_key", "amount_as_string", "amount_as_number", "data_envelope", "capped")
_LISTINGS = {
    # route (below /v2/partner/{ws}) -> (key field, its drifted name, number fields sent as strings)
    "order": ("id", "order_id", ("price", "items.amount", "items.price", "items.total_price")),
    "order/edited": ("id", "order_id", ("price", "items.amount", "items.price", "items.total_price")),
    "purchase-needs": ("code", "need_code", ("quantity",)),
    "products": ("sku", "product_sku", ()),
    "client": ("client_external_id", "external_client_id", ()),
    "client/address": ("external_id", "address_external_id", ()),
}
_LISTING_PATH = re.compile(r"^/v2/partner/\d+/(order|order/edited|purchase-needs|products|client|client/address)$")


def check_modes(modes: Any) -> tuple[str, ...]:
    values = tuple(modes or ())
    unknown = [mode for mode in values if mode not in DRIFT_MODES]
    if unknown:
        raise ValueError(f"unknown drift mode(s) {', '.join(map(str, unknown))}: use {', '.join(DRIFT_MODES)}")
    return values


class DriftMiddleware:
    """Pure ASGI middleware: rewrites the 200 answers of the listings per ``sandbox.config.drift``."""

    def __init__(self, app: Any, sandbox: Any):
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        modes = self.sandbox.config.drift
        match = _LISTING_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if not modes or match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def collecting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            content = bytes(body)
            if start["status"] == 200:
                content, extra = drifted(decode(content), match.group(1), modes, self.sandbox.config.drift_cap)
                headers += extra
            headers.append((b"content-length", str(len(content)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, collecting_send)


def drifted(
    records: list[Any], route: str, modes: tuple[str, ...], cap: int
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The answer's body and extra headers with ``modes`` applied to ``records``."""
    key, renamed, numbers = _LISTINGS[route]
    headers: list[tuple[bytes, bytes]] = []
    if "capped" in modes and len(records) > cap:
        headers.append((b"x-total-count", str(len(records)).encode()))
        records = records[:cap]
    if "renamed_key" in modes:
        records = [{renamed if name == key else name: value for name, value in r.items()} for r in records]
    if "amount_as_string" in modes:
        for record in records:
            for path in numbers:
                _rewrite(record, path.split("."), lambda value: str(value) if _is_number(value) else value)
    if "amount_as_number" in modes:
        for record in records:
            _rewrite(record, ["base_price"], lambda value: Decimal(value) if isinstance(value, str) else value)
    document: Any = {"data": records} if "data_envelope" in modes else records
    return encode(document), headers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _rewrite(record: Any, path: list[str], change: Callable[[Any], Any]) -> None:
    head, rest = path[0], path[1:]
    value = record.get(head) if isinstance(record, dict) else None
    if value is None:
        return
    if rest:
        for inner in value if isinstance(value, list) else [value]:
            _rewrite(inner, rest, change)
    else:
        record[head] = change(value)
