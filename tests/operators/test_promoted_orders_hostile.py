"""Promoted orders against a hostile API: a listing that lags behind the writes, connections dropped and 503s
answered after the order was applied. The operator's execute() runs in-process against the sandbox over loopback
HTTP; the sandbox's state is the ground truth of how many orders each reference has."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.errors import ConsentioError
from airflow_provider_consentio.models.catalogue import Product
from airflow_provider_consentio.operators.promoted_orders import (
    ConsentioCreatePromotedOrdersOperator,
    ConsentioDuplicateOrdersError,
)


@pytest.fixture
def products(sandbox, make_client):
    make_client().upsert_products([Product(sku=f"SKU-{n:05d}", name=f"Product {n}") for n in range(3)])


def connection_with(monkeypatch, consentio_connection, **extra: Any) -> None:
    """consentio_default with these extras added (retry settings as a user sets them)."""
    changed = {**consentio_connection, "extra": {**consentio_connection["extra"], **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(changed))


def set_faults(sandbox, listing_lag: float, *rules: dict[str, Any]) -> None:
    plan = {"paths": "promoted-order", "listing_lag": listing_lag, "rules": list(rules)}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()


def orders(references: list[str]) -> list[dict[str, Any]]:
    return [
        {"reference": reference, "buyer_email": "chef@example.com", "items": [{"sku": "SKU-00001", "amount": "2"}]}
        for reference in references
    ]


def orders_per_reference(sandbox) -> Counter[str]:
    """How many orders the sandbox holds for each reference (what Consentio really has)."""
    return Counter(order.data["external_id"] for order in sandbox.state.orders.values() if order.data["external_id"])


def promote(references: list[str], **options: Any) -> ConsentioCreatePromotedOrdersOperator:
    return ConsentioCreatePromotedOrdersOperator(task_id="promote", orders=orders(references), **options)


@pytest.mark.parametrize(
    "retry_extra",
    [pytest.param({}, id="default-retry-settings"), pytest.param({"retry_backoff": 0.05}, id="retry_backoff=0.05")],
)
def test_a_lagging_listing_with_drops_and_503s_after_applying_gives_one_order_per_reference(
    sandbox, products, consentio_connection, monkeypatch, retry_extra
):
    connection_with(monkeypatch, consentio_connection, **retry_extra)
    set_faults(
        sandbox,
        2.0,
        {"kind": "drop", "every": 6},
        {"kind": "503", "every": 7, "after_applying": True},
    )
    references = [f"ERP-LAG-{n:02d}" for n in range(30)]

    summary = promote(references).execute(context={})

    counts = {key: value for key, value in summary.items() if not isinstance(value, list)}
    print(f"\nlag 2 s, drops and 503s after applying, {retry_extra or 'default retry settings'}: {counts}")
    assert orders_per_reference(sandbox) == dict.fromkeys(references, 1)
    assert sandbox.state.stats.faults["drop"] >= 4 and sandbox.state.stats.faults["503"] >= 3
    assert (summary["created"], summary["found_existing"], summary["duplicates"]) == (30, 0, 0)
    # Each lost answer was settled by a read-back, none by a second send.
    assert summary["found_after_lost_answer"] == sandbox.state.stats.faults["drop"] + sandbox.state.stats.faults["503"]
    assert sorted(order["reference"] for order in summary["orders"]) == references


def test_a_listing_lagging_longer_than_the_settle_window_fails_the_audit_naming_every_duplicate(
    sandbox, products, consentio_connection
):
    set_faults(sandbox, 1.5, {"kind": "drop", "every": 2})
    references = [f"ERP-DUP-{n}" for n in range(6)]

    with pytest.raises(ConsentioDuplicateOrdersError) as failed:
        promote(references, settle_window=0.3, poll_every=0.1).execute(context={})

    print(f"\nlag 1.5 s > settle window 0.3 s, drops after applying:\n{failed.value}")
    held = orders_per_reference(sandbox)
    duplicated = {reference for reference in references if held[reference] > 1}
    assert len(duplicated) >= 3  # the scenario really made duplicates
    assert set(failed.value.duplicates) == duplicated
    for reference in duplicated:
        hash_ids = [o.data["hash_id"] for o in sandbox.state.orders.values() if o.data["external_id"] == reference]
        assert sorted(failed.value.duplicates[reference]) == sorted(hash_ids)
        assert f"{reference}: " in str(failed.value) and all(hash_id in str(failed.value) for hash_id in hash_ids)
    assert "settle window of 0.3s" in str(failed.value)


def test_a_task_failing_for_another_reason_still_reports_the_duplicates_it_made(
    sandbox, products, consentio_connection
):
    set_faults(sandbox, 1.0, {"kind": "drop", "every": 2})
    unknown_product = {"sku": "SKU-99999", "amount": "1"}
    records = [
        *orders(["ERP-F-0", "ERP-F-1"]),
        {"reference": "ERP-F-BAD", "buyer_email": "chef@example.com", "items": [unknown_product]},
    ]
    operator = ConsentioCreatePromotedOrdersOperator(
        task_id="promote", orders=records, settle_window=0.2, poll_every=0.1
    )

    with pytest.raises(ConsentioDuplicateOrdersError) as failed:
        operator.execute(context={})  # max_rejected=0: the refused order fails the write path first

    assert list(failed.value.duplicates) == ["ERP-F-1"]
    assert "rejected 1 of 3 promoted orders" in str(failed.value.__cause__)
    assert orders_per_reference(sandbox)["ERP-F-1"] == 2


def test_an_audit_that_cannot_see_the_new_orders_fails_the_task_retryably(sandbox, products, consentio_connection):
    set_faults(sandbox, 3.0)  # no fault, only a listing slower than the audit waits
    references = ["ERP-SLOW-0", "ERP-SLOW-1"]

    with pytest.raises(ConsentioError) as failed:
        promote(references, audit_wait=0.3, poll_every=0.1).execute(context={})

    assert not isinstance(failed.value, ConsentioDuplicateOrdersError)  # Airflow may retry this one
    assert "could not count the orders of 2 references" in str(failed.value)
    assert all(f"- {reference}" in str(failed.value) for reference in references)
    assert orders_per_reference(sandbox) == dict.fromkeys(references, 1)


def test_a_retry_after_longer_than_the_settle_window_lengthens_the_wait(sandbox, products, consentio_connection):
    set_faults(sandbox, 0.8, {"kind": "429", "every": 2, "after_applying": True, "retry_after": 1.2})
    references = [f"ERP-RA-{n}" for n in range(4)]

    summary = promote(references, settle_window=0.2, poll_every=0.1).execute(context={})

    assert orders_per_reference(sandbox) == dict.fromkeys(references, 1)
    assert (summary["created"], summary["found_after_lost_answer"], summary["duplicates"]) == (4, 2, 0)


def test_a_rerun_finds_every_order_and_sends_nothing(sandbox, products, consentio_connection):
    references = [f"ERP-RE-{n}" for n in range(3)]
    promote(references).execute(context={})
    set_faults(sandbox, 0.0, {"kind": "500", "every": 1})  # a send would fail: nothing may be sent

    summary = promote(references).execute(context={})

    assert (summary["created"], summary["found_existing"], summary["duplicates"]) == (0, 3, 0)
    assert sandbox.state.stats.faults["500"] == 0
    assert orders_per_reference(sandbox) == dict.fromkeys(references, 1)


def test_the_settle_window_must_be_a_duration():
    from airflow_provider_consentio.errors import ConsentioConfigError

    with pytest.raises(ConsentioConfigError, match="settle_window must be a timedelta or a number of seconds"):
        promote(["ERP-1"], settle_window=-1)
    assert Decimal(promote(["ERP-1"], settle_window=2.5).settle_window) == Decimal("2.5")
