"""A ccxt venue's account (balance, positions, leverage, margin mode) and market data
(ticker, mark price, candles)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import ccxt

from exchanges.adapters.base import (
    D0,
    Balance,
    Candle,
    MarginMode,
    Position,
    Ticker,
    ms_to_datetime,
)
from exchanges.adapters.ccxt.wire import dec, nz
from exchanges.adapters.errors import ExchangeUnavailable, InvalidOrderError


class AccountAndMarketData:
    """Mixed into CcxtTrader: needs its ``_read``, ``_resolve``, ``_ensure_markets``,
    ``_balance``, ``_position``, ``symbol_rules`` and ``_exchange``."""

    def get_balance(self) -> Balance:
        self._ensure_markets()
        return self._read("fetch_balance", lambda ex: self._balance(ex.fetch_balance()))

    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        unified = [self._resolve(s)[1] for s in symbols] if symbols else None
        self._ensure_markets()
        return self._read("fetch_positions", lambda ex: [
            p for p in (self._position(raw) for raw in ex.fetch_positions(unified)) if p is not None])

    def set_leverage(self, symbol: str, leverage: int) -> None:
        venue_symbol, unified = self._resolve(symbol)
        maximum = self.symbol_rules(symbol).max_leverage
        if not 1 <= int(leverage) <= maximum:
            raise InvalidOrderError(f"Leverage {leverage} for {symbol} is outside 1..{maximum}",
                                    venue=self.spec.venue)
        self._read("set_leverage", lambda ex: ex.set_leverage(int(leverage), unified))
        self._leverage_set[venue_symbol] = int(leverage)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        venue_symbol, unified = self._resolve(symbol)
        mode = MarginMode(mode)

        def change(exchange: Any) -> None:
            try:
                exchange.set_margin_mode(mode.value, unified)
            except ccxt.MarginModeAlreadySet:
                return  # already so

        try:
            self._read("set_margin_mode", change)
        except InvalidOrderError as exc:
            if exc.code not in self.MARGIN_ALREADY_SET_CODES:
                raise
        self._margin_mode_set[venue_symbol] = mode

    # ------------------------------------------------------------------ market data
    def get_ticker(self, symbol: str) -> Ticker:
        _, unified = self._resolve(symbol)
        ticker = self._read("fetch_ticker", lambda ex: ex.fetch_ticker(unified))
        funding = self._read("fetch_funding_rate", lambda ex: ex.fetch_funding_rate(unified))
        bid, ask = nz(ticker.get("bid")), nz(ticker.get("ask"))
        if (bid is None or ask is None) and self.capabilities.get("book_ticker"):
            book = self._read("fetch_bids_asks", lambda ex: ex.fetch_bids_asks([unified]))
            entry = book.get(unified) or {}
            bid, ask = nz(entry.get("bid")), nz(entry.get("ask"))
        last = dec(ticker.get("last"))
        if last is None:
            raise ExchangeUnavailable(f"{self.spec.venue}: no last price for {symbol}", venue=self.spec.venue)
        return Ticker(
            symbol=symbol, last=last, mark=nz(funding.get("markPrice")), bid=bid, ask=ask,
            change_24h_percent=dec(ticker.get("percentage")), funding_rate=dec(funding.get("fundingRate")),
            timestamp=ms_to_datetime(ticker.get("timestamp")), exchange=self.spec.venue,
        )

    def get_market_price(self, symbol: str) -> Decimal:
        """The mark price: one light call (the funding-rate read carries it) instead of a full ticker."""
        _, unified = self._resolve(symbol)
        funding = self._read("fetch_funding_rate", lambda ex: ex.fetch_funding_rate(unified))
        mark = nz(funding.get("markPrice"))
        return mark if mark is not None else super().get_market_price(symbol)

    def get_candles(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> list[Candle]:
        _, unified = self._resolve(symbol)
        if timeframe not in (self._exchange.timeframes or {}):
            raise InvalidOrderError(f"{self.spec.venue} has no {timeframe!r} candles", venue=self.spec.venue)
        rows = self._read("fetch_ohlcv", lambda ex: ex.fetch_ohlcv(unified, timeframe, limit=int(limit)))
        return [Candle(timestamp=ms_to_datetime(row[0]), open=dec(row[1]), high=dec(row[2]), low=dec(row[3]),
                       close=dec(row[4]), volume=dec(row[5]) or D0) for row in rows]
