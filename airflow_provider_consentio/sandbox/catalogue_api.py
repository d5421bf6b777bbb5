"""The sandbox's catalogue routes (products, base prices, price groups, clients, addresses) and promoted orders.

The wire assumptions are in catalogue.py, the per-row rules in catalogue_rules.py; this module only reads
requests and writes answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from airflow_provider_consentio.sandbox.catalogue import Catalogue, apply_promoted_items
from airflow_provider_consentio.sandbox.catalogue_rules import (
    MAX_ROWS_PER_REQUEST,
    CatalogueError,
    csv_products,
    promoted_order_problems,
)
from airflow_provider_consentio.sandbox.wire import decode, encode

PARTNER = "/v2/partner"


def add_catalogue_routes(
    app: FastAPI,
    sandbox: Any,
    workspace: Callable[[str], int],
    authorize: Callable[[Request, str], None],
    batch_body: Callable[..., Any],
    api_error: Callable[[int, str, str], Exception],
) -> None:
    state = sandbox.state

    def catalogue_of(ws: str) -> Any:
        # The other workspace sees an empty catalogue of its own: nothing leaks across workspaces.
        return state.catalogue if int(ws) == sandbox.config.workspace_id else state.other_catalogue

    async def checked(request: Request, ws: str) -> None:
        workspace(ws)
        authorize(request, ws)

    def batch_answer(key: str, saved: list[Any], errors: list[str]) -> Response:
        return Response(encode({key: saved, "errors": errors}), media_type="application/json")

    async def read(request: Request, ws: str, answer: Callable[[Any], Any]) -> Response:
        """A read: ``answer(catalogue)`` is encoded as the JSON body."""
        await checked(request, ws)
        with state.lock:
            body = encode(answer(catalogue_of(ws)))
        return Response(body, media_type="application/json")

    async def batch_write(request: Request, ws: str, key: str, apply: Callable[..., Any]) -> Response:
        """A batch write: ``apply(catalogue, rows, now)`` answers (saved, per-row errors)."""
        await checked(request, ws)
        rows = await batch_body(request, key, MAX_ROWS_PER_REQUEST)
        with state.lock:
            saved, errors = apply(catalogue_of(ws), rows, datetime.now(UTC))
        return batch_answer(key, saved, errors)

    @app.post(f"{PARTNER}/{{ws}}/product", tags=["catalogue"])
    async def upsert_products(
        ws: str,
        request: Request,
        language: str = "en",
        type: str = "product",  # the documented query parameter's name
        csvseparator: str = ",",
        decimalseparator: str = ".",
    ) -> Response:
        await checked(request, ws)
        if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
            try:
                rows = csv_products(
                    await request.body(),
                    separator=csvseparator,
                    decimal_separator=decimalseparator,
                    language=language,
                    kind=type,
                )
            except CatalogueError as exc:
                raise api_error(400, "invalid_csv", str(exc)) from None
            if not rows:
                raise api_error(400, "invalid_request", "the CSV has a header but no rows")
        else:
            rows = await batch_body(request, "products", MAX_ROWS_PER_REQUEST)
        with state.lock:
            saved, errors = catalogue_of(ws).upsert_products(rows, datetime.now(UTC))
        return batch_answer("products", saved, errors)

    @app.get(f"{PARTNER}/{{ws}}/products", tags=["catalogue"])
    async def changed_products(
        ws: str, request: Request, from_: str = Query(alias="from"), to: str = Query()
    ) -> Response:
        from airflow_provider_consentio.sandbox.app import instant

        def changed(catalogue: Catalogue) -> list[dict[str, Any]]:
            start, end = instant(from_, "from"), instant(to, "to")
            if start > end:
                raise api_error(400, "invalid_request", "from must not be after to")
            return catalogue.products_changed(start, end)

        return await read(request, ws, changed)

    @app.put(f"{PARTNER}/{{ws}}/products/baseprice", tags=["catalogue"])
    async def base_prices(ws: str, request: Request) -> Response:
        return await batch_write(request, ws, "base_prices", Catalogue.set_base_prices)

    @app.post(f"{PARTNER}/{{ws}}/pricegroups/sync", tags=["catalogue"])
    async def price_groups(ws: str, request: Request) -> Response:
        return await batch_write(request, ws, "pricegroups", Catalogue.sync_price_groups)

    @app.get(f"{PARTNER}/{{ws}}/client", tags=["catalogue"])
    async def clients(ws: str, request: Request) -> Response:
        return await read(
            request, ws, lambda catalogue: sorted(catalogue.clients.values(), key=lambda c: c["client_external_id"])
        )

    @app.post(f"{PARTNER}/{{ws}}/client", tags=["catalogue"])
    async def upsert_clients(ws: str, request: Request) -> Response:
        return await batch_write(
            request, ws, "clients", lambda catalogue, rows, now: catalogue.upsert_clients(rows, now, int(ws))
        )

    @app.get(f"{PARTNER}/{{ws}}/client/address", tags=["catalogue"])
    async def addresses(ws: str, request: Request, client_external_id: str | None = None) -> Response:
        return await read(request, ws, lambda catalogue: catalogue.addresses_of(client_external_id))

    @app.post(f"{PARTNER}/{{ws}}/client/address", tags=["catalogue"])
    async def upsert_addresses(ws: str, request: Request) -> Response:
        return await batch_write(request, ws, "addresses", Catalogue.upsert_addresses)

    @app.post(f"{PARTNER}/{{ws}}/promoted-order", tags=["buyer"])
    async def promoted_order(ws: str, request: Request) -> Response:
        await checked(request, ws)
        try:
            body = decode(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise api_error(400, "invalid_json", "the request body is not valid JSON") from None
        problems = promoted_order_problems(body)
        if problems:
            raise api_error(400, "invalid_request", "; ".join(problems))
        with state.lock:
            try:
                items = catalogue_of(ws).promoted_items(body.get("items"))
            except CatalogueError as exc:
                raise api_error(400, "invalid_request", str(exc)) from None
            stored = state.add_order(datetime.now(UTC), "sale", "pending", {})
            apply_promoted_items(stored.data, items)
            stored.data["delivery_method"] = body.get("delivery_method", "delivery")
            stored.data["external_id"] = stored.data["external_id_seller"] = body.get("external_id")
            stored.data["more_info"] = f"Promoted to {body['buyer_email']}"
            stored.changed()
        return Response(stored.json, status_code=201, media_type="application/json")
