"""The fake venue's public market data: exchange info (the filters), tickers, premium
index (mark and funding), klines and depth, all derived from the current marks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fakes.binance_server.spec import (
    INTERVAL_MS,
    SYMBOLS,
    ApiError,
    _fmt,
    _now_ms,
)


class MarketDataMixin:
    """Public endpoints; read the marks, change nothing."""

    # ------------------------------------------------------------------ market data
    def _exchange_info(self, params: dict[str, str]) -> dict[str, Any]:
        symbols = []
        for sym, spec in SYMBOLS.items():
            symbols.append({
                "symbol": sym, "pair": sym, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": spec["base"], "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": int(spec["price_precision"]),
                "quantityPrecision": int(spec["qty_precision"]),
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": spec["tick"], "maxPrice": "4529764",
                     "tickSize": spec["tick"]},
                    {"filterType": "LOT_SIZE", "minQty": spec["min_qty"], "maxQty": spec["max_qty"],
                     "stepSize": spec["step"]},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": spec["min_qty"],
                     "maxQty": spec["market_max_qty"], "stepSize": spec["step"]},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": spec["min_notional"]},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                     "multiplierDown": "0.9500", "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "permissionSets": ["GRID", "COPY"],
            })
        return {
            "timezone": "UTC", "serverTime": _now_ms(), "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)
        items = [self._one_24hr(s) for s in ([symbol] if symbol else SYMBOLS)]
        return items[0] if symbol else items

    def _one_24hr(self, symbol: str) -> dict[str, Any]:
        last, open_ = self.marks[symbol], self.open_24h[symbol]
        change = last - open_
        now = _now_ms()
        return {
            "symbol": symbol, "priceChange": self._px(symbol, change),
            "priceChangePercent": _fmt(change / open_ * 100, "0.001"),
            "weightedAvgPrice": self._px(symbol, (last + open_) / 2), "lastPrice": self._px(symbol, last),
            "lastQty": self._qty(symbol, Decimal(SYMBOLS[symbol]["min_qty"])),
            "openPrice": self._px(symbol, open_), "highPrice": self._px(symbol, max(last, open_) * Decimal("1.01")),
            "lowPrice": self._px(symbol, min(last, open_) * Decimal("0.99")), "volume": "123456.789",
            "quoteVolume": "9876543210.12", "openTime": now - 86_400_000, "closeTime": now,
            "firstId": 1, "lastId": 1000, "count": 1000,
        }

    def _ticker_price(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        return {"symbol": symbol, "price": self._px(symbol, self.marks[symbol]), "time": _now_ms()}

    def _book_ticker(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        tick = Decimal(SYMBOLS[symbol]["tick"])
        mark = self.marks[symbol]
        return {"symbol": symbol, "bidPrice": self._px(symbol, mark - tick), "bidQty": "5.000",
                "askPrice": self._px(symbol, mark + tick), "askQty": "4.000", "time": _now_ms(),
                "lastUpdateId": 1}

    def _premium_index(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)
        now = _now_ms()

        def one(s: str) -> dict[str, Any]:
            return {"symbol": s, "markPrice": _fmt(self.marks[s], "0.00000000"),
                    "indexPrice": _fmt(self.marks[s], "0.00000000"),
                    "estimatedSettlePrice": _fmt(self.marks[s], "0.00000000"),
                    "lastFundingRate": _fmt(self.funding_rate, "0.00000000"), "interestRate": "0.00010000",
                    "nextFundingTime": (now // 28_800_000 + 1) * 28_800_000, "time": now}

        return one(symbol) if symbol else [one(s) for s in SYMBOLS]

    def _klines(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        interval = params.get("interval", "1m")
        if interval not in INTERVAL_MS:
            raise ApiError(400, -1120, "Invalid interval.")
        step_ms = INTERVAL_MS[interval]
        limit = min(int(params.get("limit", "500")), 1500)
        tick = Decimal(SYMBOLS[symbol]["tick"])
        mark = self.marks[symbol]
        last_open = _now_ms() // step_ms * step_ms
        rows = []
        for i in range(limit):
            open_time = last_open - (limit - 1 - i) * step_ms
            wiggle = Decimal((i * 7) % 11 - 5)
            close = mark if i == limit - 1 else mark + wiggle * tick * 10
            open_ = close - tick * 3
            high, low = max(open_, close) + tick * 5, min(open_, close) - tick * 5
            rows.append([open_time, self._px(symbol, open_), self._px(symbol, high), self._px(symbol, low),
                         self._px(symbol, close), "12.345", open_time + step_ms - 1, "802000.10", 100,
                         "6.100", "396000.50", "0"])
        return rows

    def _depth(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        book = self._book_ticker({"symbol": symbol})
        return {"lastUpdateId": 1, "E": _now_ms(), "T": _now_ms(),
                "bids": [[book["bidPrice"], book["bidQty"]]], "asks": [[book["askPrice"], book["askQty"]]]}
