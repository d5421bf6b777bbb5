from decimal import Decimal

import pytest

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioValidationError
from airflow_provider_consentio.operators.base.inputs import load_records

REQUIRED = ("code", "quantity")


def test_csv_columns_are_mapped_blanks_dropped_and_metadata_gathered(tmp_path):
    path = tmp_path / "needs.csv"
    path.write_text(
        "PN_CODE,QTY,tender_kind,metadata,metadata.priority\n"
        'PN-1,12.50,,"{""target_price"": 12.50}",high\n'
        "PN-2,3,standard,,\n",
        encoding="utf-8",
    )
    records, source = load_records(
        input_path=str(path), column_map={"code": "PN_CODE", "quantity": "QTY"}, required_fields=REQUIRED
    )
    assert source == str(path)
    assert records == [
        {"code": "PN-1", "quantity": "12.50", "metadata": {"target_price": Decimal("12.50"), "priority": "high"}},
        {"code": "PN-2", "quantity": "3", "tender_kind": "standard"},
    ]


def test_csv_with_missing_columns_names_them(tmp_path):
    path = tmp_path / "needs.csv"
    path.write_text("code,qty\nPN-1,1\n", encoding="utf-8")
    with pytest.raises(ConsentioValidationError, match=r"missing required column\(s\) quantity \(found: code, qty\)"):
        load_records(input_path=str(path), required_fields=REQUIRED)


def test_csv_in_the_wrong_encoding_is_refused_with_the_line(tmp_path):
    path = tmp_path / "needs.csv"
    path.write_bytes("code,quantity\nPN-1,1\nBÄCKEREI,2\n".encode("latin-1"))
    with pytest.raises(ConsentioValidationError, match="not UTF-8 text"):
        load_records(input_path=str(path), required_fields=REQUIRED)


def test_csv_row_with_too_many_values_is_refused(tmp_path):
    path = tmp_path / "needs.csv"
    path.write_text("code,quantity\nPN-1,1,extra\n", encoding="utf-8")
    with pytest.raises(ConsentioValidationError, match="line 2: more values than the header"):
        load_records(input_path=str(path), required_fields=REQUIRED)


def test_jsonl_keeps_decimals_and_names_the_bad_line(tmp_path):
    path = tmp_path / "needs.jsonl"
    path.write_text('{"code": "PN-1", "quantity": 0.10}\n\n{"code": "PN-2", "quantity": \n', encoding="utf-8")
    with pytest.raises(ConsentioValidationError, match=r"needs.jsonl line 3: invalid JSON"):
        load_records(input_path=str(path))
    path.write_text('{"code": "PN-1", "quantity": 0.10}\n', encoding="utf-8")
    records, _ = load_records(input_path=str(path))
    assert records == [{"code": "PN-1", "quantity": Decimal("0.10")}]


def test_exactly_one_source_and_a_known_format():
    with pytest.raises(ConsentioConfigError, match="exactly one input"):
        load_records()
    with pytest.raises(ConsentioConfigError, match=r"got records, input_path"):
        load_records(records=[{"a": 1}], input_path="x.csv")
    with pytest.raises(ConsentioConfigError, match=r"use a \.jsonl, \.ndjson or \.csv file"):
        load_records(input_path="/tmp/needs.xlsx")
    with pytest.raises(ConsentioConfigError, match="sql needs sql_conn_id"):
        load_records(sql="select 1")
