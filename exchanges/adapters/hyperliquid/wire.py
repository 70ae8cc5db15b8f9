"""Hyperliquid's wire rules: cloids, prices, the signer's nonce clock, one order leg."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from hyperliquid.utils.signing import float_to_wire
from hyperliquid.utils.types import Cloid

from alpha_platform.common.money import to_decimal
from exchanges.adapters.base import (
    OrderSide,
    OrderType,
    PositionSide,
)
from exchanges.adapters.errors import (
    BadPrecision,
    ExchangeUnavailable,
)

PERP_MAX_DECIMALS = 6
PRICE_SIG_FIGS = 5
# A triggered stop executes as a market order bounded by this limit; wide on purpose
# (as the venue's own front end does), so a fast market does not leave a stop unfilled.
TRIGGER_SLIPPAGE = Decimal("0.10")
TIF = {"GTC": "Gtc", "IOC": "Ioc", "ALO": "Alo", "POST_ONLY": "Alo", "GTX": "Alo"}
INTERVALS_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000,
                "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
                "1M": 2_592_000_000}
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_LONG_HEX = re.compile(r"(0x)?[0-9a-fA-F]{64,}")


class _SignerNonces:
    """The venue refuses a nonce twice per signer, and the SDK's nonce is the time in ms:
    every action one signer signs in this process takes this lock and a fresh millisecond,
    whichever trader instance (and thread) sends it."""

    _registry: dict[str, _SignerNonces] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = 0

    @classmethod
    def of(cls, signer: str) -> _SignerNonces:
        with cls._registry_lock:
            found = cls._registry.get(signer)
            if found is None:
                found = cls._registry[signer] = cls()
            return found


class _KnownCloids:
    """Bounded memory of what this (long-lived) trader sent: only to show our client id,
    order type and position side on a venue listing sooner. Nothing depends on it: every
    result carries the cloid (``venue_client_order_id``) and the trading layer maps it."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[str, tuple[str, PositionSide, OrderType]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def remember(self, cloid: str, value: tuple[str, PositionSide, OrderType]) -> None:
        with self._lock:
            self._items[cloid] = value
            self._items.move_to_end(cloid)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, cloid: str) -> tuple[str, PositionSide, OrderType] | None:
        with self._lock:
            return self._items.get(cloid)


def cloid_for(client_order_id: str) -> str:
    """Our client order id -> the venue's 16-byte cloid (0x + 32 hex), always the same."""
    return "0x" + hashlib.sha256(client_order_id.encode()).digest()[:16].hex()


def round_price(price: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Hyperliquid's perp price rule: <= 5 significant figures and <= 6 - szDecimals
    decimals; an integer price is always valid."""
    if price <= 0:
        raise BadPrecision(f"Price {price} must be positive", venue="hyperliquid")
    exponent = min(0, max(price.adjusted() - (PRICE_SIG_FIGS - 1), -(PERP_MAX_DECIMALS - sz_decimals)))
    rounded = price.quantize(Decimal(1).scaleb(exponent), rounding=rounding)
    if rounded <= 0:
        raise BadPrecision(f"Price {price} rounds to zero", venue="hyperliquid")
    return rounded


def _d(value: Any) -> Decimal | None:
    try:
        return to_decimal(value, default=None)
    except InvalidOperation:
        raise ExchangeUnavailable(f"hyperliquid: not a number in the response: {str(value)[:40]!r}",
                                  venue="hyperliquid") from None


def _plain(value: Decimal) -> Decimal:
    """A computed Decimal without exponent notation (65000, not 6.500E+4)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _scrub(text: Any) -> str:
    """Venue text for our messages: no key- or signature-length hex, bounded length."""
    return _LONG_HEX.sub("0x[redacted]", str(text))[:300]


@dataclass(frozen=True)
class _Leg:
    """One order of a signed order action (an entry, or an attached stop/target)."""

    client_order_id: str
    cloid: str
    order_type: OrderType
    is_buy: bool
    quantity: Decimal
    limit_px: Decimal
    trigger_px: Decimal | None
    reduce_only: bool
    tif: str | None
    position_side: PositionSide

    @property
    def side(self) -> OrderSide:
        return OrderSide.BUY if self.is_buy else OrderSide.SELL

    def check_wire(self) -> None:
        """The SDK refuses (ValueError) a float that its 8-decimal wire form would round."""
        for value in (self.quantity, self.limit_px, self.trigger_px):
            if value is None:
                continue
            try:
                float_to_wire(float(value))
            except ValueError:
                raise BadPrecision(f"{value} cannot be sent exactly to hyperliquid", venue="hyperliquid") from None

    def sdk_request(self, coin: str) -> dict[str, Any]:
        if self.trigger_px is not None:
            tpsl = "sl" if self.order_type == OrderType.STOP_MARKET else "tp"
            order_type: dict[str, Any] = {"trigger": {"triggerPx": float(self.trigger_px),
                                                      "isMarket": True, "tpsl": tpsl}}
        else:
            order_type = {"limit": {"tif": self.tif}}
        return {"coin": coin, "is_buy": self.is_buy, "sz": float(self.quantity),
                "limit_px": float(self.limit_px), "order_type": order_type,
                "reduce_only": self.reduce_only, "cloid": Cloid(self.cloid)}
