"""JSON on the wire, without loss and without holding whole responses in memory.

* :func:`iter_array_objects` reads a top-level JSON array from text chunks and yields each element's exact source
  text with its parsed value, so an export can write orders byte for byte as the API sent them while memory stays
  bounded by one element, not by the response.
* :func:`loads` parses with ``decimal.Decimal`` for every non-integer number, and :func:`dumps` writes Decimals
  back digit for digit: prices, quantities and metadata survive a round trip exactly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, NoReturn

# A single element bigger than this is treated as malformed input rather than buffered without bound.
MAX_ELEMENT_CHARS = 32 * 1024 * 1024

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_float=Decimal)


class JSONStreamError(ValueError):
    """The text is not a JSON array of objects; the message says where it went wrong."""


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


def compact_line(raw: str) -> str:
    """One element's source text as a single JSONL line.

    A JSON document can only hold a raw newline between tokens (the decoder rejects control characters inside
    strings), so turning line breaks into spaces changes no value.
    """
    if "\n" in raw or "\r" in raw:
        return raw.replace("\r", " ").replace("\n", " ")
    return raw


def iter_array_objects(chunks: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(source_text, parsed_object)`` for each element of a JSON array read from ``chunks``.

    Raises :class:`JSONStreamError` if the text is not an array of objects, is truncated, or has trailing data.
    """
    reader = _ArrayReader(iter(chunks))
    yield from reader.objects()


class _ArrayReader:
    def __init__(self, chunks: Iterator[str]):
        self._chunks = chunks
        self._buffer = ""
        self._pos = 0
        self._consumed = 0  # characters dropped from the front of the buffer, for error offsets
        self._exhausted = False
        self._count = 0

    def objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        self._expect("[", "the start of a JSON array")
        if self._peek() == "]":
            self._pos += 1
            self._expect_end()
            return
        while True:
            yield self._element()
            self._count += 1
            separator = self._peek()
            if separator == ",":
                self._pos += 1
            elif separator == "]":
                self._pos += 1
                self._expect_end()
                return
            else:
                self._fail(f"expected ',' or ']' after element #{self._count}, found {self._describe(separator)}")

    def _element(self) -> tuple[str, dict[str, Any]]:
        if self._peek() != "{":
            self._fail(f"element #{self._count + 1} is not a JSON object")
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._exhausted:
                    self._fail(f"element #{self._count + 1} is truncated or malformed ({exc.msg})")
                if len(self._buffer) - self._pos > MAX_ELEMENT_CHARS:
                    self._fail(f"element #{self._count + 1} is malformed or larger than {MAX_ELEMENT_CHARS} chars")
                self._read_more()
                continue
            raw = self._buffer[self._pos : end]
            self._pos = end
            return raw, value

    def _peek(self) -> str:
        """Skip whitespace and return the next character ('' at the end of the text)."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer) or self._exhausted:
                return self._buffer[self._pos : self._pos + 1]
            self._read_more()

    def _expect(self, char: str, what: str) -> None:
        found = self._peek()
        if found != char:
            self._fail(f"expected {what}, found {self._describe(found)}")
        self._pos += 1

    def _expect_end(self) -> None:
        trailing = self._peek()
        if trailing:
            self._fail(f"unexpected data after the end of the array: {self._describe(trailing)}")

    def _read_more(self) -> None:
        # Drop what is already parsed so the buffer holds at most the current element plus one chunk.
        self._consumed += self._pos
        self._buffer = self._buffer[self._pos :]
        self._pos = 0
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return
        self._exhausted = True

    def _describe(self, found: str) -> str:
        return repr(self._buffer[self._pos : self._pos + 20]) if found else "the end of the body"

    def _fail(self, message: str) -> NoReturn:
        raise JSONStreamError(f"{message} (at character {self._consumed + self._pos})")
