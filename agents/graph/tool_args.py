"""The agent's tools' arguments, declared once: one pydantic model per tool.

Both the function-calling schema sent to the model (``toolspec.build_tools``) and the
validation of what the model sends back (``toolspec.validate_call``) come from these models.
They are strict: no extra keys, every field required (optional values are nullable, as
OpenAI's strict mode wants), integers must be JSON integers (2.0 is refused), strings must
be strings, and money (sizes and prices) is a ``Decimal`` parsed from the JSON text without
going through float. Numbers beyond ``MAX_NUMBER`` and non-finite ones are refused.

What depends on the agent (its symbols, its leverage bound, this tick's prices) comes with
the validation context ``ArgsContext``; validating without one is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from alpha_platform.common.money import to_decimal

# Bounds on what a model may send. Numbers: the money columns hold 20 integer digits and 12
# decimal places (alpha_platform/common/money.py); 1e15 is far inside them and far above any
# real size or price. The smallest positive amount is the columns' last decimal place.
MAX_NUMBER = 10**15
MIN_POSITIVE = Decimal("1e-12")
MAX_STRING_CHARS = 2000  # any string argument (a hold reason is then cut to MAX_REASON_CHARS)
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class ArgsContext:
    """What a tool call is checked against: the agent's symbols and leverage bound, and this
    tick's market price per symbol (opening needs one)."""

    symbols: Sequence[str]
    max_leverage: int
    prices: Mapping[str, Any] = field(default_factory=dict)


def _context(info: ValidationInfo) -> ArgsContext:
    ctx = (info.context or {}).get("tool") if isinstance(info.context, dict) else None
    if not isinstance(ctx, ArgsContext):
        raise PydanticCustomError("tool_context", "tool arguments are checked only against an agent's context")
    return ctx


def _json_number(value: Any) -> Any:
    """A JSON number as a Decimal: the parser gives Decimals for fractions and ints for
    integers; booleans, strings and anything else are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise PydanticCustomError("number_type", "not a number")
    return to_decimal(value)


def _not_below_storage(value: Decimal) -> Decimal:
    if value < MIN_POSITIVE:
        raise PydanticCustomError("below_storage", "must be at least {min} (the smallest amount stored)",
                                  {"min": f"{MIN_POSITIVE:g}"})
    return value


# Money: a positive finite Decimal within MAX_NUMBER. Its schema says the type and the maximum
# only: positivity is stated once in the system message rather than with exclusiveMinimum on
# every number (prompt tokens on every call); a server honouring strict mode then cannot
# produce one above the maximum.
Money = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(gt=0, le=MAX_NUMBER),
    AfterValidator(_not_below_storage),
    WithJsonSchema({"type": "number", "maximum": MAX_NUMBER}),
]
Text = Annotated[str, Field(max_length=MAX_STRING_CHARS)]
# Filled in per agent by toolspec.build_tools: the enum of its symbols, its leverage bound.
Symbol = Annotated[str, Field(max_length=MAX_STRING_CHARS)]
Leverage = Annotated[int, Field(ge=1)]
OrderType = Literal["market", "limit"]


class ToolArgs(BaseModel):
    """The arguments of one tool; the class docstring is the tool's description."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    tool: ClassVar[str]

    @field_validator("symbol", check_fields=False)
    @classmethod
    def _agent_symbol(cls, value: str, info: ValidationInfo) -> str:
        symbols = _context(info).symbols
        if value not in symbols:
            raise PydanticCustomError("unknown_symbol", "symbol {symbol!r} is not one of this agent's symbols: "
                                      "{symbols}", {"symbol": value[:64], "symbols": ", ".join(symbols)})
        return value

    @field_validator("leverage", check_fields=False)
    @classmethod
    def _agent_leverage(cls, value: int | None, info: ValidationInfo) -> int | None:
        top = _context(info).max_leverage
        if value is not None and value > top:
            raise PydanticCustomError("less_than_equal", "must be at most {le}", {"le": top})
        return value


class _Order(ToolArgs):
    """Rules a schema cannot say, for every order: exactly one size, a limit price exactly
    for limit orders."""

    symbol: Symbol
    quantity: Money | None
    usd_notional: Money | None

    def order_errors(self) -> list[str]:
        errors = []
        if (self.quantity is None) == (self.usd_notional is None):
            errors.append("give exactly one of quantity or usd_notional")
        order_type = getattr(self, "order_type", None) or "market"
        limit_price = getattr(self, "limit_price", None)
        if order_type == "limit" and limit_price is None:
            errors.append("a limit order needs limit_price")
        if order_type == "market" and limit_price is not None:
            errors.append("limit_price is only for order_type limit")
        return errors

    @staticmethod
    def refuse(errors: list[str]) -> None:
        if errors:
            raise PydanticCustomError("tool_rule", "{errors}", {"errors": "; ".join(errors)})


class _Open(_Order):
    leverage: Leverage | None
    stop_loss: Money | None
    take_profit: Money | None
    order_type: OrderType | None
    limit_price: Money | None
    long: ClassVar[bool]

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> _Open:
        errors = self.order_errors()
        market_price = _context(info).prices.get(self.symbol)
        if market_price is None:
            errors.append(f"no market data for {self.symbol} this tick; opening is not allowed")
        ref = self.limit_price or (Decimal(str(market_price)) if market_price is not None else None)
        if ref is not None:
            side, below, above = ("long", "below", "above") if self.long else ("short", "above", "below")
            stop, target = self.stop_loss, self.take_profit
            if stop is not None and (stop >= ref if self.long else stop <= ref):
                errors.append(f"stop_loss {stop} must be {below} the entry price {ref} for a {side}")
            if target is not None and (target <= ref if self.long else target >= ref):
                errors.append(f"take_profit {target} must be {above} the entry price {ref} for a {side}")
        self.refuse(errors)
        return self


class _Close(_Order):
    order_type: OrderType | None
    limit_price: Money | None

    @model_validator(mode="after")
    def _rules(self) -> _Close:
        self.refuse(self.order_errors())
        return self


class OpenLong(_Open):
    """Open or add to a long."""

    tool = "open_long"
    long = True


class OpenShort(_Open):
    """Open or add to a short."""

    tool = "open_short"
    long = False


class CloseLong(_Close):
    """Reduce a long; its full qty closes it."""

    tool = "close_long"


class CloseShort(_Close):
    """Reduce a short; its full qty closes it."""

    tool = "close_short"


class CancelOrder(ToolArgs):
    """Cancel an open order."""

    tool = "cancel_order"
    order_id: Annotated[int, Field(ge=1, le=MAX_NUMBER)]


class SetLeverage(ToolArgs):
    """Set a symbol's leverage."""

    tool = "set_leverage"
    symbol: Symbol
    leverage: Leverage


class Hold(ToolArgs):
    """Do nothing this tick."""

    tool = "hold"
    reason: Text

    @field_validator("reason")
    @classmethod
    def _cut(cls, value: str) -> str:
        return value[:MAX_REASON_CHARS]


class GetPositions(ToolArgs):
    """Current positions."""

    tool = "get_positions"


class GetBalance(ToolArgs):
    """Account balance."""

    tool = "get_balance"


class GetMarketData(ToolArgs):
    """Fresh market data."""

    tool = "get_market_data"
    symbol: Symbol


TOOL_MODELS: dict[str, type[ToolArgs]] = {m.tool: m for m in (
    OpenLong, OpenShort, CloseLong, CloseShort, CancelOrder, SetLeverage, Hold, GetPositions, GetBalance,
    GetMarketData)}
