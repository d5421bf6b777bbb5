"""Airflow hook for the Consentio Partner API: turns an Airflow connection into a configured client."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_consentio.client import (
    AsyncConsentioClient,
    ConsentioClient,
    ConsentioSettings,
    RateBudget,
    RetryPolicy,
    TokenCache,
    resolve_base_url,
    shared_budget,
)
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError
from airflow_provider_consentio.hooks.connection_fields import (
    CA_BUNDLE,
    ENVIRONMENT,
    MAX_RETRIES,
    RETRY_BACKOFF,
    TIMEOUT,
    extra_value,
    read_extras,
)
from airflow_provider_consentio.hooks.metrics import StatsObserver
from airflow_provider_consentio.hooks.rate_budget import rate_limit, store_conn_id

if TYPE_CHECKING:
    from airflow.sdk import Connection


class ConsentioHook(BaseHook):
    """Connects to the Consentio Partner API of one workspace.

    The connection (type ``consentio``) holds the fields of ``hooks/connection_fields.py`` (the README's table):

    * **Workspace ID** (login): the numeric workspace ID.
    * **API key** (password): the workspace's Partner API key. Optional for the public prepare endpoint.
    * **Base URL** (host): overrides the environment, e.g. ``http://127.0.0.1:8765`` for the local sandbox.
      Must be https unless it is a loopback address.
    * **Port** (port): optional; the URL's port (443 for https changes nothing).
    * Extras ``environment`` (production, staging or sandbox), ``timeout`` (seconds per request),
      ``max_retries`` and ``retry_backoff`` (the retry policy of transient failures), ``ca_bundle`` (a CA file to
      verify the server with; TLS verification cannot be disabled), ``rate_limit`` and ``rate_burst`` (the
      workspace's request budget, requests/s and burst; off when empty) and ``rate_store_conn_id`` (a Redis
      connection that shares the budget across processes and machines).

    :param consentio_conn_id: the connection ID.
    :param timeout: overrides the connection's timeout (seconds per request).
    :param max_retries: overrides the connection's retry count for transient failures.
    :param max_connections: size of the keep-alive connection pool (raise it for concurrent batches).
    :param metric_tags: tags of the client's metrics besides ``conn_id`` (an operator's hook adds its DAG and task).
    """

    conn_name_attr = "consentio_conn_id"
    default_conn_name = "consentio_default"
    conn_type = "consentio"
    hook_name = "Consentio"

    def __init__(
        self,
        consentio_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_connections: int | None = None,
        metric_tags: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.consentio_conn_id = consentio_conn_id
        self.metrics = StatsObserver({"conn_id": consentio_conn_id, **(metric_tags or {})})
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_connections = max_connections

    def settings_from_connection(self, conn: Connection) -> ConsentioSettings:
        """Read and validate the connection; errors name the connection and the field."""
        extras = read_extras(conn.extra_dejson, self.conn_type)
        where = f"Connection {self.consentio_conn_id!r}"
        workspace = str(conn.login or "").strip()
        if not workspace.isdigit() or int(workspace) <= 0:
            shown = workspace or "nothing"
            raise ConsentioConfigError(f"{where}: the Workspace ID (login) must be a positive number, got {shown!r}")
        if any(extra_value(conn.extra_dejson, self.conn_type, key) is not None for key in ("verify", "verify_ssl")):
            raise ConsentioConfigError(
                f"{where}: TLS verification cannot be switched off; set 'ca_bundle' to a CA file instead"
            )
        try:
            return ConsentioSettings(
                workspace_id=int(workspace),
                base_url=_with_port(resolve_base_url(extras[ENVIRONMENT.key], conn.host), conn.port),
                api_key=conn.password or None,
                timeout=float(_first_set(self.timeout, extras[TIMEOUT.key])),
                retry=RetryPolicy(
                    max_retries=int(_first_set(self.max_retries, extras[MAX_RETRIES.key])),
                    initial_backoff=float(extras[RETRY_BACKOFF.key]),
                ),
                ca_bundle=extras[CA_BUNDLE.key],
                max_connections=int(_first_set(self.max_connections, 10)),
            )
        except (TypeError, ValueError) as exc:
            raise ConsentioConfigError(f"{where}: {exc}") from None
        except ConsentioConfigError as exc:
            raise ConsentioConfigError(f"{where}: {exc}") from None

    def get_settings(self) -> ConsentioSettings:
        return self.settings_from_connection(self.get_connection(self.consentio_conn_id))

    def get_conn(self) -> ConsentioClient:
        """The hook's client, created once; it logs in lazily on the first authenticated call."""
        return self.client

    def rate_budget_from_connection(
        self, conn: Connection, settings: ConsentioSettings, store: Connection | None
    ) -> RateBudget | None:
        """The process's budget for the connection's workspace, None when the connection sets no rate limit;
        ``store`` is the connection its ``rate_store_conn_id`` names."""
        if store is not None and store.password:
            mask_secret(store.password)  # it travels inside the store's URL
        try:
            limit = rate_limit(conn, self.conn_type, store)
        except ConsentioConfigError as exc:
            raise ConsentioConfigError(f"Connection {self.consentio_conn_id!r}: {exc}") from None
        return shared_budget(settings.base_url, settings.workspace_id, limit) if limit else None

    def get_rate_budget(self) -> RateBudget | None:
        conn = self.get_connection(self.consentio_conn_id)
        store_id = store_conn_id(conn, self.conn_type)
        store = self.get_connection(store_id) if store_id else None
        return self.rate_budget_from_connection(conn, self.settings_from_connection(conn), store)

    @cached_property
    def client(self) -> ConsentioClient:
        return ConsentioClient(
            self.get_settings(), on_secret=mask_secret, rate_budget=self.get_rate_budget(), observer=self.metrics
        )

    async def get_async_client(self) -> AsyncConsentioClient:
        """A new async client (the caller closes it); reads the connection without blocking the event loop."""
        conn = await self.aget_connection(self.consentio_conn_id)
        settings = self.settings_from_connection(conn)
        store_id = store_conn_id(conn, self.conn_type)
        store = await self.aget_connection(store_id) if store_id else None
        budget = self.rate_budget_from_connection(conn, settings, store)
        return AsyncConsentioClient(settings, on_secret=mask_secret, rate_budget=budget, observer=self.metrics)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def test_connection(self) -> tuple[bool, str]:
        """Log in with the API key (never from the token cache) and report the workspace, or why it failed."""
        try:
            settings = self.get_settings()
            budget = self.get_rate_budget()
            with ConsentioClient(
                settings, token_cache=TokenCache(), on_secret=mask_secret, rate_budget=budget
            ) as client:
                session = client.login()
        except ConsentioError as exc:
            return False, str(exc)
        name = (session.workspace or {}).get("name")
        workspace = f"{settings.workspace_id} ({name})" if name else str(settings.workspace_id)
        return True, f"Logged in to Consentio workspace {workspace} at {settings.base_url}"


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _with_port(url: str, port: int | None) -> str:
    """Apply the connection's Port to the URL; a port the URL names already must be the same one.

    A Port equal to the scheme's default changes nothing, so 443 can be stored on any https connection (which is what
    lets Airflow 3.3.1-3.3.2's Test button work, see the README).
    """
    if not port:
        return url
    parts = urlsplit(url)
    if parts.port is not None:
        if parts.port != port:
            raise ConsentioConfigError(f"the Port ({port}) differs from the port of the URL {url!r}")
        return url
    if port == _DEFAULT_PORTS.get(parts.scheme):
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))


def _first_set(*values: Any) -> Any:
    return next(value for value in values if value is not None)
