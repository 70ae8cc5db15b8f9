"""What the fake Binance venue is made of: the symbols as Binance publishes them, the
public paths, the fault kinds, the error it answers with, and its records (a scripted fault,
a request that reached it, a one-way position)."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from decimal import Decimal

D0 = Decimal("0")
SYMBOLS: dict[str, dict[str, str]] = {
    # Figures as Binance publishes them for these perpetuals.
    "BTCUSDT": {"base": "BTC", "tick": "0.10", "step": "0.001", "min_qty": "0.001",
                "max_qty": "1000", "market_max_qty": "120", "min_notional": "100",
                "price_precision": "2", "qty_precision": "3", "mark": "65000.00",
                "max_leverage": "125"},
    "ETHUSDT": {"base": "ETH", "tick": "0.01", "step": "0.001", "min_qty": "0.001",
                "max_qty": "10000", "market_max_qty": "2000", "min_notional": "20",
                "price_precision": "2", "qty_precision": "3", "mark": "3200.00",
                "max_leverage": "100"},
    "SOLUSDT": {"base": "SOL", "tick": "0.0100", "step": "1", "min_qty": "1",
                "max_qty": "1000000", "market_max_qty": "5000", "min_notional": "5",
                "price_precision": "4", "qty_precision": "0", "mark": "150.0000",
                "max_leverage": "75"},
}
PUBLIC_PATHS = {
    "/fapi/v1/ping", "/fapi/v1/time", "/fapi/v1/exchangeInfo", "/fapi/v1/ticker/24hr",
    "/fapi/v1/ticker/price", "/fapi/v2/ticker/price", "/fapi/v1/ticker/bookTicker",
    "/fapi/v1/premiumIndex", "/fapi/v1/klines", "/fapi/v1/depth",
}
MAINT_MARGIN_RATE = Decimal("0.004")
INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
               "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
               "1w": 604_800_000, "1M": 2_592_000_000}
FAULTS = {"timeout", "drop", "500", "502", "503", "429", "malformed_json",
          "accept_then_drop", "accept_then_500", "accept_then_timeout", "accept_late"}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fmt(value: Decimal, quantum: str | Decimal) -> str:
    return format(Decimal(value).quantize(Decimal(quantum)), "f")


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class Fault:
    pattern: str
    kind: str
    times: int | None  # None: every time
    delay: float
    retry_after: int
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if " " in self.pattern:
            return fnmatch.fnmatchcase(f"{method} {path}", self.pattern)
        return fnmatch.fnmatchcase(path, self.pattern)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]  # without the signature
    signed: bool
    fault: str | None
    status: int | None
    at: float = field(default_factory=time.time)


@dataclass
class PositionState:
    amount: Decimal = D0  # signed, one-way mode
    entry: Decimal = D0
    updated: int = 0
