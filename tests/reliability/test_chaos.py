"""Chaos: the example pipelines, day after day, against a sandbox that misbehaves; the outcome must not change.

Every daily interval runs consentio_catalogue_daily (after a few ERP price changes), consentio_seller_daily (with
prepare) and consentio_buyer_daily under dag.test() while
the sandbox answers 429 with Retry-After, 500/502/503 (also in bursts), drops connections after applying writes,
answers slowly and revokes the token every N requests. At the end, with faults off, the ERP, the output files and
the sandbox are compared with the fault-free ground truth, and one line of figures is printed.

``make test`` runs 30 intervals (about a minute); ``CONSENTIO_CHAOS_INTERVALS=55 make chaos`` covers every seeded day.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_consentio.demo.catalogue_erp import catalogue_differences, reprice, seed_catalogue
from airflow_provider_consentio.demo.erp import query, seed_demand_lines, sqlite_connection

pytestmark = pytest.mark.chaos

INTERVALS = int(os.environ.get("CONSENTIO_CHAOS_INTERVALS", "30"))
FIRST_DAY = date(2025, 2, 3)
EDITS_PER_DAY = 3
FAULT_PLAN = {
    "seed": 2025,
    "rules": [
        {"kind": "429", "probability": 0.04, "retry_after": 0.05},
        {"kind": "500", "probability": 0.02},
        {"kind": "502", "probability": 0.02},
        {"kind": "503", "every": 29, "burst": 3},
        {"kind": "drop", "probability": 0.03},
        {"kind": "slow", "probability": 0.03, "delay": 0.3},
        {"kind": "expire_token", "every": 23},
    ],
}
RETRY_LINE = re.compile(r"; retry \d+/\d+ in ")


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


@pytest.fixture
def example_pipelines(tmp_path, monkeypatch, consentio_connection):
    """The example DAGs' connections and variable, pointed at a fresh ERP and data folder; fast client retries."""
    erp = tmp_path / "erp.db"
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_ERP", sqlite_connection(erp))
    monkeypatch.setenv("AIRFLOW_VAR_CONSENTIO_DATA_DIR", str(tmp_path / "data"))
    fast = {**consentio_connection, "extra": {"timeout": 10, "max_retries": 8, "retry_backoff": 0.02}}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(fast))
    return erp, tmp_path / "data"


def _edit_orders(state, day: date, already_edited: set[str]) -> set[tuple[str, str]]:
    """Edit accepted orders of the previous day (one of them edited, seen and now edited again)."""
    start, end = _day_bounds(day - timedelta(days=1))
    candidates = [o for o in state.window(start, end, "sale", "accepted") if not o.pending_edit]
    again = [o for o in candidates if o.data["hash_id"] in already_edited][:1]
    fresh = [o for o in candidates if o.data["hash_id"] not in already_edited][: EDITS_PER_DAY - len(again)]
    versions = set()
    for stored in again + fresh:
        edited = state.edit(stored.data["hash_id"])
        versions.add((edited.data["hash_id"], edited.data["updated_at"]))
    return versions


def _jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["hash_id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_pipelines_under_faults_equal_the_fault_free_truth(sandbox, run_dag, example_pipelines, capfd):
    from airflow_provider_consentio.sandbox.faults import FaultPlan
    from airflow_provider_consentio.sandbox.wire import dec

    erp, data = example_pipelines
    state = sandbox.state
    last_day = FIRST_DAY + timedelta(days=INTERVALS - 1)
    lines = seed_demand_lines(erp, FIRST_DAY, days=INTERVALS, lines_per_day=25)
    seed_catalogue(erp, items=60, customers=10)
    # The first run fetches edits since its interval start minus 7 days; those already pending are expected too.
    since = _day_bounds(FIRST_DAY)[0] - timedelta(days=7)
    expected_edits = {
        (o.data["hash_id"], o.data["updated_at"])
        for o in state.orders.values()
        if o.pending_edit and o.kind == "sale" and datetime.fromisoformat(o.data["updated_at"]) >= since
    }
    edited_hash_ids = {hash_id for hash_id, _ in expected_edits}
    sandbox.sandbox.faults = FaultPlan.parse(FAULT_PLAN)
    retries = 0
    runs = Counter()
    for offset in range(INTERVALS):
        day = FIRST_DAY + timedelta(days=offset)
        new_edits = _edit_orders(state, day, edited_hash_ids)
        expected_edits |= new_edits
        edited_hash_ids |= {hash_id for hash_id, _ in new_edits}
        reprice(erp, offset)
        for dag_id, conf in (
            ("consentio_catalogue_daily", {}),
            ("consentio_seller_daily", {"prepare_orders": True}),
            ("consentio_buyer_daily", {}),
        ):
            result = run_dag(dag_id, logical_date=(day + timedelta(days=1)).isoformat(), **conf)
            assert result.succeeded, f"{dag_id} for {day}: {result.task_states}"
            retries += len(RETRY_LINE.findall(result.output))
            runs[dag_id] += 1
    sandbox.sandbox.faults = FaultPlan()
    stats = state.stats.snapshot()

    # Orders: the ERP and the export files hold exactly the accepted orders of the days, each once.
    window_start, window_end = _day_bounds(FIRST_DAY)[0], _day_bounds(last_day)[1]
    truth = {o.data["hash_id"]: o for o in state.window(window_start, window_end, "sale", "accepted")}
    exported = [h for d in range(INTERVALS) for h in _jsonl_ids(data / "orders" / f"{FIRST_DAY + timedelta(d)}.jsonl")]
    in_erp = dict(query(erp, "SELECT hash_id, erp_number FROM erp_orders"))
    lost = len(set(truth) - set(exported)) + len(set(truth) - set(in_erp))
    duplicated = len(exported) - len(set(exported))
    # Edits bring orders of earlier days into the ERP too; anything else there is unexpected.
    unexpected = len(set(exported) - set(truth)) + len(set(in_erp) - set(truth) - edited_hash_ids)
    references_missing = sum(1 for h in truth if truth[h].data["external_id"] != in_erp.get(h))
    unprepared = sum(1 for o in truth.values() if not all(item["prepared"] for item in o.data["items"]))

    # Edits: every version delivered was applied once in the ERP and acknowledged in Consentio.
    applied = query(erp, "SELECT hash_id, updated_at FROM erp_order_edits")
    applied_set = set(applied)
    edits_missing = len(expected_edits - applied_set)
    edits_unseen = sum(1 for hash_id in edited_hash_ids if state.orders[hash_id].pending_edit)

    # Purchase needs: exactly the demand lines, with the values sent.
    demand = {
        code: (product, Decimal(qty))
        for code, product, qty in query(erp, "SELECT line_code, product_code, qty FROM demand_lines")
    }
    needs = list(state.needs.values())
    stored = {need["code"]: (need["reference_code"], dec(need["quantity"])) for need in needs}
    needs_missing = len(set(demand) - set(stored))
    needs_doubled = len(needs) - len({need["id"] for need in needs}) + len(set(stored) - set(demand))
    needs_wrong = sum(1 for code in demand.keys() & stored.keys() if demand[code] != stored[code])

    # The catalogue: exactly the ERP's, each product once (an ID per sku), the latest prices.
    catalogue = state.catalogue
    _, catalogue_wrong = catalogue_differences(erp, catalogue.view())
    catalogue_doubled = len(catalogue.products) - len({product["id"] for product in catalogue.products.values()})

    faults = dict(sorted(stats["faults"].items()))
    summary = (
        f"chaos: intervals={INTERVALS} runs={sum(runs.values())} requests={sum(stats['requests'].values())}"
        f" logins={stats['logins']} faults={sum(faults.values())} {json.dumps(faults, separators=(',', ':'))}"
        f" retries={retries} orders={len(truth)} lost={lost} duplicated={duplicated} unexpected={unexpected}"
        f" refs_missing={references_missing} unprepared={unprepared} edits={len(expected_edits)}"
        f" edits_missing={edits_missing} edits_unseen={edits_unseen} needs={lines} needs_missing={needs_missing}"
        f" needs_doubled={needs_doubled} needs_wrong={needs_wrong} products={len(catalogue.products)}"
        f" catalogue_wrong={len(catalogue_wrong)} catalogue_doubled={catalogue_doubled}"
    )
    with capfd.disabled():
        print("\n" + summary)
    assert len(applied) == len(applied_set)
    assert (lost, duplicated, unexpected, references_missing, unprepared) == (0, 0, 0, 0, 0), summary
    assert (edits_missing, edits_unseen) == (0, 0), summary
    assert (needs_missing, needs_doubled, needs_wrong, len(needs)) == (0, 0, 0, lines), summary
    assert (catalogue_wrong, catalogue_doubled) == ([], 0), summary
    # The run was chaotic: every kind of fault fired, and the client retried through them.
    assert set(faults) == {"429", "500", "502", "503", "drop", "slow", "expire_token"}, summary
    assert retries >= sum(faults[kind] for kind in ("429", "500", "502", "503")), summary
