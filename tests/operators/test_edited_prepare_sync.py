"""Edited orders + mark seen (at-least-once), prepare via mapping, external references, the sensor."""

from __future__ import annotations

import threading
import time

import httpx

from airflow_provider_consentio.models.jsonwire import loads


def admin(sandbox, method, path, **kwargs):
    response = httpx.request(method, sandbox.base_url + path, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def accepted_hash_ids(sandbox, count, start="2025-03-01T00:00:00Z", end="2025-03-08T00:00:00Z"):
    orders = admin(
        sandbox, "GET", "/_sandbox/orders", params={"from": start, "to": end, "kind": "sale", "status": "accepted"}
    )
    assert len(orders) >= count
    return [order["hash_id"] for order in orders[:count]]


def order_admin(sandbox, hash_id):
    return admin(sandbox, "GET", f"/_sandbox/orders/{hash_id}")["admin"]


def edited_run(run_dag, tmp_path, name, **conf):
    return run_dag(
        "t_edited_then_seen", output_path=str(tmp_path / f"{name}.jsonl"), since="2020-01-01T00:00:00Z", **conf
    )


def test_edited_then_seen_then_edited_again_round_trip(run_dag, sandbox, tmp_path):
    [hash_id] = accepted_hash_ids(sandbox, 1)
    admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit")
    first = edited_run(run_dag, tmp_path, "first")
    assert first.succeeded, first.output
    assert hash_id in [order["hash_id"] for order in first.xcoms["edited"]["orders"]]
    delivered = [loads(line) for line in (tmp_path / "first.jsonl").read_text().splitlines()]
    assert hash_id in {order["hash_id"] for order in delivered}
    assert order_admin(sandbox, hash_id)["pending_edit"] is False

    quiet = edited_run(run_dag, tmp_path, "quiet")
    assert hash_id not in [order["hash_id"] for order in quiet.xcoms["edited"]["orders"]]  # seen edits drop out

    admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit")
    again = edited_run(run_dag, tmp_path, "again")
    assert hash_id in [order["hash_id"] for order in again.xcoms["edited"]["orders"]]
    assert order_admin(sandbox, hash_id)["pending_edit"] is False


def test_a_failure_between_edited_and_seen_redelivers_the_edit(run_dag, sandbox, tmp_path):
    [hash_id] = accepted_hash_ids(sandbox, 1)
    admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit")
    broken = edited_run(run_dag, tmp_path, "broken", fail_apply=True)
    assert broken.state == "failed" and broken.task_states["seen"] != "success"
    assert order_admin(sandbox, hash_id)["pending_edit"] is True  # not acknowledged: nothing lost
    retried = edited_run(run_dag, tmp_path, "retried")
    assert retried.succeeded
    assert hash_id in [order["hash_id"] for order in retried.xcoms["edited"]["orders"]]
    assert order_admin(sandbox, hash_id)["pending_edit"] is False


def test_an_order_edited_again_after_it_was_fetched_is_left_unseen(run_dag, sandbox, tmp_path):
    [hash_id] = accepted_hash_ids(sandbox, 1)
    first_edit = admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit", json={"at": "2026-01-01T10:00:00Z"})
    admin(sandbox, "POST", f"/_sandbox/orders/{hash_id}/edit", json={"at": "2026-01-01T11:00:00Z"})
    processed = [{"hash_id": hash_id, "updated_at": first_edit["updated_at"]}]
    result = run_dag("t_mark_seen", orders=processed)
    assert result.succeeded, result.output
    assert result.xcoms["seen"] == {"seen": 0, "left_unseen": [hash_id], "errors": []}
    assert order_admin(sandbox, hash_id)["pending_edit"] is True


def test_prepare_fifty_orders_through_dynamic_task_mapping_without_an_api_key(run_dag, sandbox, monkeypatch, tmp_path):
    import json
    import os

    connection = json.loads(os.environ["AIRFLOW_CONN_CONSENTIO_DEFAULT"])
    del connection["password"]  # the prepare endpoint is public
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(connection))
    hash_ids = accepted_hash_ids(sandbox, 50, end="2025-03-31T00:00:00Z")
    result = run_dag("t_prepare_mapped", hash_ids=hash_ids)
    assert result.succeeded, result.output
    assert result.task_states["prepare"] == ["success"] * 50
    assert sorted(h for summary in result.xcoms["prepare"] for h in summary["prepared"]) == sorted(hash_ids)
    assert set(hash_ids) <= set(admin(sandbox, "GET", "/_sandbox/state")["prepared"])


def test_external_references_are_pushed_in_batches_and_cancel_works(run_dag, sandbox):
    hash_ids = accepted_hash_ids(sandbox, 7)
    references = [
        {"hash_id": h, "external_id": f"ERP-{i}", "external_status": "imported"} for i, h in enumerate(hash_ids)
    ]
    references[-1] = {"hash_id": hash_ids[-1], "cancel": True}
    result = run_dag("t_sync_external", references=references)
    assert result.succeeded, result.output
    assert result.xcoms["sync"]["updated"] == 7 and result.xcoms["sync"]["canceled"] == 1
    state = admin(sandbox, "GET", "/_sandbox/state")
    assert {h: state["external_refs"][h]["external_id"] for h in hash_ids[:6]} == {
        h: f"ERP-{i}" for i, h in enumerate(hash_ids[:6])
    }
    assert hash_ids[-1] in state["canceled"]


def test_invalid_references_are_all_named_and_nothing_is_sent(run_dag, sandbox):
    [good] = accepted_hash_ids(sandbox, 1)
    references = [
        {"hash_id": good, "external_id": "ERP-1"},
        {"hash_id": "h-empty"},
        {"hash_id": "h-long", "external_status": "S" * 33},
        {"external_id": "no-hash"},
        {"hash_id": "h-extra", "external_id": "x", "extrnal_status": "done"},
    ]
    result = run_dag("t_sync_external", references=references)
    assert result.state == "failed"
    for expected in (
        "4 of 5 records",
        "h-empty: sets nothing",
        "h-long: external_status",
        "record #4: hash_id is required",
        "h-extra: extrnal_status is not a known field (did you mean external_status?)",
        "Nothing was sent",
    ):
        assert expected in result.output
    assert good not in admin(sandbox, "GET", "/_sandbox/state")["external_refs"]


def test_per_order_failures_from_the_api_are_reported(run_dag, sandbox):
    [good] = accepted_hash_ids(sandbox, 1)
    references = [
        {"hash_id": good, "external_id": "ERP-9"},
        {"hash_id": "unknown-1", "external_id": "X"},
        {"hash_id": "bad"},
    ]
    result = run_dag("t_sync_external_skip_invalid", references=references)
    assert result.succeeded, result.output  # one API rejection tolerated (max_rejected=1), the invalid one skipped
    summary = result.xcoms["sync"]
    assert summary["updated"] == 1 and summary["rejected_count"] == 1 and "unknown-1" in summary["rejected"][0]
    assert summary["invalid"] == ["bad: sets nothing: give external_id, external_status or cancel=true"]


def test_sync_reads_a_csv_file(run_dag, sandbox, tmp_path):
    hash_ids = accepted_hash_ids(sandbox, 2)
    path = tmp_path / "refs.csv"
    path.write_text(
        "hash_id,external_id,external_status,cancel\n" + "".join(f"{h},ERP-{h},booked,false\n" for h in hash_ids)
    )
    result = run_dag("t_sync_external", input_path=str(path))
    assert result.succeeded, result.output
    refs = admin(sandbox, "GET", "/_sandbox/state")["external_refs"]
    assert all(refs[h] == {"external_id": f"ERP-{h}", "external_status": "booked"} for h in hash_ids)


def test_sensor_defers_until_an_order_arrives(run_dag, sandbox):
    window = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}

    def order_lists_served() -> int:
        requests = admin(sandbox, "GET", "/_sandbox/stats")["requests"]
        return sum(count for route, count in requests.items() if route.startswith("GET /{ws}/order "))

    def add_order_later():
        # After the sensor's first check found nothing, however long the task took to start: then it must defer.
        deadline = time.monotonic() + 120
        while not order_lists_served() and time.monotonic() < deadline:
            time.sleep(0.05)
        admin(sandbox, "POST", "/_sandbox/orders", json={"created_at": "2030-01-01T08:00:00Z", "status": "accepted"})

    adder = threading.Thread(target=add_order_later)
    adder.start()
    result = run_dag("t_sensor_new_orders", **window)
    adder.join()
    assert result.succeeded, result.output
    assert result.xcoms["wait"] == 1
    assert "deferring to the triggerer" in result.output


def test_skip_never_sends_a_reference_that_a_later_invalid_duplicate_replaced(run_dag, sandbox):
    """[X STALE, X invalid, Y]: the second X replaces the first and is invalid, so nothing is sent for X."""
    stale, fresh = accepted_hash_ids(sandbox, 2)
    references = [
        {"hash_id": stale, "external_id": "STALE"},
        {"hash_id": stale},
        {"hash_id": fresh, "external_id": "E"},
    ]
    result = run_dag("t_sync_external_skip_invalid", references=references)
    assert result.succeeded, result.output
    summary = result.xcoms["sync"]
    assert (summary["submitted"], summary["updated"], summary["invalid_count"]) == (1, 1, 1)
    assert "1 hash_id value(s) occur more than once in the input" in result.output
    refs = admin(sandbox, "GET", "/_sandbox/state")["external_refs"]
    assert stale not in refs  # STALE never reached the API
    assert refs[fresh]["external_id"] == "E"
