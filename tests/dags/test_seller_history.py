"""consentio_seller_history: a range of days in one run, alongside consentio_seller_daily (dag.test, sandbox).

This file sits in the scenario bundle's folder, so the scenario DagBag imports it too: module level imports no
Airflow.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
from test_example_dags import example_env  # noqa: F401 (a fixture)

from airflow_provider_consentio.demo.erp import query
from airflow_provider_consentio.models.jsonwire import loads, split_array

FIRST, END = date(2025, 3, 1), date(2025, 3, 8)  # the history's range, end exclusive
DAILY_DAYS = [date(2025, 3, 6), date(2025, 3, 7), date(2025, 3, 8)]  # two inside the range, one after it


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _erp_rows(erp):
    return query(erp, "SELECT hash_id, id, erp_number, updated_at FROM erp_orders ORDER BY hash_id")


def _accepted_lines(sandbox, day: date) -> list[bytes]:
    """The day's accepted orders as the API serves them now, one line each (the sandbox answers on one line)."""
    params = {"from": _midnight(day).isoformat(), "to": _midnight(day + timedelta(days=1)).isoformat()}
    body = httpx.get(
        f"{sandbox.base_url}/_sandbox/orders", params={**params, "kind": "sale", "status": "accepted"}, timeout=60
    ).content
    return [bytes(element) for element in split_array(body)[1]]


def test_history_and_daily_runs_together_load_every_order_once(sandbox, run_dag, example_env):  # noqa: F811
    erp, data = example_env
    history_conf = {"start": FIRST.isoformat(), "end": END.isoformat()}

    def daily(day: date) -> None:
        result = run_dag("consentio_seller_daily", logical_date=(day + timedelta(days=1)).isoformat())
        assert result.succeeded, (day, result.task_states)

    daily(DAILY_DAYS[0])
    history = run_dag("consentio_seller_history", logical_date="2025-03-20", **history_conf)
    assert history.succeeded, history.task_states
    for day in DAILY_DAYS[1:]:
        daily(day)

    def truth_lines(day: date) -> list[bytes]:
        return _accepted_lines(sandbox, day)

    days = [FIRST + timedelta(days=offset) for offset in range((DAILY_DAYS[-1] - FIRST).days + 1)]
    truth = {
        stored.data["hash_id"]: stored.data
        for stored in sandbox.state.window(_midnight(days[0]), _midnight(days[-1] + timedelta(1)), "sale", "accepted")
    }
    assert len(truth) > 150
    assert history.xcoms["load_days_into_erp"]["read"] == history.xcoms["export_accepted_orders_by_day"]["count"]
    assert history.xcoms["push_erp_references"]["updated"] == history.xcoms["load_days_into_erp"]["read"]

    # Each day's file, written by the history, the daily run or both, holds that day's accepted orders once each.
    for day in days:
        exported = (data / "orders" / f"{day}.jsonl").read_bytes().splitlines()
        assert [loads(line)["hash_id"] for line in exported] == [loads(line)["hash_id"] for line in truth_lines(day)]

    # The ERP holds every accepted order of the days once, at its newest version, with one ERP number pushed back.
    low, high = (f"{day}T00:00:00Z" for day in (days[0], days[-1] + timedelta(1)))
    in_range = query(
        erp,
        "SELECT hash_id, erp_number, strftime('%Y-%m-%dT%H:%M:%SZ', updated_at) FROM erp_orders"
        " WHERE created_at >= datetime(?) AND created_at < datetime(?)",
        low,
        high,
    )
    assert len(in_range) == len(truth)
    assert {hash_id: (number, updated) for hash_id, number, updated in in_range} == {
        hash_id: (f"ERP-{order['id']:08d}", order["updated_at"]) for hash_id, order in truth.items()
    }
    references = sandbox.state.summary()["external_refs"]
    assert {hash_id: references[hash_id]["external_id"] for hash_id in truth} == {
        hash_id: number for hash_id, number, _ in in_range
    }

    # Loading the range again adds no row and changes no ERP number or version (payloads now carry the references).
    before = _erp_rows(erp)
    assert run_dag("consentio_seller_history", logical_date="2025-03-21", **history_conf).succeeded
    assert _erp_rows(erp) == before
