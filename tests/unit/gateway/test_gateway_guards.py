"""Input guards: strict JSON parsing and validation errors that are safe to echo."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_gateway.guards import loads_strict, safe_errors

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_finite_json_reads_back_as_written(value: object) -> None:
    assert loads_strict(json.dumps(value)) == value


@pytest.mark.parametrize(
    "text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e309", '{"a": [1, -1e400]}']
)
def test_non_finite_numbers_are_malformed_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="finite"):
        loads_strict(text)


def test_validation_errors_describe_instead_of_echoing() -> None:
    errors = [
        {"type": "string_type", "loc": ("body", "reason"), "msg": "bad", "input": math.nan},
        {"type": "too_long", "loc": ("body", "reason"), "msg": "long", "input": "x" * 10_000},
        {"type": "x", "loc": ("body",), "msg": "m" * 5_000, "input": {"a": 1}, "ctx": {"e": 1e999}},
    ]
    safe = safe_errors(errors)
    rendered = json.dumps(safe, allow_nan=False)
    assert [item["input"] for item in safe] == [
        "<non-finite number>",
        "<text of 10000 characters>",
        "<object of 1 items>",
    ]
    assert len(rendered) < 1_000


def test_at_most_twenty_errors_are_returned() -> None:
    errors = [{"type": "x", "loc": ("body", index), "msg": "m"} for index in range(500)]
    assert len(safe_errors(errors)) == 20
