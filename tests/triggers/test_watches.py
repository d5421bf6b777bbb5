"""The watch types on their own: what each fetches, what it hands the triggerer, and what the event trigger keys on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.triggers.events import ConsentioOrdersEventTrigger
from airflow_provider_consentio.triggers.orders import ConsentioOrdersTrigger
from airflow_provider_consentio.triggers.watches import EditedOrders, NewOrders, watch_type

MARCH_1 = datetime(2025, 3, 1, tzinfo=UTC)
MARCH_2 = datetime(2025, 3, 2, tzinfo=UTC)
RUN = {"data_interval_start": MARCH_1, "data_interval_end": MARCH_2}
OPTIONS = {"empty_interval": "fail", "lookback": timedelta(days=1), "task": "wait"}


class RecordingClient:
    """A sync client's two order listings, recording what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def get_raw_orders(self, start, end, *, kind, statuses):
        self.calls.append(("orders", start, end, kind, statuses))
        return []

    def get_raw_edited_orders(self, since):
        self.calls.append(("edited", since))
        return []


def for_run(name: str, **given):
    options = {"start": None, "end": None, "since": None, "kind": "sale", "status": "accepted", **OPTIONS, **given}
    return watch_type(name).for_run(RUN, **options)


def test_new_orders_fetch_the_runs_window_with_the_status():
    client = RecordingClient()
    for_run("new_orders", kind="purchase", status="pending").fetch(client)
    assert client.calls == [("orders", MARCH_1, MARCH_2, "purchase", ["pending"])]
    for_run("new_orders", status=None).fetch(client)
    assert client.calls[-1] == ("orders", MARCH_1, MARCH_2, "sale", None)


def test_edited_orders_fetch_since_the_interval_start_or_the_given_instant():
    client = RecordingClient()
    for_run("edited_orders").fetch(client)
    for_run("edited_orders", since="2025-02-20T00:00:00Z").fetch(client)
    assert client.calls == [("edited", MARCH_1), ("edited", datetime(2025, 2, 20, tzinfo=UTC))]
    with pytest.raises(ConsentioConfigError, match="pass since explicitly"):
        watch_type("edited_orders").for_run(
            {}, **{"start": None, "end": None, "since": None, "kind": "sale"}, status=None, **OPTIONS
        )


@pytest.mark.parametrize("name", ["new_orders", "edited_orders"])
def test_the_deferrable_trigger_rebuilds_the_sensors_watch_from_json(name):
    watch = for_run(name, kind="purchase", status="pending")
    trigger = ConsentioOrdersTrigger(consentio_conn_id="c", **json.loads(json.dumps(watch.as_kwargs())))
    assert trigger.watched() == watch
    _, kwargs = trigger.serialize()
    assert ConsentioOrdersTrigger(**kwargs).watched() == watch


def test_triggers_serialized_before_the_watch_types_still_load():
    """The kwargs the sensor deferred with until now: every field of the old OrdersWatch, the unused ones None."""
    old_new = {"watch": "new_orders", "kind": "sale", "status": "accepted", "since": None}
    old_new |= {"start": "2025-03-01T00:00:00+00:00", "end": "2025-03-02T00:00:00+00:00"}
    old_edited = {"watch": "edited_orders", "kind": "sale", "status": "accepted", "start": None, "end": None}
    old_edited |= {"since": "2025-03-01T00:00:00+00:00"}
    assert ConsentioOrdersTrigger(consentio_conn_id="c", **old_new).watched() == NewOrders(
        "sale", "accepted", start=MARCH_1, end=MARCH_2
    )
    assert ConsentioOrdersTrigger(consentio_conn_id="c", **old_edited).watched() == EditedOrders(
        "sale", "accepted", since=MARCH_1
    )


def test_an_unknown_watch_is_refused_where_it_is_written():
    with pytest.raises(ConsentioConfigError, match="watch must be one of new_orders, edited_orders"):
        watch_type("new_order")
    with pytest.raises(ConsentioConfigError, match="got 'deleted_orders'"):
        ConsentioOrdersTrigger(consentio_conn_id="c", watch="deleted_orders")
    with pytest.raises(ValueError, match="watch must be one of"):
        ConsentioOrdersEventTrigger(watch="deleted_orders")


def test_the_event_triggers_watermark_keys_are_the_ones_already_stored():
    """Deployments hold watermarks under these keys: a changed key would re-announce or skip orders."""
    keys = {
        ConsentioOrdersEventTrigger(consentio_conn_id="c", watch="new_orders").state_key,
        ConsentioOrdersEventTrigger(
            consentio_conn_id="c", watch="new_orders", kind="purchase", status="pending"
        ).state_key,
        ConsentioOrdersEventTrigger(consentio_conn_id="c", watch="edited_orders", kind="purchase").state_key,
    }
    assert keys == {
        "consentio:c:new_orders:sale:accepted",
        "consentio:c:new_orders:purchase:pending",
        "consentio:c:edited_orders:edited",
    }


def test_lineage_names_the_resource_each_watch_reads():
    assert watch_type("new_orders").lineage_resource("purchase") == "orders/purchase"
    assert watch_type("edited_orders").lineage_resource("purchase") == "orders/edited"
