import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_consentio.models.jsonwire import JSONShapeError, compact_line, dumps, loads, split_array

json_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
)
json_objects = st.dictionaries(st.text(), json_values, max_size=5)


@given(objects=st.lists(json_objects, max_size=6), indent=st.sampled_from([None, 2]))
def test_split_yields_each_element_with_its_exact_source_bytes(objects, indent):
    body = json.dumps(objects, indent=indent, ensure_ascii=False).encode()
    _, elements = split_array(body)
    assert [loads(bytes(element)) for element in elements] == [loads(json.dumps(o)) for o in objects]
    for element in elements:
        assert bytes(element) in body
        line = compact_line(element)
        assert b"\n" not in line and loads(line) == loads(bytes(element))


def test_source_bytes_keep_number_formatting_digit_for_digit():
    _, [element] = split_array(b'[{"price": 12.50, "weight": 12.345678901234567891, "amount": 1E+2}]')
    assert bytes(element) == b'{"price": 12.50, "weight": 12.345678901234567891, "amount": 1E+2}'
    assert loads(bytes(element))["weight"] == Decimal("12.345678901234567891")


def test_an_envelope_object_is_accepted_when_named():
    body = b'{"purchase_needs": [{"code": "A"}, {"code": "B"}], "errors": []}'
    assert [bytes(e) for e in split_array(body, envelope="purchase_needs")[1]] == [b'{"code": "A"}', b'{"code": "B"}']
    with pytest.raises(JSONShapeError, match="without an 'orders' array"):
        split_array(body, envelope="orders")


def test_dumps_writes_decimals_exactly_and_round_trips():
    value = {"q": Decimal("12.50"), "m": {"target_price": Decimal("0.1000000000000000055511151231257827")}, "s": "ü"}
    assert dumps(value) == '{"q":12.50,"m":{"target_price":0.1000000000000000055511151231257827},"s":"ü"}'
    assert loads(dumps(value)) == value
    with pytest.raises(ValueError, match="not a valid JSON number"):
        dumps({"x": Decimal("NaN")})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": 1}', "Expected `array`, got `object`"),
        (b"", "Input data was truncated"),
        (b'[{"a": 1}, {"b": ', "Input data was truncated"),
        (b'[{"a": 1}] x', "trailing characters"),
        (b"<html><body>502</body></html>", "JSON is malformed: invalid character (byte 0)"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, message):
    with pytest.raises(JSONShapeError, match=re.escape(message)):
        split_array(body)


def test_empty_array_and_whitespace_are_fine():
    assert split_array(b" [ ] \n") == (b" [ ] \n", [])
