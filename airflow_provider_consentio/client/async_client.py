"""AsyncConsentioClient: the non-blocking twin the triggers use; same endpoints, policy and token cache, awaits I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
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
from airflow_provider_consentio.models import RawRecord, Session
from airflow_provider_consentio.resources import Resource


class AsyncConsentioClient(ClientBase):
    """Non-blocking twin of :class:`ConsentioClient` for triggers, with the reads a trigger needs."""

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
        self._http = httpx.AsyncClient(**settings.httpx_options())
        self._login_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncConsentioClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def login(self) -> Session:
        call = self.api.login()
        try:
            return self._start_session(call, await self._json(call))
        except ConsentioAuthError as exc:
            raise rejected_key(self.settings.workspace_id, exc) from None

    async def _access_token(self) -> str:
        token = self._tokens.get(self._cache_key)
        if token is not None:
            return token.value
        async with self._login_lock:
            token = self._tokens.get(self._cache_key)
            return token.value if token is not None else (await self.login()).access_token

    async def _json(self, call: Call) -> Any:
        response, body = await self._exchange(call, self.settings.max_body_bytes)
        return endpoints.json_value(call, response, body)

    async def _raw(self, listing: Listing) -> list[RawRecord]:
        records: list[RawRecord] = []
        call: Call | None = listing.call
        while call is not None:
            response, body = await self._exchange(call, self.settings.max_list_bytes, as_sent=True)
            records += endpoints.raw_records(listing, response, body, self._secrets.redact)
            call = listing.next_page(body)
        return records

    async def _exchange(self, call: Call, limit: int, *, as_sent: bool = False) -> tuple[httpx.Response, bytes]:
        budget = RetryBudget(self.settings.retry, call)
        while True:
            try:
                return await self._attempt(call, limit, as_sent)
            except TokenRejected as rejection:
                budget.relogin(rejection)
                self._tokens.discard(self._cache_key, rejection.token)
                self._retrying(call, rejection)
            except ConsentioTransientError as error:
                self._rate_limited(error)
                delay = budget.next_delay(error)
                self._retrying(call, error, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, call: Call, limit: int, as_sent: bool) -> tuple[httpx.Response, bytes]:
        token = await self._access_token() if call.authenticated else None
        if self.rate_budget is not None:
            self._waited_for_budget(await self.rate_budget.acquire_async())
        request = self._request_args(call, token)
        with self._observed(call, request) as attempt:
            try:
                async with self._http.stream(**request) as response:
                    attempt.response = response
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise too_large(call.endpoint, limit)
            except httpx.TransportError as exc:
                raise transport_error(call, exc) from exc
        return response, self._received(call, response, bytes(body), token, as_sent=as_sent)

    async def read_raw(
        self, resource: Resource, start: datetime | None = None, end: datetime | None = None, **params: Any
    ) -> list[RawRecord]:
        """The twin of :meth:`ConsentioClient.read_raw`."""
        return await self._raw(self.api.listing(resource, start, end, **params))

    async def get_raw_orders(
        self, start: datetime, end: datetime, *, kind: str = "sale", statuses: Sequence[str] | None = None
    ) -> list[RawRecord]:
        wanted: Sequence[str | None] = statuses or [None]
        listings = [self.api.orders(start, end, kind, status) for status in wanted]
        return [record for listing in listings for record in await self._raw(listing)]

    async def get_raw_edited_orders(self, since: datetime) -> list[RawRecord]:
        return await self._raw(self.api.edited_orders(since))
