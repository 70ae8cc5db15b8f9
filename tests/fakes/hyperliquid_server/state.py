"""What the fake Hyperliquid venue is made of: the assets (size decimals, leverage, marks),
the fault kinds, the refusal it raises, and its records (an order, an account)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

D0 = Decimal("0")
FAULTS = ("timeout", "http500", "http429", "malformed", "lost", "lost_500", "lost_timeout", "late")
DEFAULT_ASSETS: tuple[dict[str, Any], ...] = (
    {"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "mark": "65000", "prevDayPx": "64000",
     "funding": "0.0000125"},
    {"name": "ETH", "szDecimals": 4, "maxLeverage": 25, "mark": "3200", "prevDayPx": "3300",
     "funding": "0.00001"},
    {"name": "SOL", "szDecimals": 2, "maxLeverage": 20, "mark": "150", "prevDayPx": "150",
     "funding": "-0.000005"},
)
INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
               "1M": 2_592_000_000}


def fmt(value: Decimal) -> str:
    """Hyperliquid's float strings: plain notation, at least one decimal place."""
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def now_ms() -> int:
    return int(time.time() * 1000)


class VenueRefusal(Exception):
    """A per-order ``{"error": ...}`` status."""


@dataclass
class FakeOrder:
    oid: int | None  # None while a normalTpsl child waits for its parent's fill
    user: str
    coin: str
    asset: int
    is_buy: bool
    sz: Decimal  # remaining
    orig_sz: Decimal
    limit_px: Decimal
    reduce_only: bool
    tif: str | None  # Gtc | Ioc | Alo, None for triggers
    cloid: str | None
    trigger_px: Decimal | None = None
    tpsl: str | None = None  # "sl" | "tp"
    is_market: bool = False
    status: str = "open"
    status_ts: int = field(default_factory=now_ms)
    timestamp: int = field(default_factory=now_ms)
    parent: int | None = None  # parent oid of a normalTpsl child
    children: list[FakeOrder] = field(default_factory=list)
    visible_at: float = 0.0  # time.time() from which queries see it (visibility_delay)

    @property
    def is_trigger(self) -> bool:
        return self.trigger_px is not None

    @property
    def order_type(self) -> str:
        if not self.is_trigger:
            return "Limit"
        kind = "Stop" if self.tpsl == "sl" else "Take Profit"
        return f"{kind} {'Market' if self.is_market else 'Limit'}"

    @property
    def trigger_condition(self) -> str:
        if not self.is_trigger:
            return "N/A"
        above = (self.tpsl == "sl") == self.is_buy
        return f"Price {'above' if above else 'below'} {fmt(self.trigger_px)}"

    def wire(self) -> dict[str, Any]:
        """The frontendOpenOrders / orderStatus shape."""
        return {
            "coin": self.coin, "side": "B" if self.is_buy else "A", "limitPx": fmt(self.limit_px),
            "sz": fmt(self.sz), "oid": self.oid, "timestamp": self.timestamp,
            "triggerCondition": self.trigger_condition, "isTrigger": self.is_trigger,
            "triggerPx": fmt(self.trigger_px) if self.is_trigger else "0.0",
            "children": [c.wire() for c in self.children], "isPositionTpsl": False,
            "reduceOnly": self.reduce_only, "orderType": self.order_type,
            "origSz": fmt(self.orig_sz), "tif": self.tif, "cloid": self.cloid,
        }


@dataclass
class FakeAccount:
    address: str
    balance: Decimal = D0  # USDC: deposits + realized PnL - fees
    positions: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # coin -> szi, entry
    leverage: dict[str, tuple[int, bool]] = field(default_factory=dict)  # coin -> (value, cross)
    fills: list[dict[str, Any]] = field(default_factory=list)
