"""ConsentioUpsertPurchaseNeedsOperator and ConsentioExportPurchaseNeedsOperator in a real Airflow (dag.test)
against the sandbox over loopback HTTP. The sandbox's admin view is the ground truth of what Consentio holds."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_consentio.demo.erp import insert_demand_lines, sqlite_connection
from airflow_provider_consentio.models.jsonwire import dumps, loads

FIELDS = (
    "code", "reference_code", "start_date", "end_date", "quantity", "quantity_unit", "external_status",
    "storage_location_code", "delivery_address_code", "logistics_unit_code", "tender_kind", "metadata",
)  # fmt: skip
UNITS = ("box", "pallet", "kg", "piece", "unknown")


def need(number: int, **overrides: Any) -> dict[str, Any]:
    """A valid need; an override of None leaves the field out."""
    record = {
        "code": f"PN-{number:05d}",
        "reference_code": f"PRD-{number % 500:05d}",
        "start_date": f"2025-03-{1 + number % 20:02d}",
        "end_date": f"2025-03-{1 + number % 20 + number % 3:02d}",
        "quantity": Decimal(number) / 4,
        "quantity_unit": UNITS[number % len(UNITS)],
        "external_status": "A",
        "storage_location_code": f"WH{number % 7:02d}",
        "tender_kind": "standard" if number % 2 else None,
        "metadata": {"line": number, "priority": "high" if number % 3 else "normal"},
    }
    record.update(overrides)
    return {key: value for key, value in record.items() if value is not None}


def write_jsonl(path, records):
    path.write_text("".join(dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def write_csv(path, records, columns=FIELDS):
    """metadata goes in as a JSON column; None and missing fields are blank cells."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns))
        writer.writeheader()
        for record in records:
            row = {key: (dumps(value) if isinstance(value, dict) else value) for key, value in record.items()}
            writer.writerow({column: row.get(column, "") for column in columns})
    return str(path)


def stored_needs(sandbox) -> dict[str, dict[str, Any]]:
    """Every need the sandbox holds, by code (numbers as exact Decimals)."""
    response = httpx.get(f"{sandbox.base_url}/_sandbox/purchase-needs", timeout=60)
    response.raise_for_status()
    return {record["code"]: record for record in loads(response.content)}


def needs_posts(sandbox) -> int:
    return sum(
        count for key, count in sandbox.sandbox.stats.requests.items() if key.startswith("POST /{ws}/purchase-needs")
    )


def values(record):
    """What the need says (its fields), without the server's bookkeeping."""
    return {key: record.get(key) for key in FIELDS if record.get(key) is not None}


def as_sent(record):
    """A need as it comes back: exact decimals compare by value, dates as ISO strings."""
    return {key: (Decimal(value) if key == "quantity" else value) for key, value in record.items()}


# --- volume and idempotency ----------------------------------------------------------------------------------------


def test_ten_thousand_then_two_thousand_changed(run_dag, sandbox, tmp_path):
    first = [need(number) for number in range(10_000)]
    result = run_dag("t_upsert_needs_default", input_path=write_jsonl(tmp_path / "all.jsonl", first))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert {k: summary[k] for k in ("read", "submitted", "created", "updated", "rejected_count", "invalid_count")} == {
        "read": 10_000,
        "submitted": 10_000,
        "created": 10_000,
        "updated": 0,
        "rejected_count": 0,
        "invalid_count": 0,
    }
    assert summary["batches"] == 10
    before = stored_needs(sandbox)
    assert len(before) == 10_000
    assert all(values(before[r["code"]]) == as_sent(r) for r in first)

    changed = [
        need(number, quantity=Decimal("1000.125") + number, external_status="ALLOCATED", metadata={"round": 2})
        for number in range(0, 10_000, 5)
    ]
    result = run_dag("t_upsert_needs_default", input_path=write_jsonl(tmp_path / "changed.jsonl", changed))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    counts = ("submitted", "created", "updated", "rejected_count")
    assert [summary[k] for k in counts] == [2000, 0, 2000, 0]

    after = stored_needs(sandbox)
    assert len(after) == 10_000
    changed_codes = {record["code"] for record in changed}
    for record in changed:
        stored = after[record["code"]]
        assert values(stored) == as_sent(record)
        assert stored["external_status"] == "ALLOCATED" and stored["metadata"] == {"round": 2}
        # Replaced in place: the same Consentio record, a later version.
        previous = before[record["code"]]
        assert (stored["id"], stored["created_at"]) == (previous["id"], previous["created_at"])
        assert stored["updated_at"] > previous["updated_at"]
    untouched = [code for code in before if code not in changed_codes]
    assert len(untouched) == 8000
    assert all(after[code] == before[code] for code in untouched)  # updated_at included


def test_a_rerun_of_the_same_input_changes_no_value(run_dag, sandbox, tmp_path):
    records = [need(number) for number in range(300)]
    path = write_csv(tmp_path / "needs.csv", records)
    first = run_dag("t_upsert_needs_small_batches", input_path=path)
    assert first.succeeded, first.output[-3000:]
    assert (first.xcoms["upsert"]["created"], first.xcoms["upsert"]["batches"]) == (300, 43)  # ceil(300 / 7)
    before = stored_needs(sandbox)

    again = run_dag("t_upsert_needs_small_batches", input_path=path)
    assert again.succeeded, again.output[-3000:]
    after = stored_needs(sandbox)
    assert len(after) == 300
    # The sandbox, like GORM's Save, rewrites a record even when nothing changed: only updated_at moves.
    strip = ("updated_at",)
    assert {c: {k: v for k, v in r.items() if k not in strip} for c, r in after.items()} == {
        c: {k: v for k, v in r.items() if k not in strip} for c, r in before.items()
    }
    summary = again.xcoms["upsert"]
    assert (summary["created"], summary["updated"], summary["rejected_count"]) == (0, 300, 0)


# --- invalid input -------------------------------------------------------------------------------------------------

LONG_CODE = "PN-" + "L" * 254  # 257 characters
BAD = [  # (code, overrides (None: field left out), the reason the error must give)
    ("BAD-MISSING", {"external_status": None}, "external_status is required"),
    ("BAD-UNIT", {"quantity_unit": "litre"}, "quantity_unit input should be 'box', 'pallet', 'kg'"),
    ("BAD-TENDER", {"tender_kind": "clearance"}, "tender_kind input should be 'standard'"),
    (LONG_CODE, {}, "code string should have at most 256 characters"),
    ("BAD-STATUS", {"external_status": "S" * 33}, "external_status string should have at most 32 characters"),
    ("BAD-WINDOW", {"start_date": "2025-03-15", "end_date": "2025-03-14"}, "end_date is before start_date 2025-03-15"),
    ("BAD-DATE", {"start_date": "15/03/2025"}, "start_date must be a date in YYYY-MM-DD form, got '15/03/2025'"),
    ("BAD-QTY", {"quantity": "twelve"}, "quantity must be a number, got 'twelve'"),
    ("BAD-LOCATION", {"storage_location_code": "W" * 21}, "storage_location_code string should have at most 20"),
]


def mixed_input(tmp_path, kind):
    """Five valid needs with the bad ones interleaved, as a JSONL or CSV file."""
    records = [need(number) for number in range(5)]
    for position, (code, overrides, _) in enumerate(BAD):
        records.insert(position % 5, need(100 + position, code=code, **overrides))
    writer = write_jsonl if kind == "jsonl" else write_csv
    return writer(tmp_path / f"mixed.{kind}", records), records


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_invalid_records_fail_the_task_naming_each_and_nothing_is_sent(run_dag, sandbox, tmp_path, kind):
    path, _ = mixed_input(tmp_path, kind)
    result = run_dag("t_upsert_needs_default", input_path=path)
    assert result.state == "failed" and result.task_states["upsert"] == "failed"
    assert f"9 of 14 records from {path} are invalid" in result.output
    for code, _, reason in BAD:
        assert f"- {code}: {reason}" in result.output
    assert "Nothing was sent" in result.output
    assert not any(f"- PN-0000{number}:" in result.output for number in range(5))  # the valid ones are not blamed
    assert stored_needs(sandbox) == {}
    assert needs_posts(sandbox) == 0


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_skip_invalid_sends_the_valid_ones_and_lists_the_skipped(run_dag, sandbox, tmp_path, kind):
    path, records = mixed_input(tmp_path, kind)
    result = run_dag("t_upsert_needs_skip_invalid", input_path=path)
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert (summary["read"], summary["submitted"], summary["created"], summary["invalid_count"]) == (14, 5, 5, 9)
    skipped = {line.partition(": ")[0]: line.partition(": ")[2] for line in summary["invalid"]}
    assert set(skipped) == {code for code, _, _ in BAD}
    for code, _, reason in BAD:
        assert reason in skipped[code]
    stored = stored_needs(sandbox)
    assert set(stored) == {f"PN-0000{number}" for number in range(5)}
    for record in records:
        if record["code"] in stored:
            assert values(stored[record["code"]]) == as_sent(record)


# --- per-record rejections by the API (HTTP 200, partial success) --------------------------------------------------

# The client-side model cannot know which product codes exist in the workspace, nor does it forbid a NUL in a text;
# the sandbox rejects both: a reference_code starting with INVALID is "not found", a NUL is a control character.
UNKNOWN_PRODUCT = "reference_code 'INVALID-{}' not found"


def with_rejections(count: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    records = [need(number) for number in range(20)]
    expected = {}
    for number in range(count):
        if number == 1:
            records[number] = need(number, metadata={"note": "bad\x00byte"})
            expected[records[number]["code"]] = "control characters are not allowed"
        else:
            records[number] = need(number, reference_code=f"INVALID-{number}")
            expected[records[number]["code"]] = UNKNOWN_PRODUCT.format(number)
    return records, expected


@pytest.mark.parametrize("rejections", [3, 5])
def test_api_rejections_within_max_rejected_succeed_and_are_listed(run_dag, sandbox, tmp_path, rejections):
    records, expected = with_rejections(rejections)
    result = run_dag("t_upsert_needs_tolerant", input_path=write_jsonl(tmp_path / "needs.jsonl", records))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert (summary["submitted"], summary["created"], summary["rejected_count"]) == (20, 20 - rejections, rejections)
    assert {r["code"]: r["reason"] for r in summary["rejected"]} == expected
    assert len(summary["rejected"]) == rejections
    assert set(stored_needs(sandbox)) == {r["code"] for r in records} - set(expected)


@pytest.mark.parametrize(("dag_id", "rejections"), [("t_upsert_needs_default", 1), ("t_upsert_needs_tolerant", 6)])
def test_api_rejections_above_max_rejected_fail_naming_each(run_dag, sandbox, tmp_path, dag_id, rejections):
    records, expected = with_rejections(rejections)
    result = run_dag(dag_id, input_path=write_jsonl(tmp_path / "needs.jsonl", records))
    assert result.state == "failed"
    limit = 0 if dag_id.endswith("default") else 5
    assert f"Consentio rejected {rejections} of 20 purchase needs (max_rejected={limit})" in result.output
    assert f"the other {20 - rejections} were saved" in result.output
    for code, reason in expected.items():
        assert f"- {code}: {reason}" in result.output
    assert set(stored_needs(sandbox)) == {r["code"] for r in records} - set(expected)


def test_a_rejection_is_attributed_to_a_code_with_spaces(run_dag, sandbox, tmp_path):
    records = [need(1, code="PN 2025 / line 7: east", reference_code="INVALID-7"), need(2)]
    result = run_dag("t_upsert_needs_tolerant", input_path=write_jsonl(tmp_path / "spaced.jsonl", records))
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["upsert"]["rejected"] == [
        {"code": "PN 2025 / line 7: east", "reason": "reference_code 'INVALID-7' not found"}
    ]


# --- sources: SQL, CSV, JSONL; column maps; duplicates -------------------------------------------------------------


def erp_line(number: int, **overrides: Any) -> dict[str, Any]:
    """A demand line as the demo ERP stores it: every value text, metadata as a JSON text."""
    line = {
        "line_code": f"DL-{number:04d}",
        "plan_date": "2025-03-10",
        "product_code": f"PRD-{number:05d}",
        "delivery_from": "2025-03-12",
        "delivery_to": "2025-03-14",
        "qty": f"{number}.50",
        "unit": UNITS[number % 4],
        "status": "A",
        "warehouse": f"WH{number % 3:02d}",
        "depot": None if number % 2 else f"DEP{number:02d}",
        "tender": None if number % 2 else "promotion",
        "notes": json.dumps({"priority": "high", "planner": "Zoë"}) if number % 3 else None,
    }
    line.update(overrides)
    return line


def expected_from_erp(line: dict[str, Any]) -> dict[str, Any]:
    mapped = {
        "code": line["line_code"],
        "reference_code": line["product_code"],
        "start_date": line["delivery_from"],
        "end_date": line["delivery_to"],
        "quantity": Decimal(line["qty"]),
        "quantity_unit": line["unit"],
        "external_status": line["status"],
        "storage_location_code": line["warehouse"],
        "delivery_address_code": line["depot"],
        "tender_kind": line["tender"],
        "metadata": json.loads(line["notes"]) if line["notes"] else None,
    }
    return {key: value for key, value in mapped.items() if value is not None}


def test_sql_input_through_an_airflow_sqlite_connection(run_dag, sandbox, tmp_path, monkeypatch):
    db = tmp_path / "erp.db"
    lines = [erp_line(number) for number in range(1, 41)]
    insert_demand_lines(db, [*lines, erp_line(99, plan_date="2025-03-11")])
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_TEST_ERP", sqlite_connection(db))
    sql = (
        "SELECT line_code, product_code, delivery_from, delivery_to, qty, unit, status, warehouse, depot, tender, notes"
        " FROM demand_lines WHERE plan_date = '2025-03-10' ORDER BY line_code"
    )
    result = run_dag("t_needs_erp_columns", sql=sql)
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert summary["source"] == "SQL on consentio_test_erp"
    assert (summary["read"], summary["created"], summary["invalid_count"]) == (40, 40, 0)
    stored = stored_needs(sandbox)
    assert {code: values(record) for code, record in stored.items()} == {
        line["line_code"]: expected_from_erp(line) for line in lines
    }


def test_sql_input_with_a_bad_line_names_it_and_sends_nothing(run_dag, sandbox, tmp_path, monkeypatch):
    db = tmp_path / "erp.db"
    insert_demand_lines(db, [erp_line(1), erp_line(2, unit="crate"), erp_line(3, delivery_to="2025-03-01")])
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_TEST_ERP", sqlite_connection(db))
    sql = (
        "SELECT line_code, product_code, delivery_from, delivery_to, qty, unit, status, warehouse, depot, tender, notes"
        " FROM demand_lines"
    )
    result = run_dag("t_needs_erp_columns", sql=sql)
    assert result.state == "failed"
    assert "- DL-0002: quantity_unit input should be" in result.output and "got 'crate'" in result.output
    assert "- DL-0003: end_date is before start_date 2025-03-12" in result.output
    assert stored_needs(sandbox) == {} and needs_posts(sandbox) == 0


def test_csv_with_erp_column_names_and_metadata_columns(run_dag, sandbox, tmp_path):
    lines = [erp_line(number) for number in range(1, 11)]
    columns = [c for c in lines[0] if c not in ("plan_date", "notes")] + ["metadata.priority", "metadata.planner"]
    path = tmp_path / "erp.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for line in lines:
            notes = json.loads(line["notes"]) if line["notes"] else {}
            writer.writerow(
                {
                    **{c: line[c] for c in columns if c in line},
                    "metadata.priority": notes.get("priority"),
                    "metadata.planner": notes.get("planner"),
                }
            )
    result = run_dag("t_needs_erp_columns", input_path=str(path))
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["upsert"]["created"] == 10
    stored = stored_needs(sandbox)
    assert {code: values(record) for code, record in stored.items()} == {
        line["line_code"]: expected_from_erp(line) for line in lines
    }


def test_jsonl_with_a_column_map_and_duplicates_last_wins(run_dag, sandbox, tmp_path):
    def line(number, **overrides):
        record = need(number, **overrides)
        record["line_code"] = record.pop("code")
        record["product_code"] = record.pop("reference_code")
        return record

    records = [
        line(1, external_status="v1"),
        line(2),
        line(1, external_status="v2"),
        line(3, external_status="v1"),
        line(1, external_status="v3", quantity=Decimal("7.000")),
        line(3, external_status="v2"),
    ]
    result = run_dag("t_upsert_needs_default", input_path=write_jsonl(tmp_path / "dupes.jsonl", records))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert (summary["read"], summary["submitted"], summary["created"], summary["updated"]) == (6, 3, 3, 0)
    assert "2 code value(s) occur more than once in the input; the last occurrence of each is sent" in result.output
    assert "PN-00001 (x3), PN-00003 (x2)" in result.output
    stored = stored_needs(sandbox)
    assert set(stored) == {"PN-00001", "PN-00002", "PN-00003"}
    assert stored["PN-00001"]["external_status"] == "v3" and stored["PN-00001"]["quantity"] == Decimal("7.000")
    assert stored["PN-00003"]["external_status"] == "v2"
    assert values(stored["PN-00001"]) == as_sent(need(1, external_status="v3", quantity=Decimal("7.000")))


def test_skip_never_sends_a_version_that_a_later_invalid_duplicate_replaced(run_dag, sandbox, tmp_path):
    records = [need(1, external_status="stale"), need(2), need(1, external_status="X" * 40)]
    result = run_dag("t_upsert_needs_skip_invalid", input_path=write_jsonl(tmp_path / "dupes.jsonl", records))
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert (summary["submitted"], summary["invalid_count"]) == (1, 1)
    assert summary["invalid"] == ["PN-00001: external_status string should have at most 32 characters"]
    assert set(stored_needs(sandbox)) == {"PN-00002"}  # not the stale PN-00001 the source no longer says


def test_skip_never_sends_a_need_that_a_later_invalid_duplicate_replaced_in_a_list(run_dag, sandbox):
    """[X STALE, X invalid, Y] given as a list (an XCom): the second X replaces the first and is invalid."""
    records = [
        need(1, line_code="PN-00001", external_status="STALE", quantity="1.5"),
        need(1, line_code="PN-00001", quantity="many"),
        need(2, line_code="PN-00002", quantity="2"),
    ]
    for record in records:
        del record["code"]  # the scenario maps line_code -> code
    result = run_dag("t_upsert_needs_skip_invalid", needs=records)
    assert result.succeeded, result.output[-3000:]
    summary = result.xcoms["upsert"]
    assert (summary["read"], summary["submitted"], summary["invalid_count"]) == (3, 1, 1)
    assert "1 code value(s) occur more than once in the input" in result.output
    assert set(stored_needs(sandbox)) == {"PN-00002"}  # STALE never reached the API


def test_an_empty_input_sends_nothing_and_succeeds(run_dag, sandbox, tmp_path):
    header_only = write_csv(tmp_path / "empty.csv", [])
    for conf in ({"needs": []}, {"input_path": header_only}):
        result = run_dag("t_upsert_needs_default", **conf)
        assert result.succeeded, result.output[-3000:]
        summary = result.xcoms["upsert"]
        assert (summary["read"], summary["submitted"], summary["created"], summary["batches"]) == (0, 0, 0, 0)
    assert needs_posts(sandbox) == 0


def test_a_jsonl_line_that_is_not_an_object_is_named_by_position(run_dag, sandbox, tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(dumps(need(1)) + "\n[1, 2]\n" + dumps(need(3)) + "\n", encoding="utf-8")
    result = run_dag("t_upsert_needs_default", input_path=str(path))
    assert result.state == "failed"
    assert "- record #2: is not an object (got list)" in result.output
    assert needs_posts(sandbox) == 0


# --- exactness -----------------------------------------------------------------------------------------------------


def test_decimals_and_metadata_round_trip_through_upsert_and_export(run_dag, sandbox, tmp_path):
    metadata = {
        "département": "Frais — fruits & légumes",
        "target_price": Decimal("12.50"),
        "tiny": Decimal("0.000001"),
        "tinier": Decimal("1E-24"),
        "big": 123456789012345678901234567890,
        "nested": {"tags": ["🍎", "Äpfel", None, True], "weights": [Decimal("1.10"), Decimal("2.0")], "empty": {}},
    }
    records = [
        need(
            1,
            quantity=Decimal("12345678901234.000001"),
            metadata=metadata,
            start_date="2025-03-15",
            end_date="2025-03-15",
        ),
        need(2, quantity=Decimal("0.10"), start_date="2025-03-16", end_date="2025-03-17"),
        need(3, quantity=7, start_date="2025-03-17", end_date="2025-03-17", metadata={"ключ": "значение"}),
    ]
    source = tmp_path / "exact.jsonl"
    write_jsonl(source, records)
    assert "12345678901234.000001" in source.read_text(encoding="utf-8")
    upsert = run_dag("t_upsert_needs_default", input_path=str(source))
    assert upsert.succeeded, upsert.output[-3000:]

    out = tmp_path / "export.jsonl"
    export = run_dag("t_export_needs", output_path=str(out), from_date="2025-03-15", to_date="2025-03-17")
    assert export.succeeded, export.output[-3000:]
    assert export.xcoms["export"] == {
        "path": str(out),
        "count": 3,
        "from_date": "2025-03-15",
        "to_date": "2025-03-17",
        "status": None,
    }
    text = out.read_text(encoding="utf-8")
    # Digit for digit, trailing zeros included: the file holds the numbers as written, not as floats.
    for literal in ("12345678901234.000001", "12.50", "0.000001", "123456789012345678901234567890"):
        assert literal in text
    assert '"weights":[1.10,2.0]' in text and "0.10" in text
    exported = {record["code"]: record for record in map(loads, text.splitlines())}
    for record in records:
        got = exported[record["code"]]
        assert values(got) == as_sent(record)
        assert str(got["quantity"]) == str(record["quantity"])
    assert exported["PN-00001"]["metadata"] == metadata
    assert exported["PN-00003"]["metadata"] == {"ключ": "значение"}
    # Exactly what Consentio holds, record by record.
    assert exported == {code: r for code, r in stored_needs(sandbox).items() if code in exported}

    # The exported file is valid input again (read-only fields are accepted and not sent): nothing changes.
    again = run_dag("t_upsert_needs_default", input_path=str(out))
    assert again.succeeded, again.output[-3000:]
    assert (again.xcoms["upsert"]["created"], again.xcoms["upsert"]["updated"]) == (0, 3)
    reread = stored_needs(sandbox)
    assert {code: values(reread[code]) for code in exported} == {code: values(r) for code, r in exported.items()}
