"""One quantity parser: Kubernetes' syntax, ASCII digits only, bounded input and bounded echo."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami_core.errors import BackendError
from hami_core.errors import ConfigError
from hami_core.errors import QuantityError
from hami_core.errors import echo
from hami_core.quantity import MAX_LENGTH
from hami_core.quantity import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("2", Fraction(2), id="plain"),
        pytest.param(3, Fraction(3), id="json-number"),
        pytest.param(1.5, Fraction(3, 2), id="json-float"),
        pytest.param("500m", Fraction(1, 2), id="milli"),
        pytest.param("250u", Fraction(1, 4000), id="micro"),
        pytest.param("3n", Fraction(3, 10**9), id="nano"),
        pytest.param("16Gi", Fraction(16 * 2**30), id="binary-suffix"),
        pytest.param("1.5k", Fraction(1500), id="decimal-suffix"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("1E", Fraction(10**18), id="exa"),
        pytest.param("-.5", Fraction(-1, 2), id="negative-fraction"),
        pytest.param("+4", Fraction(4), id="plus"),
        pytest.param("1.", Fraction(1), id="trailing-dot"),
    ],
)
def test_quantities_parse_like_kubernetes(text: object, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("1 Gi", id="space"),
        pytest.param(" 1", id="leading-space"),
        pytest.param("1\n", id="trailing-newline"),
        pytest.param("1GB", id="unknown-suffix"),
        pytest.param("1e99999", id="huge-exponent"),
        pytest.param("\u0661\u0662", id="arabic-indic-digits"),
        pytest.param("\uff12", id="full-width-digit"),
        pytest.param("\u0968Gi", id="devanagari-digit"),
        pytest.param(True, id="boolean"),
        pytest.param(None, id="null"),
        pytest.param({"a": 1}, id="object"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param("1" * (MAX_LENGTH + 1), id="too-long"),
    ],
)
def test_non_quantities_are_refused(text: object) -> None:
    with pytest.raises(QuantityError, match="is not a quantity"):
        parse_quantity(text)


def test_a_bad_quantity_is_a_bad_request_to_a_backend_and_a_bad_value_in_a_config() -> None:
    with pytest.raises(BackendError):
        parse_quantity("x")
    with pytest.raises(ConfigError):
        parse_quantity("x")


def test_a_megabyte_of_input_is_quoted_only_as_a_short_prefix() -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity("9" * 1_000_000)
    assert len(str(caught.value)) < 150
    assert "characters) is not a quantity" in str(caught.value)


@pytest.mark.parametrize("value", ["short", 12, "x" * 10_000, ["a"] * 10_000])
def test_echo_is_bounded(value: object) -> None:
    assert len(echo(value)) < 110


@given(st.text(max_size=80))
def test_any_text_is_a_number_or_a_quantity_error(text: str) -> None:
    try:
        parse_quantity(text)
    except QuantityError as err:
        message = str(err)
    else:
        message = ""
        assert text.isascii()
    assert len(message) < 150
