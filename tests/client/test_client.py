"""The client against the sandbox over loopback HTTP: auth, token reuse, retries, errors, secret hygiene."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import httpx
import pytest

from airflow_provider_consentio.client import AsyncConsentioClient, RetryPolicy, TokenCache
from airflow_provider_consentio.errors import (
    ConsentioAuthError,
    ConsentioConfigError,
    ConsentioNotFoundError,
    ConsentioTransientError,
)
from airflow_provider_consentio.models import ExternalReference, PurchaseNeed

MARCH_1 = datetime(2025, 3, 1, tzinfo=UTC)
MARCH_3 = datetime(2025, 3, 3, tzinfo=UTC)
FAST_RETRIES = RetryPolicy(max_retries=6, initial_backoff=0.01, max_backoff=0.05)


def admin(sandbox, method, path, **kwargs):
    response = httpx.request(method, sandbox.base_url + path, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def set_faults(sandbox, *rules, **plan):
    admin(sandbox, "PUT", "/_sandbox/faults", json={"seed": 7, "rules": list(rules), **plan})


def stats(sandbox):
    return admin(sandbox, "GET", "/_sandbox/stats")


def ground_truth_ids(sandbox, start=MARCH_1, end=MARCH_3, **params):
    orders = admin(
        sandbox,
        "GET",
        "/_sandbox/orders",
        params={"from": start.isoformat(), "to": end.isoformat(), "kind": "sale", **params},
    )
    return [order["id"] for order in orders]


def first_hash_id(sandbox):
    params = {"from": MARCH_1.isoformat(), "to": MARCH_3.isoformat(), "kind": "sale", "status": "accepted"}
    return admin(sandbox, "GET", "/_sandbox/orders", params=params)[0]["hash_id"]


def test_many_calls_log_in_exactly_once(sandbox, make_client):
    client = make_client()
    for _ in range(15):
        client.get_orders(MARCH_1, MARCH_3, status="accepted")
    client.get_export_template_methods()
    client.mark_orders_seen(["does-not-exist"])
    assert stats(sandbox)["logins"] == 1


def test_token_cache_is_shared_by_clients_of_the_process(sandbox, make_client):
    cache = TokenCache()
    for _ in range(3):
        make_client(token_cache=cache).get_orders(MARCH_1, MARCH_3)
    assert stats(sandbox)["logins"] == 1


def test_logs_in_again_shortly_before_the_token_expires(sandbox, make_client):
    admin(sandbox, "PUT", "/_sandbox/token-ttl", json={"seconds": 3})
    client = make_client()
    client.get_orders(MARCH_1, MARCH_3)
    time.sleep(2.1)  # the server may or may not have expired it yet: the client must not wait to find out
    client.get_orders(MARCH_1, MARCH_3)
    counters = stats(sandbox)
    assert counters["logins"] == 2
    assert not any(key.endswith(" 401") for key in counters["requests"])  # renewed before, not after, a 401


def test_revoked_token_gets_one_relogin_and_the_call_succeeds(sandbox, make_client):
    client = make_client()
    client.get_orders(MARCH_1, MARCH_3)
    admin(sandbox, "POST", "/_sandbox/tokens/expire")
    assert [o.id for o in client.get_orders(MARCH_1, MARCH_3)] == ground_truth_ids(sandbox)
    assert stats(sandbox)["logins"] == 2


def test_rejected_api_key_says_so_without_the_key(sandbox, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(api_key="sbx_wrong_key_1234567890")
    with pytest.raises(ConsentioAuthError) as excinfo:
        client.get_orders(MARCH_1, MARCH_3)
    message = str(excinfo.value)
    assert f"Consentio rejected the API key for workspace {sandbox.workspace_id}" in message
    assert "HTTP 401" in message and "/login" in message
    assert "sbx_wrong_key_1234567890" not in message + caplog.text


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "drop", "expire_token"])
def test_every_transient_fault_is_recovered(sandbox, make_client, kind):
    # Every 3rd request: a retry (and, for expire_token, the re-login before it) never lands on a fault again.
    set_faults(sandbox, {"kind": kind, "every": 3, "retry_after": 0.05})
    client = make_client(retry=FAST_RETRIES)
    for _ in range(5):
        assert [o.id for o in client.get_orders(MARCH_1, MARCH_3)] == ground_truth_ids(sandbox)
    assert stats(sandbox)["faults"].get(kind, 0) >= 2


def test_retry_after_is_honoured(sandbox, make_client):
    set_faults(sandbox, {"kind": "429", "every": 1, "retry_after": 0.4}, paths="/order$")
    client = make_client(retry=RetryPolicy(max_retries=1, initial_backoff=0.0, max_backoff=0.0))
    started = time.monotonic()
    with pytest.raises(ConsentioTransientError, match=r"HTTP 429.*gave up after 1 retries"):
        client.get_orders(MARCH_1, MARCH_3)
    assert time.monotonic() - started >= 0.4


def test_slow_responses_time_out_and_are_retried(sandbox, make_client):
    set_faults(sandbox, {"kind": "slow", "every": 2, "delay": 1.5})
    client = make_client(timeout=0.5, retry=FAST_RETRIES)
    assert [o.id for o in client.get_orders(MARCH_1, MARCH_3)] == ground_truth_ids(sandbox)
    assert [o.id for o in client.get_orders(MARCH_1, MARCH_3)] == ground_truth_ids(sandbox)
    assert stats(sandbox)["faults"]["slow"] >= 1


def test_a_list_is_fetched_again_after_a_dropped_connection_without_repeating_orders(sandbox, make_client):
    set_faults(sandbox, {"kind": "drop", "every": 2}, paths="/order$")
    client = make_client(retry=FAST_RETRIES)
    for _ in range(3):
        ids = [record.keys.id for record in client.get_raw_orders(MARCH_1, MARCH_3)]
        assert ids == ground_truth_ids(sandbox)
    assert stats(sandbox)["faults"]["drop"] >= 1


def test_html_error_body_is_reported_readably(sandbox, make_client):
    set_faults(sandbox, {"kind": "502", "every": 1})
    client = make_client(retry=RetryPolicy(max_retries=0))
    with pytest.raises(ConsentioTransientError) as excinfo:
        client.get_export_template_methods()
    assert "GET /v2/partner/export/template/methods -> HTTP 502: non-JSON body (text/html): '502 Bad Gateway" in str(
        excinfo.value
    )


def test_retries_are_bounded_in_count(sandbox, make_client):
    set_faults(sandbox, {"kind": "503", "every": 1}, paths="/order$")
    client = make_client(retry=RetryPolicy(max_retries=3, initial_backoff=0.01, max_backoff=0.01))
    with pytest.raises(
        ConsentioTransientError, match=r"GET /v2/partner/\d+/order -> HTTP 503.*gave up after 3 retries"
    ):
        client.get_orders(MARCH_1, MARCH_3)
    assert stats(sandbox)["faults"]["503"] == 4  # the first attempt and three retries


def test_prepare_needs_no_api_key_and_sends_no_authorization(sandbox, make_client):
    hash_id = first_hash_id(sandbox)
    client = make_client(api_key=None)
    order = client.prepare_order(hash_id)
    assert order.hash_id == hash_id and all(item.prepared for item in order.items)
    assert stats(sandbox)["logins"] == 0
    with pytest.raises(ConsentioNotFoundError, match="HTTP 404"):
        client.prepare_order("no-such-order")
    with pytest.raises(ConsentioConfigError, match="No API key for workspace"):
        client.get_orders(MARCH_1, MARCH_3)


def test_writes_report_per_record_errors(sandbox, make_client):
    client = make_client()
    hash_id = first_hash_id(sandbox)
    result = client.update_external_references(
        [ExternalReference(hash_id=hash_id, external_id="ERP-1"), ExternalReference(hash_id="nope", external_id="X")]
    )
    assert [order["hash_id"] for order in result.saved] == [hash_id]
    assert [(error.key, "not found" in error.reason) for error in result.errors] == [("nope", True)]


def test_purchase_need_decimals_and_metadata_round_trip_exactly(sandbox, make_client):
    from decimal import Decimal

    client = make_client()
    need = PurchaseNeed.model_validate(
        {
            "code": "PN-1",
            "reference_code": "PRD-1",
            "start_date": "2025-03-15",
            "end_date": "2025-03-16",
            "quantity": "12.50",
            "quantity_unit": "kg",
            "external_status": "A",
            "metadata": {"target_price": Decimal("0.1000000000000000055511"), "tags": ["a", 1]},
        }
    )
    [saved] = client.upsert_purchase_needs([need]).saved
    assert saved["quantity"] == Decimal("12.50") and str(saved["quantity"]) == "12.50"
    [stored] = client.get_raw_purchase_needs(need.start_date, need.end_date)
    assert b'"quantity":12.50' in bytes(stored.raw)
    assert stored.data["metadata"] == {"target_price": Decimal("0.1000000000000000055511"), "tags": ["a", 1]}


def test_async_client_shares_the_policy(sandbox, make_settings):
    set_faults(sandbox, {"kind": "503", "every": 2})

    async def fetch():
        async with AsyncConsentioClient(make_settings(retry=FAST_RETRIES), token_cache=TokenCache()) as client:
            return [record.keys.id for record in await client.get_raw_orders(MARCH_1, MARCH_3)]

    assert asyncio.run(fetch()) == ground_truth_ids(sandbox)


def test_no_secret_reaches_logs_errors_or_reprs(sandbox, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    set_faults(sandbox, {"kind": "expire_token", "every": 5}, {"kind": "429", "every": 7, "retry_after": 0.01})
    client = make_client(on_secret=secrets.append, retry=FAST_RETRIES)
    for _ in range(6):
        client.get_orders(MARCH_1, MARCH_3)
    texts = [caplog.text, repr(client), repr(client.settings)]
    with pytest.raises(ConsentioAuthError) as excinfo:
        make_client(api_key=sandbox.api_key + "x").login()
    texts.append(str(excinfo.value))
    assert sandbox.api_key in secrets and len(secrets) >= 3  # the key and at least two access tokens were masked
    for secret in secrets:
        for text in texts:
            assert secret not in text


def test_insecure_base_urls_are_refused(make_settings):
    for url in ("http://api.consentio.co", "http://10.0.0.5:8080", "ftp://api.consentio.co"):
        with pytest.raises(ConsentioConfigError, match="Refusing base URL"):
            make_settings(base_url=url)
    with pytest.raises(ConsentioConfigError, match="must not contain credentials"):
        make_settings(base_url="https://user:secret@api.consentio.co")
