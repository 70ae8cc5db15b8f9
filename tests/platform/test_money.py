"""alpha_platform.common.money: what an input Decimal may be, and writing any Decimal out."""

from decimal import Decimal as D
from decimal import InvalidOperation

import pytest

from alpha_platform.common.money import (
    DECIMAL_PLACES,
    INPUT_DECIMAL_PLACES,
    INPUT_MAX_ABS,
    INPUT_MAX_SIGNIFICANT_DIGITS,
    MAX_DIGITS,
    ZERO,
    decimal_input,
    decimal_input_error,
    decimal_str,
    to_decimal,
)


def test_the_bound_fits_the_columns_and_their_products():
    assert INPUT_DECIMAL_PLACES <= DECIMAL_PLACES
    # SQLite keeps 15 significant digits of a REAL; Django reads a decimal back with 15.
    assert INPUT_MAX_SIGNIFICANT_DIGITS <= 15
    # A product of two inputs (a notional, a P&L) still fits numeric(32, 12), with room for sums.
    integer_digits = MAX_DIGITS - DECIMAL_PLACES
    assert INPUT_MAX_ABS * INPUT_MAX_ABS * 99 < D(10) ** integer_digits


@pytest.mark.parametrize("raw, expected", [
    ("1000000000", D("1000000000")),
    ("1E+9", D("1000000000")),
    ("-1000000000", D("-1000000000")),
    ("999999999.999999", D("999999999.999999")),
    ("123.456789012345", D("123.456789012345")),
    ("0.000000000001", D("0.000000000001")),
    ("1e-12", D("0.000000000001")),
    ("1.0000000000000000000", D("1")),  # trailing zeros past the places are not digits
    ("100000000.0000000000000", D("100000000")),
    ("-0", D("0")),
    ("-0.0e-30", D("0")),
    (" 5 ", D("5")),
    (7, D("7")),
    (0.5, D("0.5")),
    (D("2.50"), D("2.5")),
])
def test_accepted(raw, expected):
    value = decimal_input(raw)
    assert value == expected
    assert not value.is_signed() or expected < 0  # "-0" is 0
    assert -value.as_tuple().exponent <= DECIMAL_PLACES


@pytest.mark.parametrize("raw, limit", [
    ("29296706117289944", "at most 1,000,000,000"),
    ("1000000000.000000000001", "at most 1,000,000,000"),
    ("1000000001", "at most 1,000,000,000"),
    ("1e10", "at most 1,000,000,000"),
    ("1e400", "at most 1,000,000,000"),
    ("1e999999999999999999", "at most 1,000,000,000"),
    ("-1e400", "at least -1,000,000,000"),
    (1e308, "at most 1,000,000,000"),
    ("0.0000000000001", "at most 12 decimal places"),
    ("1e-13", "at most 12 decimal places"),
    ("1e-999999999999999999", "at most 12 decimal places"),
    ("123.4567890123456", "at most 12 decimal places"),
    ("12345.12345678912", "at most 15 significant digits"),
    ("1234567.123456789", "at most 15 significant digits"),
    (0.30000000000000004, "at most 12 decimal places"),
])
def test_refused_naming_the_limit(raw, limit):
    with pytest.raises(ValueError) as caught:
        decimal_input(raw, field="price", label="Price")
    assert str(caught.value).startswith("Price must")
    assert limit in str(caught.value)


@pytest.mark.parametrize("raw", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", float("nan"), float("inf"),
                                 "", "abc", "1e", "0x10", None, True, [1], {"a": 1}])
def test_not_a_finite_number(raw):
    with pytest.raises(ValueError, match="price must be a"):
        decimal_input(raw, field="price")


def test_the_error_helper_says_none_for_good_values():
    assert decimal_input_error(D("999999999.999999")) is None
    assert "finite" in decimal_input_error(D("NaN"))


@pytest.mark.parametrize("value, text", [
    (D("29296706117289944.000000000000"), "29296706117289944"),  # 29 digits: the default context's 28 failed
    (D("99999999999999999999.999999999999"), "99999999999999999999.999999999999"),
    (D("1E+25"), "10000000000000000000000000"),
    (D("0.100000000000"), "0.1"),
    (D("5E+1"), "50"),
    (D("-0E-12"), "0"),
    (D("-1.5"), "-1.5"),
    (D("0.0000000000004"), "0"),
    (D("0.0000000000006"), "0.000000000001"),
    (D("NaN"), "NaN"),
])
def test_decimal_str_writes_any_value(value, text):
    assert decimal_str(value) == text


# -- to_decimal: the one parser and its options ----------------------------------------

@pytest.mark.parametrize("value, expected", [
    (D("1.50"), D("1.50")), ("1.50", D("1.50")), (0.1, D("0.1")), (3, D(3)), (" 2 ", D(2)), ("1e3", D("1E+3")),
])
def test_to_decimal_parses_numbers_without_binary_noise(value, expected):
    result = to_decimal(value)
    assert result == expected and str(result) == str(expected)


@pytest.mark.parametrize("value", [None, "", "abc", True, False, "NaN", "-Infinity", D("NaN"), float("inf"), [1]])
def test_to_decimal_refuses_what_is_not_a_finite_number_as_both_error_kinds(value):
    with pytest.raises(ValueError, match="value must be"):
        to_decimal(value)
    with pytest.raises(InvalidOperation):  # what Decimal() raised, for callers that caught that
        to_decimal(value)


def test_to_decimal_names_the_field():
    with pytest.raises(ValueError, match="^price must be a number"):
        to_decimal("x", field="price")


def test_a_missing_value_gives_the_default():
    assert to_decimal(None, default=None) is None
    assert to_decimal("", default=ZERO) == 0
    assert to_decimal("7", default=None) == 7
    with pytest.raises(ValueError):
        to_decimal("abc", default=None)  # garbage is not missing
    with pytest.raises(ValueError):
        to_decimal("NaN", default=None)


def test_invalid_gives_its_value_for_garbage_and_non_finite_numbers():
    assert to_decimal("abc", invalid=None) is None
    assert to_decimal(True, invalid=ZERO) == 0
    assert to_decimal(None, invalid=ZERO) == 0  # no default: a missing value is not a number
    assert to_decimal("NaN", invalid=ZERO) == 0
    assert to_decimal("-Infinity", invalid=None) is None


def test_nonfinite_gives_its_value_for_nan_and_infinities_only():
    assert to_decimal("NaN", nonfinite=None) is None
    assert to_decimal(D("Infinity"), nonfinite=ZERO, invalid=None) == 0
    assert to_decimal("2", nonfinite=None) == 2
    with pytest.raises(ValueError):
        to_decimal("abc", nonfinite=None)
