"""The paper tests' doubles: the testing config, a clock the test moves, a scripted price
path (keyframes, linear in between), and a paper trader on a MemoryPaperStore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from alpha_platform.common.config import load_config
from exchanges.adapters.base import (
    VenueSpec,
)
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader
from exchanges.adapters.resilience import AdapterRuntime

ROOT = Path(__file__).resolve().parents[3]
CONFIG = load_config(ROOT / "config" / "exchanges.yaml", environment="testing")
PAPER = CONFIG.venue_block("paper")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BTC, ETH = "BTC/USDT", "ETH/USDT"


# --------------------------------------------------------------------------- test doubles
class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class ScriptedMarket:
    """Prices from keyframes, linear in between, flat after the last one."""

    def __init__(self, clock: Clock, **prices: str) -> None:
        self.clock = clock
        self.points: dict[str, list[tuple[datetime, D]]] = {}
        for key, price in prices.items():
            self.points[f"{key}/USDT"] = [(clock.now, D(price))]

    def set(self, symbol: str, price: str, *, after: float = 0.0) -> None:
        """The price is ``price`` ``after`` seconds from now (the clock does not move)."""
        at = self.clock.now + timedelta(seconds=after)
        self.points[symbol].append((at, D(price)))

    @property
    def symbols(self) -> list[str]:
        return list(self.points)

    def price(self, symbol: str, at: datetime) -> D:
        points = self.points[symbol]
        if at <= points[0][0]:
            return points[0][1]
        for (t0, p0), (t1, p1) in zip(points, points[1:]):
            if t0 <= at <= t1:
                if t1 == t0:
                    return p1
                w = D(str((at - t0).total_seconds() / (t1 - t0).total_seconds()))
                return (p0 + (p1 - p0) * w).quantize(D("0.01"))
        return points[-1][1]

    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[D, D]:
        prices = [self.price(symbol, start), self.price(symbol, end)]
        prices += [p for t, p in self.points[symbol] if start < t < end]
        return min(prices), max(prices)


def make_trader(market, clock: Clock, store: MemoryPaperStore | None = None, *,
                account_ref: str = "acct-test", **extra) -> PaperTrader:
    spec = VenueSpec(venue="paper", config=PAPER, symbol_map=CONFIG.symbol_map("paper"),
                     account_ref=account_ref)
    runtime = AdapterRuntime(paper_store=store or MemoryPaperStore(),
                             extra={"now": clock, "market": market, **extra})
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


def wallet(trader: PaperTrader) -> D:
    return trader.get_balance().total_balance
