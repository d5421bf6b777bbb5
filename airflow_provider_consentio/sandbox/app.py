"""The sandbox's HTTP API: the emulated Consentio Partner API under /v2/partner (the admin API is in admin.py).

Wire ASSUMPTIONS (where Consentio's docs are silent), in one place:
* Errors: ``{"error": "<code>", "message": "..."}`` for every 4xx/5xx; request-validation problems are 400.
* GET /order: ``from``/``to``/``kind`` required, half-open [from, to) on created_at, one ``status`` per request,
  sorted by (created_at, id).
* PUT /order/external: ``{"orders": [{hash_id, external_id, external_status, cancel}]}`` (1..1000), answered
  ``{"orders": [ViewOrder], "errors": ["<hash_id>: <reason>"]}`` with HTTP 200 on per-record problems.
* GET /order/edited: ``since`` (RFC3339); orders whose latest edit is not seen, sorted by (updated_at, id).
* POST /order/seen: ``{"hash_ids": [...]}`` (1..1000), answered ``{"seen": [...], "errors": [...]}``.
* POST /order/{hash_id}/prepare: public, no body, 404 for an unknown order; answers the ViewOrder.
* POST /purchase-needs: ``{"purchase_needs": [...]}`` (1..5000); per-record errors with HTTP 200; a reference_code
  starting with INVALID is "not found". GET /purchase-needs answers a bare array.
* The catalogue and POST /promoted-order: see catalogue.py.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_consentio.sandbox.auth import TokenError, TokenIssuer
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.data import parse_rfc3339
from airflow_provider_consentio.sandbox.drift import DriftMiddleware
from airflow_provider_consentio.sandbox.faults import FaultMiddleware, FaultPlan
from airflow_provider_consentio.sandbox.rate_limit import LeakyBucket, RateLimitMiddleware
from airflow_provider_consentio.sandbox.state import (
    MAX_NEEDS_PER_REQUEST,
    MAX_ORDERS_PER_REQUEST,
    ORDER_STATUSES,
    Conflict,
    NotFound,
    State,
    StoredOrder,
)
from airflow_provider_consentio.sandbox.wire import decode, encode

PARTNER = "/v2/partner"
TEMPLATE_METHODS = ["default_csv", "default_json", "sap_idoc"]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class Sandbox:
    """The emulated workspace: state, tokens, faults and counters, shared by the app and the tests."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.state = State(config)
        self.issuer = TokenIssuer()
        self.faults = FaultPlan()
        self.rate_bucket = _rate_bucket(config)

    @property
    def stats(self) -> Any:
        return self.state.stats

    def reset(self, config: SandboxConfig | None = None) -> None:
        self.config = config or self.config
        self.state.reset(self.config)
        self.faults = FaultPlan()
        self.rate_bucket = _rate_bucket(self.config)
        self.issuer.revoke_all()
        self.state.stats.clear()

    def workspaces(self) -> dict[int, str]:
        return {
            self.config.workspace_id: self.config.api_key,
            self.config.other_workspace_id: self.config.other_api_key,
        }


def _rate_bucket(config: SandboxConfig) -> LeakyBucket | None:
    return LeakyBucket(config.rate_limit, config.rate_capacity) if config.rate_limit else None


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")


def orders_body(orders: list[StoredOrder]) -> bytes:
    return b"[" + b",".join(order.json for order in orders) + b"]"


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²", which int() rejects."""
    return text.isascii() and text.isdigit()


def instant(value: str, name: str) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be an RFC3339 date-time, got {value!r}") from None


def _day(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be a date (YYYY-MM-DD), got {value!r}") from None


async def _body(request: Request, key: str, limit: int) -> list[Any]:
    raw = await request.body()
    try:
        document = decode(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    items = document.get(key) if isinstance(document, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= limit:
        raise ApiError(400, "invalid_request", f'the body must be {{"{key}": [...]}} with 1 to {limit} items')
    return items


def create_app(sandbox: Sandbox) -> Any:
    app = FastAPI(
        title="Consentio Partner API sandbox",
        description="A local emulator of the Consentio Partner API (under /v2/partner) for tests and demos. "
        "Routes under /_sandbox are the emulator's own admin API, not Consentio's.",
        version="1",
    )
    state = sandbox.state

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if exc.details is not None:
            body["details"] = exc.details
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(error.get("loc", ())), "msg": error.get("msg")} for error in exc.errors()]
        message = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details)
        return JSONResponse({"error": "invalid_request", "message": message, "details": details}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "order_not_found", "message": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"error": "conflict", "message": str(exc)}, status_code=409)

    def workspace(ws: str) -> int:
        if not _is_number(ws) or int(ws) not in sandbox.workspaces():
            raise ApiError(404, "workspace_not_found", f"workspace {ws} does not exist")
        return int(ws)

    def authorize(request: Request, ws: str) -> None:
        header = request.headers.get("authorization", "")
        if not header:
            raise ApiError(401, "missing_token", "an Authorization: Bearer <access_token> header is required")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_token", "the Authorization header must be 'Bearer <access_token>'")
        try:
            claims = sandbox.issuer.verify(token.strip())
        except TokenError as exc:
            raise ApiError(401, exc.code, str(exc)) from None
        if str(claims.get("ws")) != ws:
            raise ApiError(403, "forbidden", f"this token has no permission for workspace {ws}")

    # --- Partner API -----------------------------------------------------------------------------------------

    @app.get(f"{PARTNER}/export/template/methods", tags=["public"])
    async def template_methods() -> Response:
        return json_response(json.dumps(TEMPLATE_METHODS).encode())

    @app.post(f"{PARTNER}/{{ws}}/login", tags=["auth"])
    async def login(ws: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("api_key"), str):
            raise ApiError(400, "invalid_request", 'the body must be {"api_key": "..."}')
        key = sandbox.workspaces().get(int(ws)) if _is_number(ws) else None
        if key is None or body["api_key"] != key:
            raise ApiError(401, "invalid_api_key", "the API key is not valid for this workspace")
        state.stats.logins += 1
        tokens = sandbox.issuer.issue(int(ws), state.token_ttl)
        name = "Sandbox Fresh Foods" if int(ws) == sandbox.config.workspace_id else "Other Workspace"
        tokens["workspace"] = {"id": int(ws), "name": name, "status": "active", "default_currency": "EUR"}
        return json_response(json.dumps(tokens).encode())

    @app.get(f"{PARTNER}/{{ws}}/order", tags=["seller"])
    async def get_orders(
        ws: str,
        request: Request,
        from_: str = Query(alias="from"),
        to: str = Query(),
        kind: str = Query(),
        status: str | None = Query(default=None),
    ) -> Response:
        workspace(ws)
        authorize(request, ws)
        start, end = instant(from_, "from"), instant(to, "to")
        if start > end:
            raise ApiError(400, "invalid_request", "from must not be after to")
        if kind not in ("sale", "purchase"):
            raise ApiError(400, "invalid_request", "kind must be sale or purchase")
        if status is not None and status not in ORDER_STATUSES:
            raise ApiError(400, "invalid_request", f"status must be one of {', '.join(ORDER_STATUSES)}")
        with state.lock:
            orders = state.window(start, end, kind, status) if int(ws) == sandbox.config.workspace_id else []
            orders = state.listed(orders, sandbox.faults.listing_lag)
            body = orders_body(orders)
        state.stats.orders_served += len(orders)
        return json_response(body)

    @app.put(f"{PARTNER}/{{ws}}/order/external", tags=["seller"])
    async def set_external(ws: str, request: Request) -> Response:
        workspace(ws)
        authorize(request, ws)
        updated, errors = state.set_external(await _body(request, "orders", MAX_ORDERS_PER_REQUEST))
        return json_response(b'{"orders":[' + b",".join(updated) + b'],"errors":' + encode(errors) + b"}")

    @app.get(f"{PARTNER}/{{ws}}/order/edited", tags=["seller"])
    async def edited(ws: str, request: Request, since: str = Query()) -> Response:
        workspace(ws)
        authorize(request, ws)
        moment = instant(since, "since")
        with state.lock:
            body = orders_body(state.edited_since(moment) if int(ws) == sandbox.config.workspace_id else [])
        return json_response(body)

    @app.post(f"{PARTNER}/{{ws}}/order/seen", tags=["seller"])
    async def seen(ws: str, request: Request) -> Response:
        workspace(ws)
        authorize(request, ws)
        acknowledged, errors = state.mark_seen(await _body(request, "hash_ids", MAX_ORDERS_PER_REQUEST))
        return json_response(encode({"seen": acknowledged, "errors": errors}))

    @app.post(f"{PARTNER}/{{ws}}/order/{{hash_id}}/prepare", tags=["public"])
    async def prepare(ws: str, hash_id: str) -> Response:
        workspace(ws)
        return json_response(state.prepare(hash_id).json)

    @app.post(f"{PARTNER}/{{ws}}/purchase-needs", tags=["buyer"])
    async def upsert_needs(ws: str, request: Request) -> Response:
        workspace(ws)
        authorize(request, ws)
        saved, errors = state.upsert_needs(await _body(request, "purchase_needs", MAX_NEEDS_PER_REQUEST))
        return json_response(encode({"purchase_needs": saved, "errors": errors}))

    @app.get(f"{PARTNER}/{{ws}}/purchase-needs", tags=["buyer"])
    async def get_needs(
        ws: str, request: Request, start_date: str = Query(), end_date: str = Query(), status: str | None = None
    ) -> Response:
        workspace(ws)
        authorize(request, ws)
        first, last = _day(start_date, "start_date"), _day(end_date, "end_date")
        return json_response(encode(state.needs_between(first, last, status)))

    from airflow_provider_consentio.sandbox.catalogue_api import add_catalogue_routes

    add_catalogue_routes(app, sandbox, workspace, authorize, _body, ApiError)

    from airflow_provider_consentio.sandbox.admin import add_admin_routes  # it imports this module's helpers

    add_admin_routes(app, sandbox)
    return StatsMiddleware(
        RateLimitMiddleware(FaultMiddleware(DriftMiddleware(app, sandbox), sandbox), sandbox), sandbox
    )


class StatsMiddleware:
    """Counts every Partner API request by method, route and status (the outermost layer, so faults count)."""

    def __init__(self, app: Any, sandbox: Sandbox):
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PARTNER):
            await self.app(scope, receive, send)
            return
        status_seen: list[int] = []

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = _route_template(scope["path"])
            self.sandbox.stats.requests[
                f"{scope['method']} {route} {status_seen[0] if status_seen else 'dropped'}"
            ] += 1


def _route_template(path: str) -> str:
    parts = path[len(PARTNER) :].strip("/").split("/")
    if parts and parts[0].isdigit():
        parts[0] = "{ws}"
    if len(parts) == 4 and parts[1] == "order" and parts[3] == "prepare":
        parts[2] = "{hash_id}"
    return "/" + "/".join(parts)
