"""JSON as the sandbox stores and serves it: exact decimal numbers, C-speed encoding.

Every number that is not an integer is held as a ``Decimal`` (from the generator, or parsed from a request body)
and msgspec writes it back as a bare JSON number, digit for digit (``decimal_format="number"``).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder(decimal_format="number")


def num(value: Decimal | int | str) -> Decimal:
    """A number to store: kept exactly as written."""
    return _number(str(value))


# Decimals are immutable, so equal numbers can share one object: items repeat a few hundred prices and amounts,
# and at 10,000 orders a day over 9 days (90,000 orders, 400,000 items) sharing them takes the sandbox from 662 MB to
# 445 MB (its start time, 7-9 s, does not change). Bounded: the unique numbers (weights, totals) pass through.
@lru_cache(maxsize=8192)
def _number(text: str) -> Decimal:
    return Decimal(text)


def is_num(value: Any) -> bool:
    return isinstance(value, Decimal)


def dec(value: Any) -> Decimal:
    """The Decimal of a stored number (Decimal or int)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise InvalidOperation(f"not a number: {value!r}")


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode(body: bytes | str) -> Any:
    """Parse a request body; non-integer numbers become exact Decimals; NaN and Infinity are not JSON."""
    return json.loads(body, parse_float=Decimal, parse_constant=_no_constants)


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds a NUL character (PostgreSQL text cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
