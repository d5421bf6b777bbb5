"""Which fields of an input record a write model takes: what an export wrote can be sent back as it is.

A record read back from the API holds fields the caller never sends: read-only ones (IDs, timestamps, set by
Consentio) and fields the API added that this provider does not know. Both are dropped from the body, and the
write path logs one line per run naming them (operators/write_path.validate_input). A field whose name is close to a
known one is taken for a misspelling and stays an error: dropping ``client_nmae`` would lose the user's data
without a word. Models that keep unknown fields (products: their fields are not all documented) keep them.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

# How alike (difflib's ratio) an unknown field's name and a known one's must be for it to count as a misspelling:
# client_nmae/client_name is 0.91, quantiti/quantity 0.88; x_crm is far from every name.
MISSPELLING_CUTOFF = 0.8


def read_only() -> Any:
    """The declaration of a field Consentio sets: accepted on input (an exported file is sent back as is), never
    sent, and named in the write path's one "not sent" line."""
    return Field(default=None, exclude=True, json_schema_extra={"readOnly": True})


@dataclass
class DroppedFields:
    """The fields left out of the bodies of one run, each with how many records had it."""

    unknown: Counter[str] = field(default_factory=Counter)
    read_only: Counter[str] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.unknown or self.read_only)

    def describe(self) -> str:
        parts = []
        for kind, counts in (("unknown", self.unknown), ("read-only", self.read_only)):
            if counts:
                named = ", ".join(f"{name} ({count})" for name, count in sorted(counts.items()))
                parts.append(f"{kind} fields {named}")
        return "; ".join(parts)


def sent_fields(
    model: type[BaseModel], record: Mapping[str, Any], dropped: DroppedFields
) -> tuple[dict[str, Any], list[str]]:
    """``record`` without its read-only fields and (unless ``model`` keeps them) its unknown ones, counted in
    ``dropped``; and a problem line for each unknown field that looks like a misspelling of a known one."""
    known = _names(model)
    read_only_names = {name for name, spec in model.model_fields.items() if _is_read_only(spec.json_schema_extra)}
    keeps_unknown = model.model_config.get("extra") == "allow"
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in record.items():
        if name in read_only_names:
            dropped.read_only[name] += 1
        elif name in known:
            kept[name] = value
        elif close := difflib.get_close_matches(str(name), sorted(known - read_only_names), 1, MISSPELLING_CUTOFF):
            problems.append(f"{name} is not a known field (did you mean {close[0]}?)")
        elif keeps_unknown:
            kept[name] = value
        else:
            dropped.unknown[name] += 1
    return kept, problems


def _names(model: type[BaseModel]) -> set[str]:
    return {spec.alias or name for name, spec in model.model_fields.items()} | set(model.model_fields)


def _is_read_only(extra: Any) -> bool:
    return isinstance(extra, dict) and extra.get("readOnly") is True
