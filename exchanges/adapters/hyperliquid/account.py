"""Hyperliquid's account state, leverage and market data."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from exchanges.adapters.base import (
    D0,
    Balance,
    Candle,
    MarginMode,
    Position,
    PositionSide,
    Ticker,
    ms_to_datetime,
    utcnow,
)
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrderError,
)
from exchanges.adapters.hyperliquid.wire import (
    INTERVALS_MS,
    _d,
    _plain,
)


class AccountAndMarketData:
    """Mixed into HyperliquidTrader: needs its ``_clients``, ``_call``, ``_read``, ``_signed``."""

    # ================================================================ account
    def _user_state(self) -> dict[str, Any]:
        info, _ = self._clients()

        def read() -> dict[str, Any]:
            state = self._call(info.user_state, self.account_address)
            if not isinstance(state, dict) or "marginSummary" not in state:
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed clearinghouseState", venue=self.spec.venue)
            return state

        return self._read(read)

    def get_balance(self) -> Balance:
        state = self._user_state()
        summary = state.get("marginSummary") or {}
        equity = _d(summary.get("accountValue")) or D0
        upnl = sum((_d((p.get("position") or {}).get("unrealizedPnl")) or D0
                    for p in state.get("assetPositions") or []), D0)
        return Balance(
            total_balance=equity - upnl, available_balance=_d(state.get("withdrawable")) or D0,
            margin_balance=equity, unrealized_pnl=upnl, currency="USDC",
            timestamp=ms_to_datetime(state.get("time")), exchange=self.spec.venue,
            margin_used=_d(summary.get("totalMarginUsed")) or D0,
            maintenance_margin=_d(state.get("crossMaintenanceMarginUsed")) or D0,
            can_trade=True, account_type="futures", raw_data=state)

    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        wanted = {self.normalize_symbol(s) for s in symbols} if symbols else None
        state = self._user_state()
        at = ms_to_datetime(state.get("time"))
        positions = []
        for row in state.get("assetPositions") or []:
            p = row.get("position") or {}
            coin, szi = p.get("coin"), _d(p.get("szi")) or D0
            if szi == 0 or (wanted is not None and coin not in wanted):
                continue
            size = abs(szi)
            value = _d(p.get("positionValue")) or D0
            leverage = p.get("leverage") or {}
            roe = _d(p.get("returnOnEquity"))
            positions.append(Position(
                symbol=self.denormalize_symbol(coin), side=PositionSide.LONG if szi > 0 else PositionSide.SHORT,
                size=size, entry_price=_d(p.get("entryPx")) or D0, mark_price=_plain(value / size),
                unrealized_pnl=_d(p.get("unrealizedPnl")) or D0,
                percentage_pnl=roe * 100 if roe is not None else D0,  # return on margin, in %
                leverage=_d(leverage.get("value")) or Decimal(1), margin=_d(p.get("marginUsed")) or D0,
                timestamp=at, exchange=self.spec.venue, position_id=f"{self.account_address}:{coin}",
                liquidation_price=_d(p.get("liquidationPx")),
                margin_type=str(leverage.get("type") or "cross"), raw_data=row))
        return positions

    def set_leverage(self, symbol: str, leverage: int) -> None:
        coin, _ = self._coin(symbol)
        rules = self.symbol_rules(symbol)
        if not 1 <= int(leverage) <= rules.max_leverage:
            raise InvalidOrderError(f"Leverage {leverage} for {symbol} is outside 1..{rules.max_leverage}",
                                    venue=self.spec.venue)
        self._update_leverage(coin, int(leverage), self._margin_mode.get(coin, self._default_mode))

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        coin, _ = self._coin(symbol)
        mode = MarginMode(mode)
        if mode == MarginMode.ISOLATED and self.cross_margin_only:
            raise InvalidOrderError(f"{self.spec.venue} is configured cross-margin only", venue=self.spec.venue)
        leverage = self._current_leverage(coin)
        self._update_leverage(coin, leverage, mode)
        self._margin_mode[coin] = mode

    def _current_leverage(self, coin: str) -> int:
        """The account's leverage on ``coin`` as the venue has it (activeAssetData)."""
        if coin in self._leverage_set:
            return self._leverage_set[coin][0]
        info, _ = self._clients()

        def read() -> int:
            answer = self._call(info.post, "/info", {"type": "activeAssetData", "user": self.account_address,
                                                     "coin": coin})
            try:
                return int(answer["leverage"]["value"])
            except (KeyError, TypeError, ValueError):
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed activeAssetData",
                                          venue=self.spec.venue) from None

        return self._read(read)

    def _update_leverage(self, coin: str, leverage: int, mode: MarginMode) -> None:
        """Sent only when it changes what this trader last applied; under a lock, so two
        threads opening at once send it once."""
        is_cross = mode == MarginMode.CROSS
        if self._leverage_set.get(coin) == (leverage, is_cross):
            return
        with self._settings_lock:
            if self._leverage_set.get(coin) != (leverage, is_cross):
                self._send_leverage(coin, leverage, is_cross)

    def _send_leverage(self, coin: str, leverage: int, is_cross: bool) -> None:
        self._ensure_signer()

        def send() -> None:
            response = self._signed(lambda ex: ex.update_leverage(leverage, coin, is_cross))
            if not isinstance(response, dict):
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed answer to updateLeverage",
                                          venue=self.spec.venue)
            if response.get("status") != "ok":
                raise self._venue_error(response.get("response"))

        self._guard.read(send, kind="orders")  # setting leverage twice is harmless
        self._leverage_set[coin] = (leverage, is_cross)

    # ================================================================ market data
    def _asset_ctx(self, coin: str) -> dict[str, Any]:
        info, _ = self._clients()

        def read() -> dict[str, Any]:
            answer = self._call(info.meta_and_asset_ctxs)
            try:
                universe, ctxs = answer[0]["universe"], answer[1]
                for meta, ctx in zip(universe, ctxs, strict=False):
                    if meta.get("name") == coin:
                        return ctx
            except (KeyError, TypeError, IndexError):
                pass
            raise ExchangeUnavailable(f"{self.spec.venue}: no asset context for {coin}", venue=self.spec.venue)

        return self._read(read)

    def get_market_price(self, symbol: str) -> Decimal:
        coin, _ = self._coin(symbol)
        ctx = self._asset_ctx(coin)
        return _d(ctx.get("markPx")) or _d(ctx.get("oraclePx")) or self._mid(coin)

    def get_ticker(self, symbol: str) -> Ticker:
        coin, _ = self._coin(symbol)
        mid = self._mid(coin)
        ctx = self._asset_ctx(coin)
        info, _ = self._clients()
        bid = ask = None
        try:
            book = self._read(lambda: self._call(info.l2_snapshot, coin))
            bids, asks = book["levels"]
            bid = _d(bids[0]["px"]) if bids else None
            ask = _d(asks[0]["px"]) if asks else None
        except (ExchangeError, KeyError, TypeError, ValueError, IndexError):
            pass  # the spread is a nicety; the ticker stands without it
        prev = _d(ctx.get("prevDayPx"))
        mark = _d(ctx.get("markPx"))
        change = ((mark or mid) - prev) / prev * 100 if prev else None
        return Ticker(symbol=symbol, last=mid, mark=mark, bid=bid, ask=ask,
                      change_24h_percent=change.quantize(Decimal("0.0001")) if change is not None else None,
                      funding_rate=_d(ctx.get("funding")), timestamp=utcnow(), exchange=self.spec.venue)

    def get_candles(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> list[Candle]:
        coin, _ = self._coin(symbol)
        step = INTERVALS_MS.get(timeframe)
        if step is None:
            raise InvalidOrderError(f"Timeframe {timeframe!r} is not offered by {self.spec.venue}",
                                    venue=self.spec.venue)
        info, _ = self._clients()
        end = int(time.time() * 1000)
        start = end - step * (limit + 1)

        def read() -> list[Candle]:
            rows = self._call(info.candles_snapshot, coin, timeframe, start, end)
            if not isinstance(rows, list):
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed candles", venue=self.spec.venue)
            try:
                return [Candle(timestamp=ms_to_datetime(r["t"]), open=_d(r["o"]), high=_d(r["h"]),
                               low=_d(r["l"]), close=_d(r["c"]), volume=_d(r["v"])) for r in rows]
            except (KeyError, TypeError):
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed candles", venue=self.spec.venue) from None

        candles = sorted(self._read(read), key=lambda c: c.timestamp)
        return candles[-limit:] if limit else candles
