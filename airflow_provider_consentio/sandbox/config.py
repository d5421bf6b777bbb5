"""Sandbox settings: what data to generate and how tokens behave. The same config always gives the same data."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any


@dataclass(frozen=True)
class SandboxConfig:
    seed: int = 42
    start: date = date(2025, 1, 1)
    days: int = 90
    orders_per_day: int = 40
    token_ttl: int = 3600
    workspace_id: int = 1001
    other_workspace_id: int = 2002
    # Listings answered with the provider's assumptions changed (drift.py's DRIFT_MODES); none by default.
    drift: tuple[str, ...] = ()
    drift_cap: int = 10
    # A leaky bucket over the Partner API (rate_limit.py): leaks rate_limit requests/s, holds rate_burst; 0: off.
    rate_limit: float = 0.0
    rate_burst: int = 0

    def __post_init__(self) -> None:
        from airflow_provider_consentio.sandbox.drift import check_modes

        object.__setattr__(self, "drift", check_modes(self.drift))
        if not isinstance(self.drift_cap, int) or self.drift_cap < 1:
            raise ValueError(f"drift_cap must be a positive integer, got {self.drift_cap!r}")
        if isinstance(self.rate_limit, bool) or not isinstance(self.rate_limit, int | float) or self.rate_limit < 0:
            raise ValueError(f"rate_limit must be a number of requests/s, 0 or more, got {self.rate_limit!r}")
        if isinstance(self.rate_burst, bool) or not isinstance(self.rate_burst, int) or self.rate_burst < 0:
            raise ValueError(f"rate_burst must be a whole number of requests, got {self.rate_burst!r}")

    @property
    def rate_capacity(self) -> int:
        """The bucket's capacity: rate_burst, or one second's worth of the rate when it is 0."""
        return self.rate_burst or max(1, round(self.rate_limit))

    @property
    def api_key(self) -> str:
        return _derived_key(self.seed, "main")

    @property
    def other_api_key(self) -> str:
        return _derived_key(self.seed, "other")

    def with_overrides(self, overrides: dict[str, Any]) -> SandboxConfig:
        values = dict(overrides)
        if isinstance(values.get("start"), str):
            values["start"] = date.fromisoformat(values["start"])
        unknown = set(values) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown sandbox settings: {', '.join(sorted(unknown))}")
        return replace(self, **values)

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "start": self.start.isoformat(), "drift": list(self.drift)}


def _derived_key(seed: int, name: str) -> str:
    return "sbx_" + hashlib.sha256(f"consentio-sandbox/{seed}/{name}".encode()).hexdigest()[:32]
