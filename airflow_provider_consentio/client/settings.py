"""Client settings: where the API is, how long to wait, how much to hold; refuses unsafe URLs before any request."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_consentio import __version__
from airflow_provider_consentio.client.endpoints import PARTNER_PREFIX
from airflow_provider_consentio.client.retry import RetryPolicy
from airflow_provider_consentio.errors import ConsentioConfigError

ENVIRONMENTS: dict[str, str] = {
    "production": "https://api.consentio.co",
    "staging": "https://staging.api.consentio.co",
    "sandbox": "https://sandbox.api.consentio.co",
}
USER_AGENT = f"airflow-provider-consentio/{__version__}"


@dataclass(frozen=True)
class ConsentioSettings:
    """Everything a client needs. Build ``base_url`` with :func:`resolve_base_url`.

    :param max_body_bytes: answers larger than this are refused rather than held in memory.
    :param max_list_bytes: the same for list answers (one export sub-window), which may be larger.
    """

    workspace_id: int
    base_url: str = ENVIRONMENTS["production"]
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None
    max_connections: int = 10
    max_body_bytes: int = 64 * 1024 * 1024
    max_list_bytes: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        if isinstance(self.workspace_id, bool) or not isinstance(self.workspace_id, int) or self.workspace_id <= 0:
            raise ConsentioConfigError(f"workspace_id must be a positive integer, got {self.workspace_id!r}")
        if not self.timeout > 0:
            raise ConsentioConfigError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.max_connections < 1:
            raise ConsentioConfigError(f"max_connections must be at least 1, got {self.max_connections!r}")
        if self.max_body_bytes < 1 or self.max_list_bytes < 1:
            raise ConsentioConfigError(
                f"max_body_bytes and max_list_bytes must be positive ({self.max_body_bytes}, {self.max_list_bytes})"
            )
        require_secure_url(self.base_url)

    def httpx_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        verify: ssl.SSLContext | bool = True
        if self.ca_bundle:
            verify = ssl.create_default_context(cafile=self.ca_bundle)
        return {
            "base_url": self.base_url + PARTNER_PREFIX,
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            "verify": verify,
            "limits": httpx.Limits(
                max_connections=self.max_connections, max_keepalive_connections=self.max_connections
            ),
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
        }


def resolve_base_url(environment: str | None = None, base_url: str | None = None) -> str:
    """The API root for an explicit ``base_url`` (wins) or a named environment (default production).

    A bare host gets ``https://``; a trailing ``/v2/partner`` is dropped (the client adds it).
    """
    if base_url and base_url.strip():
        url = base_url.strip()
        if "://" not in url:
            url = f"https://{url}"
    else:
        name = (environment or "production").strip().lower()
        if name not in ENVIRONMENTS:
            raise ConsentioConfigError(
                f"Unknown Consentio environment {environment!r}: use one of {', '.join(ENVIRONMENTS)} "
                "or give a base URL"
            )
        url = ENVIRONMENTS[name]
    url = url.rstrip("/")
    url = url.removesuffix(PARTNER_PREFIX)
    require_secure_url(url)
    return url


def require_secure_url(url: str) -> None:
    """Refuse anything but https, except plain http to a loopback host; refuse credentials in the URL."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    if parts.username or parts.password:
        raise ConsentioConfigError(f"The Consentio base URL must not contain credentials ({shown}...)")
    if not parts.hostname:
        raise ConsentioConfigError(f"The Consentio base URL has no host: {shown!r}")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConsentioConfigError(
        f"Refusing base URL {shown!r}: the API key and tokens would cross the network unencrypted. "
        "Use https:// (plain http is allowed only for loopback hosts such as the local sandbox)."
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
