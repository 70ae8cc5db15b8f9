"""Decimal helpers: money, prices and quantities are never floats. No Django imports."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, TypeVar, overload

# The columns: numeric(32, 12), i.e. 20 digits before the point and 12 after.
MAX_DIGITS = 32
DECIMAL_PLACES = 12
ZERO = Decimal("0")

# What a Decimal taken from outside (API, portal, admin, an agent's tool call) may be, so that
# it round-trips exactly on SQLite and PostgreSQL and what the platform computes from it fits
# the columns too:
#   * at most INPUT_MAX_SIGNIFICANT_DIGITS significant digits: SQLite keeps a NUMERIC value
#     that is not an integer as a REAL (a double), and Django reads a decimal back with 15
#     significant digits, so a 16th digit is silently changed there (PostgreSQL keeps it);
#   * at most INPUT_DECIMAL_PLACES digits after the point (the column's scale);
#   * at most INPUT_MAX_ABS in size: a product of two inputs (price x quantity = notional,
#     P&L, fees) is then at most 10^18, which still fits the column's 20 integer digits with
#     room to spare for sums of them.
INPUT_MAX_SIGNIFICANT_DIGITS = 15
INPUT_DECIMAL_PLACES = DECIMAL_PLACES
INPUT_MAX_ABS = Decimal(10) ** 9


class NotANumber(ValueError, InvalidOperation):
    """What ``to_decimal`` raises: a ValueError, and the InvalidOperation ``Decimal()`` raises,
    so a caller that caught either keeps catching it."""


_RAISE: Any = object()
_T = TypeVar("_T")


@overload
def to_decimal(value: Any, *, field: str = ...) -> Decimal: ...
@overload
def to_decimal(value: Any, *, field: str = ..., default: _T = ..., invalid: _T = ...,
               nonfinite: _T = ...) -> Decimal | _T: ...
def to_decimal(value: Any, *, field: str = "value", default: Any = _RAISE, invalid: Any = _RAISE,
               nonfinite: Any = _RAISE) -> Any:
    """The one parser of numbers into Decimal: never through binary floating point (a float goes
    by its shortest text, so 0.1 stays 0.1). Raises NotANumber (a ValueError) unless told what
    to give instead:

    - ``default``: for a missing value (None or the empty string);
    - ``invalid``: for a value that is not a number (text that does not parse, a bool), and,
      unless ``nonfinite`` says otherwise, for NaN and the infinities;
    - ``nonfinite``: for NaN and the infinities.
    """
    if value is None or (isinstance(value, str) and value == ""):
        if default is not _RAISE:
            return default
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        if invalid is not _RAISE:
            return invalid
        raise NotANumber(f"{field} must be a number")
    else:
        try:
            result = Decimal(str(value))
        except (InvalidOperation, ValueError):
            if invalid is not _RAISE:
                return invalid
            raise NotANumber(f"{field} must be a number (got {value!r})") from None
    if not result.is_finite():
        if nonfinite is not _RAISE:
            return nonfinite
        if invalid is not _RAISE:
            return invalid
        raise NotANumber(f"{field} must be a finite number")
    return result


def _trimmed(value: Decimal) -> tuple[int, int]:
    """(significant digits, decimal places) of a finite Decimal without trailing zeros
    ("1.500" -> (2, 1), "1E+3" -> (1, 0)). No arithmetic: no context limits apply."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    count = len(digits)
    while count > 1 and digits[count - 1] == 0:
        count -= 1
        exponent += 1
    if count == 1 and digits[0] == 0:
        return 0, 0
    return count, max(0, -exponent)


def decimal_input_error(value: Decimal, *, label: str = "This value") -> str | None:
    """Why ``value`` may not be stored as an input Decimal (see INPUT_*), as a sentence that
    names the limit; None when it may."""
    if not value.is_finite():
        return f"{label} must be a finite number."
    if value > INPUT_MAX_ABS:
        return f"{label} must be at most {INPUT_MAX_ABS:,}."
    if value < -INPUT_MAX_ABS:
        return f"{label} must be at least {-INPUT_MAX_ABS:,}."
    significant, places = _trimmed(value)
    if places > INPUT_DECIMAL_PLACES:
        return f"{label} must have at most {INPUT_DECIMAL_PLACES} decimal places."
    if significant > INPUT_MAX_SIGNIFICANT_DIGITS:
        return f"{label} must have at most {INPUT_MAX_SIGNIFICANT_DIGITS} significant digits."
    return None


def decimal_input(value: Any, *, field: str = "value", label: str | None = None) -> Decimal:
    """A number from outside as a Decimal that may be stored (see INPUT_*): parsed as
    ``to_decimal`` does, then bounded; ValueError names the limit. "-0" becomes 0, and
    trailing zeros beyond the column's places are dropped ("1.0000000000000" -> 1)."""
    result = to_decimal(value, field=field)
    error = decimal_input_error(result, label=label or field)
    if error:
        raise ValueError(error)
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -INPUT_DECIMAL_PLACES:
        result = result.quantize(Decimal(1).scaleb(-INPUT_DECIMAL_PLACES))  # exact: only zeros go
    return result.copy_abs() if result.is_zero() else result


def decimal_str(value: Decimal, places: int = DECIMAL_PLACES) -> str:
    """Any Decimal rounded to ``places`` as plain text without trailing zeros, whatever its
    size ("1E+25" -> "10000000000000000000000000"): the default context's 28 digits would
    make ``quantize`` raise InvalidOperation for values of 17 integer digits or more."""
    if not value.is_finite() or value.adjusted() > 4 * MAX_DIGITS:  # no column holds it: no 10^9-digit text
        return str(value)
    prec = max(value.adjusted(), 0) + places + 2
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=Context(prec=prec))
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0", "") else text


def quantize(value: Decimal, places: int = 8, *, down: bool = False) -> Decimal:
    exp = Decimal(1).scaleb(-places)
    return value.quantize(exp, rounding=ROUND_DOWN if down else ROUND_HALF_EVEN)


def dec_str(value: Decimal | None) -> str | None:
    """A Decimal as a JSON-safe string without exponent noise."""
    if value is None:
        return None
    normalized = value.normalize()
    return format(normalized, "f")
