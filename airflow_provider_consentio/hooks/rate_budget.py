"""The connection's rate budget: the limit from its extras, and the store's Airflow connection turned into a URL, so
that the client, which imports no Airflow, gets a plain ``RateLimit``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_consentio.client.rate_budget import RateLimit
from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.hooks.connection_fields import RATE_BURST, RATE_LIMIT, RATE_STORE, extra_value

if TYPE_CHECKING:
    from airflow.sdk import Connection


def store_conn_id(conn: Connection, conn_type: str) -> str | None:
    """The ID of the store's connection, when the connection names one and sets a rate limit."""
    if not _rate(conn, conn_type):
        return None
    conn_id = extra_value(conn.extra_dejson, conn_type, RATE_STORE.key)
    return (str(conn_id).strip() or None) if conn_id is not None else None


def rate_limit(conn: Connection, conn_type: str, store: Connection | None) -> RateLimit | None:
    """The connection's rate limit, or None when it sets none; ``store`` is the connection :func:`store_conn_id`
    names."""
    rate = _rate(conn, conn_type)
    if not rate:
        return None
    burst = extra_value(conn.extra_dejson, conn_type, RATE_BURST.key)
    try:
        return RateLimit(
            per_second=rate,
            burst=max(1, round(rate)) if burst is None else int(burst),
            store_url=redis_url(store) if store is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise ConsentioConfigError(f"the rate budget: {exc}") from None


def redis_url(store: Connection) -> str:
    """A ``redis://`` URL from an Airflow Redis connection (the redis provider's fields: host, port, login,
    password, extras ``db`` and ``ssl``)."""
    if (store.conn_type or "").lower() != "redis":
        raise ConsentioConfigError(
            f"the rate budget's store {store.conn_id!r} is a {store.conn_type!r} connection; only Redis is supported"
        )
    if not store.host:
        raise ConsentioConfigError(f"the rate budget's store {store.conn_id!r} has no host")
    extras: dict[str, Any] = store.extra_dejson
    scheme = "rediss" if str(extras.get("ssl", "")).lower() in ("true", "1", "yes") else "redis"
    credentials = ""
    if store.password:
        credentials = f"{quote(store.login or '', safe='')}:{quote(store.password, safe='')}@"
    return f"{scheme}://{credentials}{store.host}:{store.port or 6379}/{int(extras.get('db') or 0)}"


def _rate(conn: Connection, conn_type: str) -> float:
    value = extra_value(conn.extra_dejson, conn_type, RATE_LIMIT.key)
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        raise ConsentioConfigError(f"the rate limit must be a number of requests/s, got {value!r}") from None
