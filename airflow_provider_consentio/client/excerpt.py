"""A body quoted in an error message: short, on one line, readable (the client's retry and endpoint layers both
quote answers)."""

from __future__ import annotations

import re

_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def excerpt(text: str, limit: int = 200) -> str:
    """A short, single-line excerpt of a body (HTML tags dropped), for error messages."""
    if "<" in text[:200] and ">" in text:
        text = _TAGS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit] + "..."
