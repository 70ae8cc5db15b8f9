"""The paper venue's figures and roundings: fees, slippage, margin brackets, leverage
bounds, quantity step and price tick, read once from its config block. Django-free.

Margin brackets (Binance's "leverage brackets"): per symbol, notional ranges each with a
maximum leverage, a maintenance margin rate and a maintenance amount ``cum``; a position of
notional N in a bracket needs N x rate - cum of maintenance margin (``cum`` makes that
continuous across brackets). A symbol without brackets has one: no cap, the venue's
maximum leverage, ``maintenance_margin_rate`` and no amount."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from alpha_platform.common.money import to_decimal
from alpha_platform.common.vocabulary import OrderSide, OrderType

MONEY = Decimal("0.00000001")  # USDT amounts: 8 places
ENTRY = Decimal("0.00000001")  # average entry prices keep 8 places, not the tick
BPS = Decimal("10000")


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def _step(places: Any) -> Decimal:
    return Decimal(1).scaleb(-int(places))


@dataclass(frozen=True)
class Bracket:
    floor: Decimal  # notional from (inclusive)
    cap: Decimal | None  # to (exclusive); None: no cap
    max_leverage: int
    rate: Decimal  # maintenance margin rate
    amount: Decimal  # maintenance amount (cum)

    def maintenance(self, notional: Decimal) -> Decimal:
        return notional * self.rate - self.amount

    def holds(self, notional: Decimal) -> bool:
        return notional >= self.floor and (self.cap is None or notional < self.cap)


def _brackets(rows: Any) -> tuple[Bracket, ...]:
    brackets = []
    for row in rows or ():
        cap = row.get("notional_cap")
        brackets.append(Bracket(
            floor=to_decimal(row.get("notional_floor"), default=Decimal(0)),
            cap=to_decimal(cap) if cap is not None else None,
            max_leverage=int(row["max_leverage"]),
            rate=to_decimal(row["maintenance_margin_rate"]),
            amount=to_decimal(row.get("maintenance_amount"), default=Decimal(0)),
        ))
    return tuple(sorted(brackets, key=lambda b: b.floor))


# -- book depth and symbol filters ----------------------------------------------------------
@dataclass(frozen=True)
class Depth:
    """One side of a symbol's book: ``levels`` levels, the first at mark +/- slippage, each
    further one ``spacing_bps`` of the mark worse; each holds ``quantity`` (base asset) or
    ``notional`` (USDT at the first level's price). Both None: unlimited (one level)."""

    levels: int = 1
    spacing_bps: Decimal = Decimal(0)
    quantity: Decimal | None = None
    notional: Decimal | None = None


@dataclass(frozen=True)
class SymbolFilters:
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal


def _depth(row: Any) -> Depth:
    return Depth(levels=int(row.get("levels") or 1),
                 spacing_bps=to_decimal(row.get("spacing_bps"), default=Decimal(0)),
                 quantity=to_decimal(row.get("quantity"), default=None),
                 notional=to_decimal(row.get("notional"), default=None))


def _depth_and_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    """PaperRules' depth and filter fields from the ``parameters`` block."""
    found: dict[str, Any] = {
        "depth": {k: _depth(v) for k, v in (params.get("depth") or {}).items() if v},
        "symbol_filter_rows": {k: dict(v) for k, v in (params.get("symbol_filters") or {}).items() if v},
    }
    if params.get("default_depth"):
        found["default_depth"] = _depth(params["default_depth"])
    return found


@dataclass(frozen=True)
class PaperRules:
    """The venue's figures, from its config block (``PaperRules.from_venue_config``)."""

    venue: str = "paper"
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    slippage_bps: Decimal = Decimal("2")
    maintenance_margin_rate: Decimal = Decimal("0.005")
    default_leverage: int = 1
    max_leverage: int = 20
    per_symbol_max_leverage: Mapping[str, int] = field(default_factory=dict)
    margin_brackets: Mapping[str, tuple[Bracket, ...]] = field(default_factory=dict)
    quantity_step: Decimal = Decimal("0.000001")
    price_tick: Decimal = Decimal("0.01")
    min_notional: Decimal = Decimal("5")
    supported_types: frozenset[str] = frozenset(t.value for t in OrderType)
    time_in_force: frozenset[str] = frozenset({"GTC", "IOC"})
    sync_window_seconds: float = 60.0
    # Funding (``parameters.has_funding`` and ``parameters.funding``): every interval, at
    # whole multiples of it since the Unix epoch (00:00, 08:00, 16:00 UTC for 8 h), each
    # position pays notional x rate; rate = premium + clamp(interest - premium, +/-clamp),
    # capped at +/-cap (Binance's formula).
    has_funding: bool = False
    funding_interval_seconds: int = 8 * 3600
    funding_interest_rate: Decimal = Decimal("0.0001")
    funding_clamp: Decimal = Decimal("0.0005")
    funding_cap: Decimal = Decimal("0.0075")
    # book depth and symbol filters (``filters`` falls back to the figures above)
    depth: Mapping[str, Depth] = field(default_factory=dict)
    default_depth: Depth = Depth()
    symbol_filter_rows: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_venue_config(cls, config: Mapping[str, Any], *, venue: str = "paper") -> PaperRules:
        trading = config.get("trading") or {}
        params = config.get("parameters") or {}
        fees = trading.get("fees") or {}
        leverage = trading.get("leverage") or {}
        sizing = trading.get("position_sizing") or {}
        orders = trading.get("order_management") or {}
        supported = orders.get("supported_types") or [t.value for t in OrderType]
        tifs = orders.get("time_in_force") or ["GTC", "IOC"]
        return cls(
            venue=venue,
            maker_fee=to_decimal(fees.get("maker"), default=Decimal("0.0002")),
            taker_fee=to_decimal(fees.get("taker"), default=Decimal("0.0005")),
            slippage_bps=to_decimal(params.get("slippage_bps"), default=Decimal("2")),
            maintenance_margin_rate=to_decimal(params.get("maintenance_margin_rate"), default=Decimal("0.005")),
            default_leverage=int(leverage.get("default") or 1),
            max_leverage=int(leverage.get("maximum") or 20),
            per_symbol_max_leverage={k: int(v) for k, v in (leverage.get("per_symbol") or {}).items()},
            margin_brackets={k: _brackets(v) for k, v in (params.get("margin_tiers") or {}).items() if v},
            has_funding=bool(params.get("has_funding")),
            funding_interval_seconds=int(float((params.get("funding") or {}).get("interval_hours", 8)) * 3600),
            funding_interest_rate=to_decimal((params.get("funding") or {}).get("interest_rate"),
                                             default=Decimal("0.0001")),
            funding_clamp=to_decimal((params.get("funding") or {}).get("clamp"), default=Decimal("0.0005")),
            funding_cap=to_decimal((params.get("funding") or {}).get("cap"), default=Decimal("0.0075")),
            quantity_step=_step(sizing.get("quantity_precision", 6)),
            price_tick=_step(sizing.get("price_precision", 2)),
            min_notional=to_decimal(sizing.get("min_notional"), default=Decimal("5")),
            supported_types=frozenset(str(t).upper() for t in supported),
            time_in_force=frozenset(str(t).upper() for t in tifs),
            **_depth_and_filters(params),
        )

    def max_leverage_for(self, symbol: str, notional: Decimal | None = None) -> int:
        """The most leverage allowed on ``symbol``: the venue's, the symbol's, and, for a
        position of ``notional``, its bracket's."""
        most = int(self.per_symbol_max_leverage.get(symbol, self.max_leverage))
        if notional is not None:
            most = min(most, self.bracket(symbol, notional).max_leverage)
        return most

    def brackets(self, symbol: str) -> tuple[Bracket, ...]:
        found = self.margin_brackets.get(symbol)
        if found:
            return found
        return (Bracket(Decimal(0), None, self.max_leverage, self.maintenance_margin_rate, Decimal(0)),)

    def bracket(self, symbol: str, notional: Decimal) -> Bracket:
        notional = abs(notional)
        brackets = self.brackets(symbol)
        for bracket in brackets:
            if bracket.holds(notional):
                return bracket
        return brackets[-1] if notional >= brackets[-1].floor else brackets[0]

    def funding_rate(self, premium: Decimal) -> Decimal:
        """Binance's funding rate from an interval's premium index."""
        clamped = min(max(self.funding_interest_rate - premium, -self.funding_clamp), self.funding_clamp)
        return min(max(premium + clamped, -self.funding_cap), self.funding_cap)

    # -- roundings ------------------------------------------------------------------------
    def quantity(self, value: Decimal) -> Decimal:
        """Down to the quantity step."""
        step = self.quantity_step
        return ((Decimal(value) / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)

    def tick(self, value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        tick = self.price_tick
        return ((Decimal(value) / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)

    def slipped(self, price: Decimal, side: str) -> Decimal:
        """A taker's fill: worse than ``price`` by the slippage, rounded against the taker."""
        factor = self.slippage_bps / BPS
        if side == OrderSide.BUY:
            return self.tick(price * (1 + factor), ROUND_CEILING)
        return self.tick(price * (1 - factor), ROUND_FLOOR)

    # -- book depth and symbol filters ------------------------------------------------------
    def depth_for(self, symbol: str) -> Depth:
        return self.depth.get(symbol) or self.default_depth

    def filters(self, symbol: str) -> SymbolFilters:
        row = self.symbol_filter_rows.get(symbol) or {}
        return SymbolFilters(
            tick_size=to_decimal(row.get("tick_size"), default=self.price_tick),
            step_size=to_decimal(row.get("step_size"), default=self.quantity_step),
            min_notional=to_decimal(row.get("min_notional"), default=self.min_notional),
        )

    def symbol_tick(self, symbol: str, value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        tick = self.filters(symbol).tick_size
        return ((Decimal(value) / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)

    def symbol_quantity(self, symbol: str, value: Decimal) -> Decimal:
        """Down to the symbol's quantity step."""
        step = self.filters(symbol).step_size
        return ((Decimal(value) / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)
