"""The pre-trade risk policy's inputs and its answer (``risk.policy.check_pre_trade``):
``Limits`` (from the user's RiskProfile), an ``OrderIntent``, a ``Snapshot`` of what the
service read under the user's lock (with its ``PositionView`` legs), and the ``Verdict``.

Pure on purpose, like the policy: no Django, no ORM, no clock, no I/O. Each input checks
its own values when built (Decimal amounts, aware datetimes, known sides and types), so a
caller's bug raises instead of reaching a rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpha_platform.common.vocabulary import ORDER_SIDES as SIDES
from alpha_platform.common.vocabulary import ORDER_TYPES, POSITION_SIDES

__all__ = [
    "Limits", "OrderIntent", "PositionView", "Snapshot", "Verdict", "SIDES", "POSITION_SIDES", "ORDER_TYPES",
]


# -- validation: the contract is Decimal amounts and aware datetimes; a float or a naive
# datetime is a bug in the caller, and raising is the fail-closed answer to a bug.

def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _decimal(obj: Any, name: str, *, optional: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{type(obj).__name__}.{name} must be a Decimal, got {value!r}")
    if isinstance(value, int):
        _set(obj, name, Decimal(value))
    elif not value.is_finite():
        raise ValueError(f"{type(obj).__name__}.{name} must be finite, got {value!r}")


def _integer(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{type(obj).__name__}.{name} must be an int, got {value!r}")


def _choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise ValueError(f"{type(obj).__name__}.{name} must be one of {choices}, got {value!r}")
    _set(obj, name, str(value))  # a StrEnum member becomes its plain value


def _aware(obj: Any, name: str, *, optional: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{type(obj).__name__}.{name} must be a timezone-aware datetime")


def _views(obj: Any, name: str, *, optional: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    items = tuple(value)
    if not all(isinstance(p, PositionView) for p in items):
        raise TypeError(f"Snapshot.{name} must hold PositionView items")
    _set(obj, name, items)


# -- the inputs ------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    max_leverage: int
    max_position_notional_usd: Decimal
    max_position_percent: Decimal
    max_total_exposure_percent: Decimal
    max_exchange_exposure_percent: Decimal
    daily_loss_limit_percent: Decimal
    min_notional_usd: Decimal
    allowed_symbols: frozenset[str]
    max_open_positions: int
    max_orders_per_minute: int
    max_orders_per_hour: int
    loss_cooldown_seconds: int

    _DECIMALS = ("max_position_notional_usd", "max_position_percent", "max_total_exposure_percent",
                 "max_exchange_exposure_percent", "daily_loss_limit_percent", "min_notional_usd")
    _INTS = ("max_leverage", "max_open_positions", "max_orders_per_minute", "max_orders_per_hour",
             "loss_cooldown_seconds")

    def __post_init__(self) -> None:
        for name in self._DECIMALS:
            _decimal(self, name)
        for name in self._INTS:
            _integer(self, name)
        if isinstance(self.allowed_symbols, str):
            raise TypeError("Limits.allowed_symbols must be a collection of symbols, not one string")
        _set(self, "allowed_symbols", frozenset(str(s) for s in self.allowed_symbols))

    @classmethod
    def from_profile(cls, profile: Any) -> Limits:
        """Read the limits off anything with RiskProfile's attribute names (duck-typed)."""
        values: dict[str, Any] = {}
        for name in cls._DECIMALS:
            raw = getattr(profile, name)
            # str() first so a float from YAML becomes its short decimal form, not binary noise.
            values[name] = raw if isinstance(raw, Decimal) else Decimal(str(raw))
        for name in cls._INTS:
            values[name] = int(getattr(profile, name))
        values["allowed_symbols"] = frozenset(str(s) for s in (profile.allowed_symbols or ()))
        return cls(**values)


@dataclass(frozen=True)
class OrderIntent:
    account_id: int
    venue: str
    symbol: str
    side: str  # "BUY" | "SELL"
    position_side: str  # "LONG" | "SHORT"
    quantity: Decimal
    order_type: str  # "MARKET" | "LIMIT" | "STOP_MARKET" | "TAKE_PROFIT_MARKET"
    price: Decimal | None  # the limit price (LIMIT only)
    leverage: int
    reduce_only: bool = False

    def __post_init__(self) -> None:
        _integer(self, "account_id")
        _choice(self, "side", SIDES)
        _choice(self, "position_side", POSITION_SIDES)
        _choice(self, "order_type", ORDER_TYPES)
        _decimal(self, "quantity")
        _decimal(self, "price", optional=True)
        _integer(self, "leverage")
        _set(self, "reduce_only", bool(self.reduce_only))

    @property
    def is_opening(self) -> bool:
        """BUY+LONG or SELL+SHORT: opens or increases the leg named by position_side."""
        return (self.side == "BUY") == (self.position_side == "LONG")

    @property
    def is_reduce_shaped(self) -> bool:
        """Closing-shaped (SELL+LONG, BUY+SHORT) or explicitly reduce_only."""
        return self.reduce_only or not self.is_opening


@dataclass(frozen=True)
class PositionView:
    account_id: int
    venue: str
    symbol: str
    side: str  # "LONG" | "SHORT"
    size: Decimal  # > 0; a zero-size row is tolerated and counts as no position
    mark_price: Decimal

    def __post_init__(self) -> None:
        _integer(self, "account_id")
        _choice(self, "side", POSITION_SIDES)
        _decimal(self, "size")
        _decimal(self, "mark_price")
        if self.size < 0 or self.mark_price < 0:
            raise ValueError("PositionView.size and mark_price must not be negative")

    @property
    def notional(self) -> Decimal:
        return abs(self.size * self.mark_price)


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What the service read, under the user's lock. Keyword-only, and every field but
    ``reserved`` is required: a forgotten halt flag must not default to "not halted"."""

    now: datetime
    equity: Decimal | None  # all the user's accounts; None = a balance read failed
    positions: tuple[PositionView, ...] | None  # all accounts; None = a position read failed
    price: Decimal | None  # mark of the intent's symbol on its venue; None = unreadable
    reserved: tuple[PositionView, ...] = ()  # accepted by the gate, not filled yet
    day_start_equity: Decimal | None  # None = unknown: opening orders are refused
    realized_pnl_today: Decimal
    unrealized_pnl: Decimal
    orders_last_minute: int
    orders_last_hour: int
    last_losing_close_at: datetime | None
    venue_min_notional: Decimal
    venue_max_leverage: int
    user_halted: bool
    global_halt: bool
    # Parts of the exposure that could not be valued (no mark, no price of their own): a
    # description of each. Opening orders are refused while it is not empty.
    unvalued: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _set(self, "unvalued", tuple(str(u) for u in self.unvalued))
        _aware(self, "now")
        _aware(self, "last_losing_close_at", optional=True)
        for name in ("equity", "price", "day_start_equity"):
            _decimal(self, name, optional=True)
        for name in ("realized_pnl_today", "unrealized_pnl", "venue_min_notional"):
            _decimal(self, name)
        for name in ("orders_last_minute", "orders_last_hour", "venue_max_leverage"):
            _integer(self, name)
        _views(self, "positions", optional=True)
        _views(self, "reserved")
        _set(self, "user_halted", bool(self.user_halted))
        _set(self, "global_halt", bool(self.global_halt))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    trip_kill_switch: bool = False
    reduces_only: bool = False
