"""The sandbox's own admin API under /_sandbox (clearly not Consentio's): inspect and edit state, inject faults."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from airflow_provider_consentio.sandbox.app import ApiError, Sandbox, instant, json_response, orders_body
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.faults import FaultPlan
from airflow_provider_consentio.sandbox.wire import decode, encode

ADMIN = "/_sandbox"


def add_admin_routes(app: FastAPI, sandbox: Sandbox) -> None:
    state = sandbox.state

    @app.get(f"{ADMIN}/info", tags=["sandbox admin"])
    async def info() -> dict[str, Any]:
        config = sandbox.config
        return {
            "workspace_id": config.workspace_id,
            "api_key": config.api_key,
            "other_workspace_id": config.other_workspace_id,
            "other_api_key": config.other_api_key,
            "seed": config.seed,
            "config": config.describe(),
            "counts": state.summary()["counts"],
        }

    @app.post(f"{ADMIN}/reset", tags=["sandbox admin"])
    async def reset(request: Request) -> dict[str, Any]:
        raw = await request.body()
        overrides = json.loads(raw) if raw.strip() else {}
        try:
            sandbox.reset(SandboxConfig().with_overrides(overrides) if overrides else None)
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return {"reset": True, "config": sandbox.config.describe()}

    @app.get(f"{ADMIN}/orders", tags=["sandbox admin"])
    async def admin_orders(
        from_: str = Query(alias="from"),
        to: str = Query(),
        kind: str = "sale",
        status: str | None = None,
        fields: str | None = None,
    ) -> Response:
        """The window's orders; ``fields=hash_id,updated_at`` answers only those fields of each: a day of 10,000
        orders is about 20 MB whole, and a ground-truth check needs its keys only."""
        with state.lock:
            selected = state.window(instant(from_, "from"), instant(to, "to"), kind, status)
            if fields is None:
                return json_response(orders_body(selected))
            names = [name for name in fields.split(",") if name]
            return json_response(encode([{name: o.data.get(name) for name in names} for o in selected]))

    @app.get(f"{ADMIN}/edits", tags=["sandbox admin"])
    async def admin_edits() -> Response:
        """Every order ever edited, with its current version and whether that edit is still unseen: in one
        request what would otherwise take one GET /_sandbox/orders/{hash_id} per edited order."""
        with state.lock:
            return json_response(encode(state.edits()))

    @app.get(f"{ADMIN}/orders/{{hash_id}}", tags=["sandbox admin"])
    async def admin_order(hash_id: str) -> Response:
        with state.lock:
            stored = state.order(hash_id)
            return json_response(b'{"order":' + stored.json + b',"admin":' + encode(state.admin_view(stored)) + b"}")

    @app.post(f"{ADMIN}/orders", tags=["sandbox admin"])
    async def admin_add_order(request: Request) -> Response:
        body = decode(await request.body() or b"{}")
        if not isinstance(body, dict) or "created_at" not in body:
            raise ApiError(400, "invalid_request", "created_at is required")
        kind, status = body.pop("kind", "sale"), body.pop("status", "accepted")
        created_at = instant(body.pop("created_at"), "created_at")
        if "count" not in body:
            return json_response(state.add_order(created_at, kind, status, body).json, status=201)
        count = body.pop("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
            raise ApiError(400, "invalid_request", "count must be a whole number from 1 to 10000")
        added = state.add_orders(count, created_at, kind, status, body)
        return json_response(b"[" + b",".join(stored.json for stored in added) + b"]", status=201)

    @app.post(f"{ADMIN}/orders/{{hash_id}}/edit", tags=["sandbox admin"])
    async def admin_edit(hash_id: str, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        at = instant(body["at"], "at") if body.get("at") else None
        return json_response(state.edit(hash_id, at).json)

    @app.get(f"{ADMIN}/state", tags=["sandbox admin"])
    async def admin_state() -> dict[str, Any]:
        return state.summary()

    @app.get(f"{ADMIN}/purchase-needs", tags=["sandbox admin"])
    async def admin_needs() -> Response:
        with state.lock:
            return json_response(encode(sorted(state.needs.values(), key=lambda need: need["code"])))

    @app.get(f"{ADMIN}/catalogue", tags=["sandbox admin"])
    async def admin_catalogue() -> Response:
        with state.lock:
            return json_response(encode(state.catalogue.view()))

    @app.get(f"{ADMIN}/faults", tags=["sandbox admin"])
    async def get_faults() -> dict[str, Any]:
        return sandbox.faults.describe()

    @app.put(f"{ADMIN}/faults", tags=["sandbox admin"])
    async def put_faults(request: Request) -> dict[str, Any]:
        try:
            sandbox.faults = FaultPlan.parse(json.loads(await request.body()))
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "invalid_request", f"bad fault plan: {exc}") from None
        return sandbox.faults.describe()

    @app.delete(f"{ADMIN}/faults", tags=["sandbox admin"])
    async def clear_faults() -> dict[str, Any]:
        sandbox.faults = FaultPlan()
        return sandbox.faults.describe()

    @app.get(f"{ADMIN}/stats", tags=["sandbox admin"])
    async def get_stats() -> dict[str, Any]:
        return state.stats.snapshot()

    @app.post(f"{ADMIN}/stats/reset", tags=["sandbox admin"])
    async def reset_stats() -> dict[str, Any]:
        state.stats.clear()
        return state.stats.snapshot()

    @app.put(f"{ADMIN}/token-ttl", tags=["sandbox admin"])
    async def token_ttl(request: Request) -> dict[str, Any]:
        body = json.loads(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("seconds"), int | float) or body["seconds"] <= 0:
            raise ApiError(400, "invalid_request", 'the body must be {"seconds": <positive number>}')
        state.token_ttl = body["seconds"]
        return {"seconds": state.token_ttl}

    @app.post(f"{ADMIN}/tokens/expire", tags=["sandbox admin"])
    async def expire_tokens() -> dict[str, Any]:
        sandbox.issuer.revoke_all()
        return {"revoked": True}
