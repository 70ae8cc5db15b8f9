"""A paper-venue price source whose prices the test sets (a PriceSource)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from exchanges.adapters.base import Candle, Ticker


class FixedMarket:
    def __init__(self, prices: dict[str, str | Decimal]) -> None:
        self.prices = {k: Decimal(str(v)) for k, v in prices.items()}

    def set(self, symbol: str, price: str | Decimal) -> None:
        self.prices[symbol] = Decimal(str(price))

    def price(self, symbol: str, at: datetime | None = None) -> Decimal:
        return self.prices[symbol]

    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
        p = self.prices[symbol]
        return p, p

    def candles(self, symbol: str, timeframe: str = "1m", limit: int = 100, end: datetime | None = None) -> list[Candle]:
        p = self.prices[symbol]
        now = int(datetime.now(UTC).timestamp()) // 60 * 60
        return [Candle(timestamp=datetime.fromtimestamp(now - 60 * (limit - i), UTC), open=p, high=p, low=p, close=p,
                       volume=Decimal("1")) for i in range(limit)]

    def ticker(self, symbol: str, at: datetime | None = None, *, exchange: str = "paper", **kwargs) -> Ticker:
        p = self.prices[symbol]
        return Ticker(symbol=symbol, last=p, mark=p, bid=p, ask=p, change_24h_percent=Decimal("0"),
                      funding_rate=None, timestamp=datetime.now(UTC), exchange=exchange)
