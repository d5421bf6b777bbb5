"""JSON as the sandbox stores and serves it: exact decimal numbers, C-speed encoding.

Numbers that are not integers are held as *marked strings* (``"\\x00n12.50"``): ``json.dumps`` encodes them as
strings at C speed and one regular-expression pass turns them back into bare JSON numbers, digit for digit.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

NUMBER_MARK = "\x00n"
_MARKED_NUMBER = re.compile(r'"\\u0000n(-?[0-9][0-9.eE+-]*)"')


class Num(str):
    """A stored number: its exact text behind the mark (a str subclass, so json.dumps handles it in C)."""

    __slots__ = ()


def num(value: Decimal | int | str) -> Num:
    """A number to store: kept exactly as written."""
    return Num(NUMBER_MARK + str(value))


def is_num(value: Any) -> bool:
    return isinstance(value, Num)


def dec(value: Any) -> Decimal:
    """The Decimal of a stored number (marked string or int)."""
    if is_num(value):
        return Decimal(value[len(NUMBER_MARK) :])
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise InvalidOperation(f"not a number: {value!r}")


def encode(value: Any) -> bytes:
    return _MARKED_NUMBER.sub(r"\1", json.dumps(value, ensure_ascii=False, separators=(",", ":"))).encode()


def decode(body: bytes | str) -> Any:
    """Parse a request body; non-integer numbers become marked strings (exact), integers stay ints."""
    return json.loads(body, parse_float=num)


def has_control_mark(value: Any) -> bool:
    """Whether user input has a NUL in a string (the number mark: it must not come back as a number)."""
    if isinstance(value, str):
        return not is_num(value) and "\x00" in value
    if isinstance(value, dict):
        return any(has_control_mark(k) or has_control_mark(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_control_mark(v) for v in value)
    return False
