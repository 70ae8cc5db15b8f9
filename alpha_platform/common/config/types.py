"""The field types of the configuration models, each with the message it gives.

A type is ``Annotated[<python type>, BeforeValidator(...)]``: the validator checks the
value the way the file is written (YAML scalars: an integer is not a bool, a number is
not a string) and raises a ``PydanticCustomError`` whose message is the one
``check_config`` prints ("expected a positive integer, got 'fast'"). Money and fractions
of equity are ``Decimal`` (built from the written text, so 0.0002 stays exact).

Django-free: the exchange adapters import these models.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from alpha_platform.common.money import to_decimal

Problem = tuple[tuple[str | int, ...], str]  # (path below the node, message)

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*$")
IDENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
HTTP_PATTERN = re.compile(r"^https?://\S+$")
WS_PATTERN = re.compile(r"^wss?://\S+$")


# --------------------------------------------------------------------------- wording
def suggest(word: Any, candidates: Any) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("alpha_config", "{message}", {"message": message})


def problems(found: Sequence[Problem]) -> PydanticCustomError:
    """Several faults found by one cross-field rule, each at its own path below the node."""
    return PydanticCustomError("alpha_config_rule", "{message}",
                               {"message": "; ".join(m for _, m in found), "problems": list(found)})


# --------------------------------------------------------------------------- scalars
@dataclass(frozen=True)
class Scalar:
    """What a scalar must be; ``describe()`` is the noun phrase of the messages."""

    kind: str  # int | number | str | bool | date
    lo: float | None = None
    hi: float | None = None
    above: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    what: str | None = None

    def describe(self) -> str:
        if self.kind in ("int", "number"):
            noun, article = ("integer", "an") if self.kind == "int" else ("number", "a")
            if self.above == 0 or (self.lo == 1 and self.hi is None and self.kind == "int"):
                return f"a positive {noun}"
            if self.lo is not None and self.hi is not None:
                return f"{article} {noun} between {self.lo} and {self.hi}"
            if self.lo == 0:
                return f"a non-negative {noun}"
            return f"{article} {noun}" + (f" of at least {self.lo}" if self.lo is not None else "")
        if self.kind == "str":
            if self.choices:
                return "one of " + ", ".join(self.choices)
            return self.what or "a non-empty string"
        return {"bool": "true or false", "date": "an ISO date such as \"2025-11-18\""}[self.kind]

    def problem(self, value: Any) -> str | None:
        """None if ``value`` fits; else a note to append to the message ("" or a suggestion)."""
        if self.kind in ("int", "number"):
            ok_type = int if self.kind == "int" else (int, float)
            fits = (not isinstance(value, bool) and isinstance(value, ok_type) and value == value
                    and self._in_range(value))
            return None if fits else ""
        if self.kind == "bool":
            return None if isinstance(value, bool) else ""
        if self.kind == "date":
            if isinstance(value, datetime.date):
                return None
            try:
                datetime.datetime.fromisoformat(str(value))
            except ValueError:
                return ""
            return None
        if not isinstance(value, str) or not value.strip():
            return ""
        if self.choices and value not in self.choices:
            return suggest(value, self.choices)
        if self.pattern and not self.pattern.match(value):
            return ""
        return None

    def _in_range(self, value: float) -> bool:
        return not ((self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi)
                    or (self.above is not None and value <= self.above))

    def check(self, value: Any) -> Any:
        note = self.problem(value)
        if note is not None:
            raise fail(f"expected {self.describe()}, got {show(value)}{note}")
        return value

    def check_key(self, key: Any) -> Any:
        """The same rule for a key of a table (venue names, symbols)."""
        if not isinstance(key, str):
            raise fail(f"keys must be strings, got {show(key)} (quote it)")
        note = self.problem(key)
        if note is not None:
            raise fail(f"key {key!r} is not {self.describe()}{note}")
        return key


def _decimal(value: Any) -> Decimal:
    return to_decimal(value)


def Int(lo: int | None = None, hi: int | None = None) -> Any:  # noqa: N802 (a type factory)
    return Annotated[int, BeforeValidator(Scalar("int", lo, hi).check)]


def Num(lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> Any:  # noqa: N802
    """A plain number (seconds, volatility): a float."""
    spec = Scalar("number", lo, hi, above)
    return Annotated[float, BeforeValidator(lambda v: float(spec.check(v)))]


def Money(lo: float | None = None, hi: float | None = None, *, above: float | None = None) -> Any:  # noqa: N802
    """An amount, a rate or a fraction of equity: a Decimal made from the written number."""
    spec = Scalar("number", lo, hi, above)
    return Annotated[Decimal, BeforeValidator(lambda v: _decimal(spec.check(v)))]


def Str(*, choices: tuple[str, ...] | None = None, pattern: re.Pattern[str] | None = None,  # noqa: N802
        what: str | None = None) -> Any:
    return Annotated[str, BeforeValidator(Scalar("str", choices=choices, pattern=pattern, what=what).check)]


def Key(*, choices: tuple[str, ...] | None = None, pattern: re.Pattern[str] | None = None,  # noqa: N802
        what: str | None = None) -> Any:
    """The type of a table's keys."""
    spec = Scalar("str", choices=choices, pattern=pattern, what=what)
    return Annotated[str, BeforeValidator(spec.check_key)]


Bool = Annotated[bool, BeforeValidator(Scalar("bool").check)]
Date = Annotated[datetime.date | str, BeforeValidator(Scalar("date").check)]


def _unique_min(min_items: int) -> Callable[[list[Any]], list[Any]]:
    def check(items: list[Any]) -> list[Any]:
        found: list[Problem] = []
        if len(items) < min_items:
            found.append(((), f"expected at least {min_items} item(s), got none"))
        seen: list[Any] = []
        for i, item in enumerate(items):
            if item in seen:
                found.append(((i,), f"{show(item)} is listed twice"))
            seen.append(item)
        if found:
            raise problems(found)
        return items
    return check


def List(item: Any, *, min_items: int = 0) -> Any:  # noqa: N802
    """A list of ``item`` with no item twice."""
    return Annotated[list[item], AfterValidator(_unique_min(min_items))]


def Table(key: Any, value: Any, *, min_items: int = 0,  # noqa: N802
          rules: tuple[Callable[[dict[str, Any]], list[Problem]], ...] = ()) -> Any:
    """A mapping whose keys are data (venue names, symbols), each value of type ``value``."""
    def check(table: dict[str, Any]) -> dict[str, Any]:
        found: list[Problem] = []
        if len(table) < min_items:
            found.append(((), f"expected at least {min_items} entry, got none"))
        for rule in rules:
            found.extend(rule(table))
        if found:
            raise problems(found)
        return table
    return Annotated[dict[key, value], AfterValidator(check)]


SYMBOL_WHAT = "a symbol in BASE/QUOTE form such as 'BTC/USDT'"
Symbol = Str(pattern=SYMBOL_PATTERN, what=SYMBOL_WHAT)
SymbolKey = Key(pattern=SYMBOL_PATTERN, what=SYMBOL_WHAT)
Fraction = Money(0, 1)
Fee = Money(-1, 1)
PositiveInt = Int(1)
Leverage = Int(1, 125)
