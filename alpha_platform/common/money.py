"""Decimal helpers: money, prices and quantities are never floats. No Django imports."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

MAX_DIGITS = 32
DECIMAL_PLACES = 12
ZERO = Decimal("0")


def to_decimal(value: Any, *, field: str = "value") -> Decimal:
    """Convert without passing through binary floating point; raise ValueError if not a number."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise ValueError(f"{field} must be a number")
    else:
        try:
            result = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ValueError(f"{field} must be a number (got {value!r})") from None
    if not result.is_finite():
        raise ValueError(f"{field} must be a finite number")
    return result


def quantize(value: Decimal, places: int = 8, *, down: bool = False) -> Decimal:
    exp = Decimal(1).scaleb(-places)
    return value.quantize(exp, rounding=ROUND_DOWN if down else ROUND_HALF_EVEN)


def dec_str(value: Decimal | None) -> str | None:
    """A Decimal as a JSON-safe string without exponent noise."""
    if value is None:
        return None
    normalized = value.normalize()
    return format(normalized, "f")
