"""JSON on the wire, without loss.

* :func:`split_array` cuts a JSON array into its elements' exact source bytes without building Python objects
  (msgspec validates the syntax while it skips), so an export writes orders byte for byte as the API sent them at
  close to download speed.
* :func:`loads` parses with ``decimal.Decimal`` for every non-integer number, and :func:`dumps` writes Decimals
  back digit for digit: prices, quantities and metadata survive a round trip exactly.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import msgspec

_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])


class JSONShapeError(ValueError):
    """The body is not the JSON the caller expects; the message says what is wrong and where."""


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as an exact ``Decimal``."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Serialize like ``json.dumps`` (compact, UTF-8 kept) but write ``Decimal`` as an exact JSON number."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a valid JSON number")
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a valid JSON number")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def split_array(body: bytes, envelope: str | None = None) -> tuple[bytes | msgspec.Raw, list[msgspec.Raw]]:
    """The array's own bytes and the exact bytes of each of its elements (``msgspec.Raw``: bytes-like, no copies).

    With ``envelope``, an object ``{envelope: [...]}`` is accepted too. Raises :class:`JSONShapeError`.
    """
    try:
        if envelope and body.lstrip()[:1] == b"{":
            wrapper = _ENVELOPE.decode(body)
            if envelope not in wrapper:
                raise JSONShapeError(f"an object without an '{envelope}' array")
            array: bytes | msgspec.Raw = wrapper[envelope]
        else:
            array = body
        return array, _ELEMENTS.decode(array)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise JSONShapeError(str(exc)) from None


def has_line_breaks(body: bytes) -> bool:
    return b"\n" in body or b"\r" in body


def compact_line(raw: bytes | msgspec.Raw) -> bytes:
    """One element's source bytes as a single JSONL line.

    A JSON document can only hold a raw line break between tokens (control characters are invalid inside
    strings), so turning line breaks into spaces changes no value.
    """
    return bytes(raw).replace(b"\r", b" ").replace(b"\n", b" ")
