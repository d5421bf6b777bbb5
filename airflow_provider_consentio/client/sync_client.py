"""ConsentioClient: the blocking client the operators use, one method per endpoint; waits with time.sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import httpx

import airflow_provider_consentio.client.endpoints as endpoints
from airflow_provider_consentio.client.auth import TokenCache, rejected_key
from airflow_provider_consentio.client.base import ClientBase, too_large
from airflow_provider_consentio.client.endpoints import Call, Listing
from airflow_provider_consentio.client.observer import ClientObserver
from airflow_provider_consentio.client.rate_budget import RateBudget
from airflow_provider_consentio.client.retry import RetryBudget, TokenRejected, transport_error
from airflow_provider_consentio.client.settings import ConsentioSettings
from airflow_provider_consentio.errors import ConsentioAuthError, ConsentioTransientError
from airflow_provider_consentio.models import BatchResult, ExternalReference, Order, PurchaseNeed, RawRecord, Session
from airflow_provider_consentio.models.catalogue import (
    BasePrice,
    Client,
    ClientAddress,
    PriceGroupPrice,
    Product,
    PromotedOrder,
)
from airflow_provider_consentio.resources import Resource


class ConsentioClient(ClientBase):
    """Blocking client; thread-safe (one pool of keep-alive connections shared by all threads).

    ``get_raw_*`` methods return each record as its exact source bytes with its key fields (what exports write and
    sensors count); ``get_*`` methods return parsed models (numbers as exact Decimals, unknown fields kept).

    :param settings: workspace, base URL, API key, timeout, retry policy and body limits.
    :param token_cache: where access tokens are shared; the process-wide cache by default.
    :param on_secret: called with the API key and every token obtained, e.g. Airflow's ``mask_secret``.
    :param rate_budget: the workspace's request budget every request draws from (``shared_budget``); none: no limit
        but the API's own 429s.
    :param observer: told of every request, retry and wait (the hook forwards them to Airflow's metrics).
    """

    def __init__(
        self,
        settings: ConsentioSettings,
        *,
        token_cache: TokenCache | None = None,
        on_secret: Callable[[str], None] | None = None,
        rate_budget: RateBudget | None = None,
        observer: ClientObserver | None = None,
    ):
        super().__init__(settings, token_cache, on_secret, rate_budget, observer)
        self._http = httpx.Client(**settings.httpx_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConsentioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- auth ------------------------------------------------------------------------------------------------

    def login(self) -> Session:
        """Log in with the API key now (even if a cached token is still valid) and cache the new token."""
        call = self.api.login()
        try:
            return self._start_session(call, self._json(call))
        except ConsentioAuthError as exc:
            raise rejected_key(self.settings.workspace_id, exc) from None

    def _access_token(self) -> str:
        token = self._tokens.get(self._cache_key)
        if token is not None:
            return token.value
        with self._tokens.login_lock(self._cache_key):
            token = self._tokens.get(self._cache_key)  # another thread may have logged in meanwhile
            return token.value if token is not None else self.login().access_token

    # --- transport -------------------------------------------------------------------------------------------

    def _json(self, call: Call) -> Any:
        response, body = self._exchange(call, self.settings.max_body_bytes)
        return endpoints.json_value(call, response, body)

    def _write(self, call: Call) -> BatchResult:
        """A batch write's saved records and per-record errors (HTTP 200 on partial success)."""
        return endpoints.batch_result(call, self._json(call))

    def _raw(self, listing: Listing) -> list[RawRecord]:
        records: list[RawRecord] = []
        call: Call | None = listing.call
        while call is not None:
            response, body = self._exchange(call, self.settings.max_list_bytes, as_sent=True)
            records += endpoints.raw_records(listing, response, body, self._secrets.redact)
            call = listing.next_page(body)
        return records

    def exchange(self, call: Call) -> tuple[httpx.Response, bytes]:
        """One call's answer as received, after retries (2xx only; errors raise): for diagnostics, such as
        ``airflow consentio check``, that look at the status, headers and body themselves."""
        return self._exchange(call, self.settings.max_list_bytes)

    def _exchange(self, call: Call, limit: int, *, as_sent: bool = False) -> tuple[httpx.Response, bytes]:
        """Send ``call`` until it succeeds or the retry budget is spent; return the whole body (at most ``limit``)."""
        budget = RetryBudget(self.settings.retry, call)
        while True:
            try:
                return self._attempt(call, limit, as_sent)
            except TokenRejected as rejection:
                budget.relogin(rejection)
                self._tokens.discard(self._cache_key, rejection.token)
                self._retrying(call, rejection)
            except ConsentioTransientError as error:
                self._rate_limited(error)
                delay = budget.next_delay(error)
                self._retrying(call, error, delay)
                time.sleep(delay)

    def _attempt(self, call: Call, limit: int, as_sent: bool) -> tuple[httpx.Response, bytes]:
        token = self._access_token() if call.authenticated else None
        if self.rate_budget is not None:
            self._waited_for_budget(self.rate_budget.acquire())
        request = self._request_args(call, token)
        with self._observed(call, request) as attempt:
            try:
                with self._http.stream(**request) as response:
                    attempt.response = response
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise too_large(call.endpoint, limit)
            except httpx.TransportError as exc:
                raise transport_error(call, exc) from exc
        return response, self._received(call, response, bytes(body), token, as_sent=as_sent)

    # --- any declared resource (resources/) ----------------------------------------------------------------

    def read_raw(
        self, resource: Resource, start: datetime | None = None, end: datetime | None = None, **params: Any
    ) -> list[RawRecord]:
        """``resource``'s records in one request (over ``[start, end)`` if its listing takes a window), raw.
        Memory holds the whole answer: fetch long ranges window by window."""
        return self._raw(self.api.listing(resource, start, end, **params))

    def write(self, resource: Resource, records: Sequence[Any]) -> BatchResult:
        """Send one batch of ``resource``'s validated records; per-record failures come back in ``errors``."""
        return self._write(self.api.write(resource, records))

    # --- seller orders ---------------------------------------------------------------------------------------

    def get_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", status: str | None = None
    ) -> list[Order]:
        """Orders created in [start, end), parsed."""
        call = self.api.orders(start, end, kind, status).call
        return endpoints.models(call, self._json(call), Order)

    def get_raw_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", statuses: Sequence[str] | None = None
    ) -> list[RawRecord]:
        """Orders created in [start, end), raw. Several statuses are fetched one request each (the API filters on
        one status at a time). Memory holds the whole answer: fetch long ranges window by window."""
        wanted: Sequence[str | None] = statuses or [None]
        listings = [self.api.orders(start, end, kind, status) for status in wanted]  # all checked before sending
        return [record for listing in listings for record in self._raw(listing)]

    def update_external_references(self, references: Sequence[ExternalReference]) -> BatchResult:
        """Push ERP order IDs/statuses (or cancel); per-order failures come back in ``errors``."""
        return self._write(self.api.external_references(references))

    def get_raw_edited_orders(self, since: datetime) -> list[RawRecord]:
        """Orders edited after acceptance at or after ``since`` whose edit was not marked seen yet, raw."""
        return self._raw(self.api.edited_orders(since))

    def mark_orders_seen(self, hash_ids: Sequence[str]) -> BatchResult:
        """Acknowledge edits so they are not delivered again; ``saved`` lists the acknowledged hash IDs."""
        return self._write(self.api.mark_seen(hash_ids))

    def prepare_order(self, hash_id: str) -> Order:
        """Mark every item of an order prepared (public endpoint: works without an API key)."""
        return Order.model_validate(self._json(self.api.prepare(hash_id)))

    def get_export_template_methods(self) -> list[str]:
        call = self.api.template_methods()
        return [str(name) for name in endpoints.of_kind(call, self._json(call), list)]

    # --- buyer -----------------------------------------------------------------------------------------------

    def upsert_purchase_needs(self, needs: Sequence[PurchaseNeed]) -> BatchResult:
        """Create or fully replace purchase needs by ``code``; rejected records come back in ``errors``."""
        return self._write(self.api.upsert_purchase_needs(needs))

    def get_raw_purchase_needs(self, start_date: date, end_date: date, *, status: str | None = None) -> list[RawRecord]:
        """Purchase needs with start_date >= ``start_date`` and end_date <= ``end_date``, raw."""
        return self._raw(self.api.purchase_needs(start_date, end_date, status))

    def create_promoted_order(self, order: PromotedOrder | Mapping[str, Any]) -> dict[str, Any]:
        """Create an order on behalf of a buyer. Not retried once the request may have been received: a blind
        retry could create a second order (ConsentioCreatePromotedOrdersOperator is the safe way)."""
        call = self.api.promoted_order(order)
        created: dict[str, Any] = endpoints.of_kind(call, self._json(call), dict)
        return created

    def find_orders_by_reference(self, start: datetime, end: datetime) -> dict[str, str]:
        """Reference -> hash ID of the promoted orders created in [start, end) that carry a reference (the first
        one listed, if a reference has several)."""
        return {reference: hash_ids[0] for reference, hash_ids in self.orders_per_reference(start, end).items()}

    def orders_per_reference(self, start: datetime, end: datetime) -> dict[str, list[str]]:
        """Reference -> the hash IDs of every order created in [start, end) that carries it (one, unless an order
        was created twice)."""
        found: dict[str, list[str]] = {}
        for record in self._raw(self.api.orders_by_reference(start, end)):
            if record.keys.external_id:
                found.setdefault(record.keys.external_id, []).append(record.keys.hash_id)
        return found

    # --- the seller's catalogue ------------------------------------------------------------------------------

    def upsert_products(self, products: Sequence[Product]) -> BatchResult:
        """Create or update products by sku (JSON; numbers and lists go as strings)."""
        return self._write(self.api.upsert_products(products))

    def upsert_products_csv(
        self, products: Sequence[Product], *, separator: str = ",", decimal_separator: str = ".", language: str = "en"
    ) -> BatchResult:
        """The same through the CSV import (Content-Type text/csv, with the documented query options)."""
        return self._write(
            self.api.upsert_products_csv(
                products, separator=separator, decimal_separator=decimal_separator, language=language
            )
        )

    def get_raw_changed_products(self, start: datetime, end: datetime) -> list[RawRecord]:
        """Products changed in [start, end), raw (``keys.id`` is the sku)."""
        return self._raw(self.api.changed_products(start, end))

    def set_base_prices(self, prices: Sequence[BasePrice]) -> BatchResult:
        return self._write(self.api.base_prices(prices))

    def sync_price_groups(self, rows: Sequence[PriceGroupPrice]) -> BatchResult:
        return self._write(self.api.sync_price_groups(rows))

    def upsert_clients(self, clients: Sequence[Client]) -> BatchResult:
        return self._write(self.api.upsert_clients(clients))

    def get_raw_clients(self) -> list[RawRecord]:
        return self._raw(self.api.clients())

    def upsert_addresses(self, addresses: Sequence[ClientAddress]) -> BatchResult:
        return self._write(self.api.upsert_addresses(addresses))

    def get_raw_addresses(self, client_external_id: str | None = None) -> list[RawRecord]:
        return self._raw(self.api.addresses(client_external_id))
