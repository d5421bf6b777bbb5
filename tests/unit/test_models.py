from decimal import Decimal

import pytest

from airflow_provider_consentio.models import (
    ExternalReference,
    PurchaseNeed,
    RecordError,
    saved_was_created,
    validate_records,
)

GOOD = {
    "code": "PN-1",
    "reference_code": "PRD-1",
    "start_date": "2025-03-15",
    "end_date": "2025-03-15",
    "quantity": 50,
    "quantity_unit": "box",
    "external_status": "A",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"code": ""}, "code string should have at least 1 character"),
        ({"code": "x" * 257}, "code string should have at most 256 characters"),
        ({"reference_code": None}, "reference_code input should be a valid string"),
        ({"start_date": "15/03/2025"}, "start_date must be a date in YYYY-MM-DD form"),
        ({"end_date": "2025-03-14"}, "end_date is before start_date 2025-03-15"),
        ({"start_date": "2025-02-30"}, "start_date must be a date in YYYY-MM-DD form"),
        ({"quantity": -1}, "quantity input should be greater than or equal to 0"),
        ({"quantity": "lots"}, "quantity must be a number, got 'lots'"),
        ({"quantity": True}, "quantity must be a number"),
        ({"quantity": "NaN"}, "quantity must be a finite number"),
        (
            {"quantity_unit": "boxes"},
            "quantity_unit input should be 'box', 'pallet', 'kg', 'piece' or 'unknown', got 'boxes'",
        ),
        ({"external_status": "S" * 33}, "external_status string should have at most 32 characters"),
        ({"storage_location_code": "W" * 21}, "storage_location_code string should have at most 20 characters"),
        ({"tender_kind": "flash"}, "tender_kind input should be"),
        ({"metadata": ["a"]}, "metadata input should be a valid dictionary"),
        ({"quantiti": 5}, "quantiti is not a known field (did you mean quantity?)"),
    ],
)
def test_each_documented_rule_is_enforced_and_named(change, reason):
    valid, problems = validate_records(PurchaseNeed, [{**GOOD, **change}], "code")
    assert valid == []
    [problem] = problems
    assert reason in str(problem)


def test_unknown_and_read_only_fields_are_dropped_and_counted_a_misspelling_is_named():
    from airflow_provider_consentio.models.write_fields import DroppedFields

    exported = {**GOOD, "id": 7, "created_at": "2025-01-01T00:00:00Z", "updated_at": "x", "x_crm": {"a": 1}}
    dropped = DroppedFields()
    valid, problems = validate_records(
        PurchaseNeed, [exported, {**exported, "code": "PN-2"}, {**GOOD, "code": "PN-3", "extrnal_status": "o"}],
        "code", dropped=dropped,
    )  # fmt: skip
    assert [need.code for need in valid] == [GOOD["code"], "PN-2"] and "x_crm" not in valid[0].to_wire()
    assert [str(problem) for problem in problems] == [
        "PN-3: extrnal_status is not a known field (did you mean external_status?)"
    ]
    assert dropped.describe() == "unknown fields x_crm (2); read-only fields created_at (2), id (2), updated_at (2)"


def test_missing_fields_are_all_listed_and_the_record_named_by_position():
    _, [problem] = validate_records(PurchaseNeed, [{"quantity": 1}], "code", source="row")
    assert problem.key == "row #1"
    for field in ("code", "reference_code", "start_date", "end_date", "quantity_unit", "external_status"):
        assert f"{field} is required" in str(problem)


def test_valid_need_keeps_decimals_and_metadata_and_drops_read_only_fields():
    need = PurchaseNeed.model_validate(
        {**GOOD, "quantity": "12.50", "metadata": {"target_price": Decimal("12.50")}, "id": 9, "created_at": "x"}
    )
    wire = need.to_wire()
    assert wire["quantity"] == Decimal("12.50") and str(wire["quantity"]) == "12.50"
    assert wire["metadata"] == {"target_price": Decimal("12.50")}
    assert "id" not in wire and "created_at" not in wire and "tender_kind" not in wire
    assert PurchaseNeed.model_validate({**GOOD, "quantity": 0.1}).quantity == Decimal("0.1")


def test_external_reference_must_change_something():
    _, [problem] = validate_records(ExternalReference, [{"hash_id": "abc"}], "hash_id")
    assert str(problem) == "abc: sets nothing: give external_id, external_status or cancel=true"
    ok = ExternalReference.model_validate({"hash_id": "abc", "cancel": "true"})
    assert ok.to_wire() == {"hash_id": "abc", "external_id": None, "external_status": None, "cancel": True}


def test_record_errors_split_code_and_reason():
    assert RecordError.parse("PN-002: reference_code 'INVALID' not found") == RecordError(
        "PN-002", "reference_code 'INVALID' not found"
    )
    assert RecordError.parse("something broke: badly").key is None


def test_created_is_told_apart_from_updated_by_timestamps():
    assert saved_was_created({"created_at": "t1", "updated_at": "t1"})
    assert not saved_was_created({"created_at": "t1", "updated_at": "t2"})
    assert not saved_was_created({})


def test_a_rejection_is_attributed_to_the_longest_key_sent_that_it_starts_with():
    message = "PN 1: A: unknown unit"
    assert RecordError.parse(message).key is None  # the client does not know the keys: a key with a space is lost
    assert RecordError.parse(message, {"PN 1"}) == RecordError("PN 1", "A: unknown unit")
    assert RecordError.parse(message, {"PN 1", "PN 1: A"}) == RecordError("PN 1: A", "unknown unit")
    assert RecordError.parse("PN-2: too big", {"PN 1"}) == RecordError("PN-2", "too big")
