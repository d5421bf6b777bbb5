import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_consentio.jsonwire import JSONStreamError, compact_line, dumps, iter_array_objects, loads

json_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
)
json_objects = st.dictionaries(st.text(), json_values, max_size=5)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(cut, len(text)) for cut in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@given(
    objects=st.lists(json_objects, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=400)),
    indent=st.sampled_from([None, 2]),
)
def test_every_chunking_yields_each_element_with_its_exact_source_text(objects, cuts, indent):
    text = json.dumps(objects, indent=indent, ensure_ascii=False)
    elements = list(iter_array_objects(chunked(text, cuts)))
    assert [value for _, value in elements] == [loads(json.dumps(o)) for o in objects]
    for source, _ in elements:
        assert source in text
        assert loads(compact_line(source)) == loads(source)
        assert "\n" not in compact_line(source)


def test_source_text_keeps_number_formatting_digit_for_digit():
    text = '[{"price": 12.50, "weight": 12.345678901234567891, "amount": 1E+2}]'
    [(source, value)] = iter_array_objects([text])
    assert source == '{"price": 12.50, "weight": 12.345678901234567891, "amount": 1E+2}'
    assert value["weight"] == Decimal("12.345678901234567891")


def test_dumps_writes_decimals_exactly_and_round_trips():
    value = {"q": Decimal("12.50"), "m": {"target_price": Decimal("0.1000000000000000055511151231257827")}, "s": "ü"}
    assert dumps(value) == '{"q":12.50,"m":{"target_price":0.1000000000000000055511151231257827},"s":"ü"}'
    assert loads(dumps(value)) == value
    with pytest.raises(ValueError, match="not a valid JSON number"):
        dumps({"x": Decimal("NaN")})


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (['{"a": 1}'], "expected the start of a JSON array"),
        (["", "  "], "expected the start of a JSON array, found the end of the body"),
        (['[{"a": 1}, {"b": '], "element #2 is truncated or malformed"),
        (['[{"a": 1}', " {"], "expected ',' or ']' after element #1"),
        (['[{"a": 1}] x'], "unexpected data after the end of the array"),
        (["[1, 2]"], "element #1 is not a JSON object"),
        (["<html><body>502</body></html>"], "expected the start of a JSON array, found '<html>"),
    ],
)
def test_malformed_bodies_say_what_is_wrong_and_where(chunks, message):
    with pytest.raises(JSONStreamError, match="at character") as excinfo:
        list(iter_array_objects(chunks))
    assert message in str(excinfo.value)


def test_empty_array_and_whitespace_are_fine():
    assert list(iter_array_objects([" [ ", " ] \n"])) == []
