"""What the provider assumes of each list answer, as data, and how an answer is compared with it.

The endpoint layer (endpoints.py) declares one :class:`ListingShape` per listing. The client holds every answer
to it, so that a drift fails with an error naming the endpoint and the field instead of a KeyError later, and
``airflow consentio check`` reports every difference it finds, with these same functions. No I/O, no Airflow.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Union, get_args, get_origin

import msgspec

# The wire kinds a field can be assumed to have. "decimal-string" is a number written as a JSON string ("12.50"),
# as the catalogue's documented convention has it; "number" is a JSON number (exact: parsed as Decimal).
KINDS = ("integer", "string", "number", "decimal-string", "timestamp", "date", "boolean")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Signs that an answer holds one page of a longer list. ASSUMPTION (endpoints.Listing.next_page): no listing pages.
PAGING_HEADERS = ("link", "x-next-page", "x-next-cursor", "x-has-more", "x-total-count", "x-total")
PAGING_KEYS = ("next", "next_page", "next_cursor", "cursor", "has_more", "total", "total_count")
RATE_LIMIT_HEADER = re.compile(r"(^|-)rate-?limit|^retry-after$", re.IGNORECASE)


@dataclass(frozen=True)
class ListingShape:
    """A list answer as the provider reads it.

    :param resource: what the listing lists, for messages ("orders", "purchase needs").
    :param keys: the key struct read of every record: its fields are required and typed (what operators use).
    :param typed: path -> kind of further fields, checked where present and not null (``items[].amount``: the
        ``amount`` of each element of ``items``).
    :param documented: the record's known top-level fields; any other is reported as unknown (it is kept as is).
    :param envelope: the object key the array may arrive in (``{"purchase_needs": [...]}``); None: a bare array.
    :param element: ``object`` (records) or ``string`` (a list of names).
    :param windowed: selected by a [from, to) time window (so halves of a window must add up).
    """

    resource: str
    keys: type[msgspec.Struct] | None = None
    typed: Mapping[str, str] = field(default_factory=dict)
    documented: frozenset[str] = frozenset()
    envelope: str | None = None
    element: str = "object"
    windowed: bool = False

    def __post_init__(self) -> None:
        unknown = {kind for kind in self.typed.values() if kind not in KINDS}
        if unknown:
            raise ValueError(f"{self.resource}: unknown field kinds {sorted(unknown)} (use {', '.join(KINDS)})")

    def key_fields(self, keys: type[msgspec.Struct] | None = None) -> dict[str, tuple[str, bool]]:
        """Wire name -> (kind, required) of the key struct's fields."""
        struct = keys or self.keys
        if struct is None:
            return {}
        return {info.encode_name: (_kind_of_type(info.type), info.required) for info in msgspec.structs.fields(struct)}

    def assumed_envelope(self) -> str:
        return "a bare JSON array" + (f' (or {{"{self.envelope}": [...]}})' if self.envelope else "")


@dataclass(frozen=True)
class Difference:
    """One way an answer differs from its shape. ``breaking``: an operator reading it fails or writes wrong data."""

    field: str
    problem: str
    breaking: bool = True
    example: str | None = None  # the value that differs, shortened (kept out of the problem so answers aggregate)

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" + (f" (e.g. {self.example})" if self.example else "")


def _kind_of_type(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    return {int: "integer", str: "string", bool: "boolean", float: "number"}.get(annotation, "string")


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def has_kind(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float | Decimal)
    if not isinstance(value, str):
        return False
    if kind == "decimal-string":
        try:
            return Decimal(value.strip()).is_finite()
        except InvalidOperation:
            return False
    if kind == "timestamp":
        return bool(_RFC3339.match(value))
    return bool(_DATE.match(value)) if kind == "date" else True


_KIND_WORDS = {
    "integer": "an integer",
    "string": "a string",
    "number": "a JSON number",
    "decimal-string": 'a number written as a string ("12.50")',
    "timestamp": "an RFC3339 timestamp string",
    "date": "a YYYY-MM-DD date string",
    "boolean": "a boolean",
}


def _mismatch(path: str, kind: str, value: Any) -> Difference:
    shown = repr(value) if not isinstance(value, Decimal) else str(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return Difference(path, f"is {json_kind(value)}, assumed {_KIND_WORDS[kind]}", example=shown)


def records_of(shape: ListingShape, value: Any) -> tuple[list[Any], Difference | None]:
    """The records of an answer, and the envelope difference if it is not the one assumed.

    A differing object still yields the array it holds (when it holds exactly one), so its records can be checked.
    """
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict):
        if shape.envelope and isinstance(value.get(shape.envelope), list):
            return value[shape.envelope], None
        arrays = [key for key, inner in value.items() if isinstance(inner, list)]
        keys = ", ".join(map(str, value)) or "none"
        problem = f"the answer is an object (keys: {keys}), assumed {shape.assumed_envelope()}"
        return (value[arrays[0]] if len(arrays) == 1 else []), Difference("(envelope)", problem)
    return [], Difference("(envelope)", f"the answer is {json_kind(value)}, assumed {shape.assumed_envelope()}")


def record_differences(shape: ListingShape, record: Any, keys: type[msgspec.Struct] | None = None) -> list[Difference]:
    """How one record differs: key fields missing or retyped, typed fields retyped, unknown fields (not breaking)."""
    if shape.element == "string":
        return [] if isinstance(record, str) else [Difference("(element)", f"is {json_kind(record)}, assumed a string")]
    if not isinstance(record, dict):
        return [Difference("(record)", f"is {json_kind(record)}, assumed an object")]
    differences: list[Difference] = []
    known = shape.documented | set(shape.key_fields(keys))
    unknown = [name for name in record if known and name not in known]
    for name, (kind, required) in shape.key_fields(keys).items():
        if name not in record or record[name] is None:
            if required:
                hint = f" (the record has fields the provider does not know: {', '.join(unknown)})" if unknown else ""
                differences.append(Difference(name, f"missing{hint}"))
        elif not has_kind(kind, record[name]):
            differences.append(_mismatch(name, kind, record[name]))
    for path, kind in shape.typed.items():
        differences += [_mismatch(path, kind, value) for value in _values_at(record, path) if not has_kind(kind, value)]
    differences += [Difference(name, "unknown field (kept as received)", breaking=False) for name in unknown]
    return differences


def _values_at(record: Any, path: str) -> Iterator[Any]:
    """The present, non-null values at ``path`` (``items[].amount``: every item's amount)."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    value = record.get(head.removesuffix("[]")) if isinstance(record, dict) else None
    if value is None:
        return
    for inner in value if many and isinstance(value, list) else [value]:
        if rest:
            yield from _values_at(inner, rest)
        elif inner is not None:
            yield inner


def paging_differences(headers: Mapping[str, str], value: Any, count: int) -> list[Difference]:
    """Signs in the headers or the envelope that the answer is one page of more (the provider reads one answer)."""
    signs: list[str] = []
    for name in PAGING_HEADERS:
        header = headers.get(name)
        if header is None or (name == "link" and 'rel="next"' not in header.replace("'", '"')):
            continue
        if name in ("x-total-count", "x-total") and header.strip().isdigit() and int(header) <= count:
            continue
        if name == "x-has-more" and header.strip().lower() in ("false", "0"):
            continue
        signs.append(f"header {name}: {header[:80]}")
    if isinstance(value, dict):
        for key in PAGING_KEYS:
            inner = value.get(key)
            if inner in (None, False, "") or (key.startswith("total") and isinstance(inner, int) and inner <= count):
                continue
            signs.append(f"envelope key {key}: {str(inner)[:80]}")
    if not signs:
        return []
    problem = f"{'; '.join(signs)}, with {count} records in the answer: the listing pages or caps its answers, " + (
        "assumed one answer holds the whole selection"
    )
    return [Difference("(paging)", problem)]


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if RATE_LIMIT_HEADER.search(name)}


def breaking(differences: list[Difference]) -> list[Difference]:
    """The breaking differences, each (field, problem) once: a record's items that differ alike say it once."""
    return distinct([difference for difference in differences if difference.breaking])


def distinct(differences: list[Difference]) -> list[Difference]:
    firsts: dict[tuple[str, str, bool], Difference] = {}
    for difference in differences:
        firsts.setdefault((difference.field, difference.problem, difference.breaking), difference)
    return list(firsts.values())
