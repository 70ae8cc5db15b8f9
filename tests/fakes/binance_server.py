"""A fake Binance USD-M futures REST server that ccxt's ``binanceusdm`` really talks to.

Stdlib only: a ``ThreadingHTTPServer`` on 127.0.0.1, port chosen by the OS. It serves the
endpoints the ccxt adapter uses (market data, account, orders, algo (conditional) orders,
leverage and margin type), checks API keys and HMAC signatures the way Binance does, keeps
a small one-way-mode book (orders, positions, wallet, fees), and lets tests script faults:

    with FakeBinanceFutures() as fake:
        fake.inject("POST /fapi/v1/order", "accept_then_drop")   # order placed, answer lost
        fake.inject("/fapi/v1/premiumIndex", "503", times=2)
        fake.set_mark_price("BTCUSDT", "66000")                     # triggers resting stops
        fake.count("POST", "/fapi/v1/order")                        # requests that reached it

Faults: ``timeout`` (sleep past the client timeout, request not processed), ``drop``
(connection closed, not processed), ``500`` / ``502`` / ``503``, ``429`` (with Retry-After),
``malformed_json`` (HTTP 200 with a truncated body), and the lost-answer faults, which DO
process the request: ``accept_then_drop``, ``accept_then_500`` (5xx after executing),
``accept_then_timeout`` (processed at once, answered after ``delay``), and ``accept_late``
(held for ``delay`` seconds, past the client's read timeout, THEN processed: the client sees
a timeout and its look-ups find nothing, yet the order exists afterwards, as a venue's
overloaded matching engine does).

Misbehaviour as real venues show it, beside the faults:

- ``visibility_delay`` (seconds, constructor or attribute): a new order is in the book at
  once (it fills, moves the position) but order queries (``GET /fapi/v1/order``,
  ``openOrders``, ``allOrders``, ``userTrades``) see it only after the delay, as Binance's
  query services lag its matching engine under load;
- ``set_liquidity(symbol, qty)``: what a taker can fill at the mark per order. A MARKET
  order fills that much and the rest EXPIRES (Binance: status EXPIRED, executedQty
  partial); a marketable LIMIT fills that much and rests PARTIALLY_FILLED (GTC) or expires
  (IOC). ``None`` (the default) is unlimited.

Simplifications (documented, deliberate): one-way mode only; last price == mark price;
market orders fill completely at the mark; a marketable LIMIT fills at the mark as taker;
resting LIMIT orders fill at their price (maker) when the mark crosses them; triggered
conditional orders become reduce-only MARKET orders; a client order id may be used once per
symbol for the server's lifetime (Binance rejects duplicates with -4116).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


class FakeBinanceFutures:
    """The fake venue. Thread-safe; every public helper takes the state lock."""

    def __init__(self, api_key: str = "fake-api-key", api_secret: str = "fake-api-secret", *,
                 wallet_balance: Decimal | str = "10000", taker_fee: Decimal | str = "0.0004",
                 maker_fee: Decimal | str = "0.0002", timeout_delay: float = 1.5,
                 funding_rate: Decimal | str = "0.00010000", visibility_delay: float = 0.0) -> None:
        self.api_key = api_key
        self.visibility_delay = visibility_delay
        self.liquidity: dict[str, Decimal | None] = {}
        self._visible_at: dict[int, float] = {}
        self.api_secret = api_secret
        self.timeout_delay = timeout_delay
        self.taker_fee = Decimal(str(taker_fee))
        self.maker_fee = Decimal(str(maker_fee))
        self.funding_rate = Decimal(str(funding_rate))
        self.wallet_balance = Decimal(str(wallet_balance))
        self.marks: dict[str, Decimal] = {s: Decimal(v["mark"]) for s, v in SYMBOLS.items()}
        self.open_24h: dict[str, Decimal] = {s: (m * Decimal("0.98")).quantize(Decimal(SYMBOLS[s]["tick"]))
                                             for s, m in self.marks.items()}
        self.leverage: dict[str, int] = {s: 20 for s in SYMBOLS}
        self.margin_type: dict[str, str] = {s: "CROSSED" for s in SYMBOLS}
        self.positions: dict[str, PositionState] = {s: PositionState() for s in SYMBOLS}
        self.orders: dict[int, dict[str, Any]] = {}
        self.algo_orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.fees_paid = D0
        self.realized_pnl = D0
        self._client_ids: set[tuple[str, str]] = set()
        self._next_order_id = 4_000_000_001
        self._next_algo_id = 1_000_001
        self._next_trade_id = 700_000_001
        self._lock = threading.RLock()
        # User-data stream hook (tests/fakes/binance_ws.py): listeners get ("order", order,
        # execution type, trade or None) and ("account", symbol), under the state lock.
        self._listeners: list[Any] = []
        self.listen_keys: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeBinanceFutures:
        fake = self

        class Handler(_Handler):
            app = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-binance",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeBinanceFutures:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test helpers
    def inject(self, pattern: str, fault: str, times: int | None = 1, *,
               delay: float | None = None, retry_after: int = 1) -> Fault:
        """Script a fault for requests matching ``pattern`` ("POST /fapi/v1/order",
        "/fapi/v1/premiumIndex", wildcards allowed). ``times=None`` means every time."""
        kind = str(fault)
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        item = Fault(pattern, kind, times, self.timeout_delay if delay is None else delay, retry_after)
        with self._lock:
            self.faults.append(item)
        return item

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and (path is None or r.path == path))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def subscribe(self, callback: Any) -> None:
        with self._lock:
            self._listeners.append(callback)

    def _emit(self, *event: Any) -> None:
        for callback in list(self._listeners):
            callback(*event)

    def set_mark_price(self, symbol: str, price: Decimal | str) -> None:
        """Move the mark (and last) price; resting limits and conditional orders that the
        move crosses are executed."""
        with self._lock:
            self.marks[symbol] = Decimal(str(price))
            self._trigger(symbol)

    def set_liquidity(self, symbol: str, quantity: Decimal | str | None) -> None:
        """What one taker order can fill at the mark (None: unlimited; otherwise > 0)."""
        if quantity is not None and Decimal(str(quantity)) <= 0:
            raise ValueError("liquidity must be positive (or None for unlimited)")
        with self._lock:
            self.liquidity[symbol] = None if quantity is None else Decimal(str(quantity))

    def visible(self, order: dict[str, Any]) -> bool:
        """Whether order queries see this order yet (``visibility_delay``)."""
        with self._lock:
            return time.time() >= self._visible_at.get(order.get("orderId", 0), 0.0)

    def position(self, symbol: str) -> PositionState:
        with self._lock:
            p = self.positions[symbol]
            return PositionState(p.amount, p.entry, p.updated)

    def order_by_client_id(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        with self._lock:
            for o in self.orders.values():
                if o["symbol"] == symbol and o["clientOrderId"] == client_order_id:
                    return dict(o)
            for o in self.algo_orders.values():
                if o["symbol"] == symbol and o["clientAlgoId"] == client_order_id:
                    return dict(o)
        return None

    def unrealized_pnl(self) -> Decimal:
        with self._lock:
            return sum((self._upnl(s) for s in self.positions), D0)

    # ------------------------------------------------------------------ request handling
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for item in self.faults:
                if not item.exhausted and item.matches(method, path):
                    item.hits += 1
                    return item
        return None

    def _record(self, method: str, path: str, params: dict[str, str], signed: bool,
                fault: str | None, status: int | None) -> None:
        clean = {k: v for k, v in params.items() if k != "signature"}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, clean, signed, fault, status))

    def _authenticate(self, headers: Any, raw_query: str, raw_body: str,
                      params: dict[str, str], key_only: bool = False) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise ApiError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.api_key):
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if key_only:  # USER_STREAM endpoints: the API key, no signature
            return
        # Binance signs totalParams: the query string followed by the body, minus signature.
        total = "&".join(part for part in (raw_query, raw_body) if part)
        pieces = [p for p in total.split("&") if p and not p.startswith("signature=")]
        sent = [p.split("=", 1)[1] for p in total.split("&") if p.startswith("signature=")]
        if len(sent) != 1:
            raise ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if "timestamp" not in params:
            raise ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self.api_secret.encode(), "&".join(pieces).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sent[0]):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        recv_window = int(params.get("recvWindow", "5000"))
        if recv_window > 60000:
            raise ApiError(400, -1130, "Data sent for parameter 'recvWindow' is not valid.")
        if abs(_now_ms() - int(params["timestamp"])) > recv_window:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def dispatch(self, method: str, path: str, params: dict[str, str]) -> Any:
        routes = {
            ("GET", "/fapi/v1/ping"): lambda p: {},
            ("GET", "/fapi/v1/time"): lambda p: {"serverTime": _now_ms()},
            ("GET", "/fapi/v1/exchangeInfo"): self._exchange_info,
            ("GET", "/fapi/v1/ticker/24hr"): self._ticker_24hr,
            ("GET", "/fapi/v1/ticker/price"): self._ticker_price,
            ("GET", "/fapi/v2/ticker/price"): self._ticker_price,
            ("GET", "/fapi/v1/ticker/bookTicker"): self._book_ticker,
            ("GET", "/fapi/v1/premiumIndex"): self._premium_index,
            ("GET", "/fapi/v1/klines"): self._klines,
            ("GET", "/fapi/v1/depth"): self._depth,
            ("GET", "/fapi/v3/account"): self._account,
            ("GET", "/fapi/v2/account"): self._account,
            ("GET", "/fapi/v3/balance"): self._balance,
            ("GET", "/fapi/v2/balance"): self._balance,
            ("GET", "/fapi/v3/positionRisk"): self._position_risk,
            ("GET", "/fapi/v2/positionRisk"): self._position_risk,
            ("GET", "/fapi/v1/leverageBracket"): self._leverage_bracket,
            ("GET", "/fapi/v1/positionSide/dual"): lambda p: {"dualSidePosition": False},
            ("POST", "/fapi/v1/order"): self._new_order,
            ("GET", "/fapi/v1/order"): self._query_order,
            ("DELETE", "/fapi/v1/order"): self._cancel_order,
            ("GET", "/fapi/v1/openOrders"): self._open_orders,
            ("GET", "/fapi/v1/allOrders"): self._all_orders,
            ("GET", "/fapi/v1/userTrades"): self._user_trades,
            ("POST", "/fapi/v1/algoOrder"): self._new_algo_order,
            ("GET", "/fapi/v1/algoOrder"): self._query_algo_order,
            ("DELETE", "/fapi/v1/algoOrder"): self._cancel_algo_order,
            ("GET", "/fapi/v1/openAlgoOrders"): self._open_algo_orders,
            ("POST", "/fapi/v1/leverage"): self._set_leverage,
            ("POST", "/fapi/v1/marginType"): self._set_margin_type,
            ("POST", "/fapi/v1/listenKey"): self._listen_key,
            ("PUT", "/fapi/v1/listenKey"): self._listen_key,
            ("DELETE", "/fapi/v1/listenKey"): self._listen_key,
        }
        handler = routes.get((method, path))
        if handler is None:
            raise ApiError(404, -1000, f"Unknown endpoint {method} {path}")
        with self._lock:
            return handler(params)

    def _listen_key(self, params: dict[str, str]) -> dict[str, Any]:
        # One key per API key, as Binance has it: POST returns the active key, PUT extends it.
        if not self.listen_keys:
            self.listen_keys.add(hashlib.sha256(f"{self.api_key}{time.time()}".encode()).hexdigest()[:60])
        return {"listenKey": next(iter(self.listen_keys))}

    # ------------------------------------------------------------------ helpers
    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if symbol is None:
            if required:
                raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        if symbol not in SYMBOLS:
            raise ApiError(400, -1121, "Invalid symbol.")
        return symbol

    def _dec(self, params: dict[str, str], name: str) -> Decimal | None:
        value = params.get(name)
        if value in (None, ""):
            return None
        try:
            return Decimal(value)
        except Exception:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None

    def _upnl(self, symbol: str) -> Decimal:
        p = self.positions[symbol]
        if p.amount == 0:
            return D0
        return ((self.marks[symbol] - p.entry) * p.amount).quantize(Decimal("0.00000001"))

    def _notional(self, symbol: str) -> Decimal:
        return self.positions[symbol].amount * self.marks[symbol]

    def _initial_margin(self, symbol: str) -> Decimal:
        return (abs(self._notional(symbol)) / self.leverage[symbol]).quantize(Decimal("0.00000001"))

    def _qty(self, symbol: str, value: Decimal) -> str:
        return _fmt(value, SYMBOLS[symbol]["step"])

    def _px(self, symbol: str, value: Decimal) -> str:
        return _fmt(value, SYMBOLS[symbol]["tick"])

    def _available(self) -> Decimal:
        equity = self.wallet_balance + sum((self._upnl(s) for s in SYMBOLS), D0)
        used = sum((self._initial_margin(s) for s in SYMBOLS), D0)
        return equity - used

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

    # ------------------------------------------------------------------ account
    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        upnl = sum((self._upnl(s) for s in SYMBOLS), D0)
        im = sum((self._initial_margin(s) for s in SYMBOLS), D0)
        mm = sum((abs(self._notional(s)) * MAINT_MARGIN_RATE for s in SYMBOLS), D0)
        available = self.wallet_balance + upnl - im
        q = "0.00000000"
        positions = []
        for s, p in self.positions.items():
            if p.amount == 0:
                continue
            positions.append({"symbol": s, "positionSide": "BOTH", "positionAmt": self._qty(s, p.amount),
                              "unrealizedProfit": _fmt(self._upnl(s), q), "isolatedMargin": "0",
                              "notional": _fmt(self._notional(s), q), "isolatedWallet": "0",
                              "initialMargin": _fmt(self._initial_margin(s), q),
                              "maintMargin": _fmt(abs(self._notional(s)) * MAINT_MARGIN_RATE, q),
                              "updateTime": p.updated})
        asset = {"asset": "USDT", "walletBalance": _fmt(self.wallet_balance, q),
                 "unrealizedProfit": _fmt(upnl, q), "marginBalance": _fmt(self.wallet_balance + upnl, q),
                 "maintMargin": _fmt(mm, q), "initialMargin": _fmt(im, q),
                 "positionInitialMargin": _fmt(im, q), "openOrderInitialMargin": "0.00000000",
                 "crossWalletBalance": _fmt(self.wallet_balance, q), "crossUnPnl": _fmt(upnl, q),
                 "availableBalance": _fmt(available, q), "maxWithdrawAmount": _fmt(available, q),
                 "updateTime": _now_ms()}
        return {"totalInitialMargin": _fmt(im, q), "totalMaintMargin": _fmt(mm, q),
                "totalWalletBalance": _fmt(self.wallet_balance, q),
                "totalUnrealizedProfit": _fmt(upnl, q), "totalMarginBalance": _fmt(self.wallet_balance + upnl, q),
                "totalPositionInitialMargin": _fmt(im, q), "totalOpenOrderInitialMargin": "0.00000000",
                "totalCrossWalletBalance": _fmt(self.wallet_balance, q), "totalCrossUnPnl": _fmt(upnl, q),
                "availableBalance": _fmt(available, q), "maxWithdrawAmount": _fmt(available, q),
                "assets": [asset], "positions": positions}

    def _balance(self, params: dict[str, str]) -> list[dict[str, Any]]:
        acc = self._account(params)
        a = acc["assets"][0]
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": _now_ms()}]

    def _position_risk(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        q = "0.00000000"
        out = []
        for s, p in self.positions.items():
            if (symbol and s != symbol) or p.amount == 0:
                continue  # v3 lists only symbols with a position
            lev = Decimal(self.leverage[s])
            mmr = MAINT_MARGIN_RATE
            if p.amount > 0:
                liq = p.entry * (1 - 1 / lev + mmr)
            else:
                liq = p.entry * (1 + 1 / lev - mmr)
            im = self._initial_margin(s)
            out.append({
                "symbol": s, "positionSide": "BOTH", "positionAmt": self._qty(s, p.amount),
                "entryPrice": _fmt(p.entry, "0.00000000"), "breakEvenPrice": _fmt(p.entry, "0.00000000"),
                "markPrice": _fmt(self.marks[s], q), "unRealizedProfit": _fmt(self._upnl(s), q),
                "liquidationPrice": _fmt(max(liq, D0), q),
                "isolatedMargin": "0" if self.margin_type[s] == "CROSSED" else _fmt(im, q),
                "notional": _fmt(self._notional(s), q), "marginAsset": "USDT",
                "isolatedWallet": "0" if self.margin_type[s] == "CROSSED" else _fmt(im, q),
                "initialMargin": _fmt(im, q), "maintMargin": _fmt(abs(self._notional(s)) * mmr, q),
                "positionInitialMargin": _fmt(im, q), "openOrderInitialMargin": "0", "adl": 1,
                "bidNotional": "0", "askNotional": "0", "updateTime": p.updated,
            })
        return out

    def _leverage_bracket(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params, required=False)

        def one(s: str) -> dict[str, Any]:
            return {"symbol": s, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": int(SYMBOLS[s]["max_leverage"]), "notionalCap": 50000,
                 "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
                {"bracket": 2, "initialLeverage": 50, "notionalCap": 600000, "notionalFloor": 50000,
                 "maintMarginRatio": 0.005, "cum": 50.0},
            ]}

        return [one(symbol)] if symbol else [one(s) for s in SYMBOLS]

    def _set_leverage(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        try:
            lev = int(params.get("leverage", ""))
        except ValueError:
            raise ApiError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.") from None
        if lev < 1 or lev > int(SYMBOLS[symbol]["max_leverage"]):
            raise ApiError(400, -4028, f"Leverage {lev} is not valid")
        self.leverage[symbol] = lev
        return {"leverage": lev, "maxNotionalValue": "50000", "symbol": symbol}

    def _set_margin_type(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        wanted = params.get("marginType", "").upper()
        if wanted not in ("ISOLATED", "CROSSED"):
            raise ApiError(400, -4044, "The balance type is not valid.")
        if self.margin_type[symbol] == wanted:
            raise ApiError(400, -4046, "No need to change margin type.")
        if self.positions[symbol].amount != 0:
            raise ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        self.margin_type[symbol] = wanted
        return {"code": 200, "msg": "success"}

    # ------------------------------------------------------------------ orders
    def _check_client_id(self, symbol: str, client_id: str) -> None:
        if len(client_id) > 36 or not all(c.isalnum() or c in ".:/_-" for c in client_id):
            raise ApiError(400, -4015, "Client order id is not valid.")
        if (symbol, client_id) in self._client_ids:
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")

    def _check_filters(self, symbol: str, qty: Decimal, price: Decimal | None, reduce_only: bool,
                       market: bool) -> None:
        spec = SYMBOLS[symbol]
        step, tick = Decimal(spec["step"]), Decimal(spec["tick"])
        if qty <= 0:
            raise ApiError(400, -4003, "Quantity less than or equal to zero.")
        if qty % step != 0:
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        if qty < Decimal(spec["min_qty"]):
            raise ApiError(400, -4004, "Quantity less than min quantity.")
        max_qty = Decimal(spec["market_max_qty"] if market else spec["max_qty"])
        if qty > max_qty:
            raise ApiError(400, -4005, "Quantity greater than max quantity.")
        if price is not None and price % tick != 0:
            raise ApiError(400, -4014, "Price not increased by tick size.")
        reference = price if price is not None else self.marks[symbol]
        if not reduce_only and qty * reference < Decimal(spec["min_notional"]):
            raise ApiError(400, -4164, f"Order's notional must be no smaller than {spec['min_notional']} "
                                       "(unless you choose reduce only).")

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        side = params.get("side", "").upper()
        otype = params.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if otype in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise ApiError(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if otype not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") not in ("BOTH",):
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        qty = self._dec(params, "quantity")
        if qty is None:
            raise ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        price = self._dec(params, "price")
        if otype == "LIMIT" and price is None:
            raise ApiError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_id = params.get("newClientOrderId") or f"fake-{self._next_order_id}"
        self._check_client_id(symbol, client_id)
        self._check_filters(symbol, qty, price if otype == "LIMIT" else None, reduce_only, otype == "MARKET")
        pos = self.positions[symbol].amount
        if reduce_only:
            reducing = (side == "SELL" and pos > 0) or (side == "BUY" and pos < 0)
            if not reducing:
                raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        else:
            signed = qty if side == "BUY" else -qty
            opening = max(abs(pos + signed) - abs(pos), D0)
            ref = price if otype == "LIMIT" else self.marks[symbol]
            needed = opening * ref / self.leverage[symbol] + qty * ref * self.taker_fee
            if opening > 0 and needed > self._available():
                raise ApiError(400, -2019, "Margin is insufficient.")
        now = _now_ms()
        order_id = self._next_order_id
        self._next_order_id += 1
        order = {
            "orderId": order_id, "symbol": symbol, "status": "NEW", "clientOrderId": client_id,
            "price": self._px(symbol, price) if price is not None else "0.00",
            "avgPrice": "0.00", "origQty": self._qty(symbol, qty), "executedQty": self._qty(symbol, D0),
            "cumQty": self._qty(symbol, D0), "cumQuote": "0.00000", "timeInForce": params.get("timeInForce", "GTC"),
            "type": otype, "reduceOnly": reduce_only, "closePosition": False, "side": side,
            "positionSide": "BOTH", "stopPrice": "0.00", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": otype, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": now, "updateTime": now,
        }
        self.orders[order_id] = order
        if self.visibility_delay:
            self._visible_at[order_id] = time.time() + self.visibility_delay
        self._client_ids.add((symbol, client_id))
        self._emit("order", dict(order), "NEW", None)
        mark = self.marks[symbol]
        if otype == "MARKET" or (side == "BUY" and price >= mark) or (side == "SELL" and price <= mark):
            available = self.liquidity.get(symbol)
            self._fill(order, mark, maker=False, limit=available)
            if order["status"] == "PARTIALLY_FILLED" and (otype == "MARKET" or order["timeInForce"] != "GTC"):
                order["status"] = "EXPIRED"  # the book ran out: the rest of a taker order expires
                self._emit("order", dict(order), "EXPIRED", None)
        return self._public_order(order, for_create=True)

    def _fill(self, order: dict[str, Any], price: Decimal, *, maker: bool, limit: Decimal | None = None) -> None:
        """Execute what is left of ``order`` at ``price`` (at most ``limit``)."""
        symbol, side = order["symbol"], order["side"]
        done = Decimal(order["executedQty"])
        qty = Decimal(order["origQty"]) - done
        if limit is not None:
            qty = min(qty, limit)
        pos = self.positions[symbol]
        if order["reduceOnly"]:
            qty = min(qty, abs(pos.amount))
        if qty <= 0:
            if order["reduceOnly"] or done == 0:
                order["status"] = "EXPIRED"
                order["updateTime"] = _now_ms()
                self._emit("order", dict(order), "EXPIRED", None)
            return
        signed = qty if side == "BUY" else -qty
        realized = D0
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            total = abs(pos.amount) + qty
            pos.entry = (pos.entry * abs(pos.amount) + price * qty) / total
            pos.amount += signed
        else:
            closed = min(abs(pos.amount), qty)
            direction = 1 if pos.amount > 0 else -1
            realized = (price - pos.entry) * closed * direction
            pos.amount += signed
            if pos.amount == 0:
                pos.entry = D0
            elif (pos.amount > 0) != (direction > 0):  # flipped: the rest opens at this price
                pos.entry = price
        pos.updated = _now_ms()
        fee = (qty * price * (self.maker_fee if maker else self.taker_fee)).quantize(Decimal("0.00000001"))
        self.wallet_balance += realized - fee
        self.fees_paid += fee
        self.realized_pnl += realized
        quote = qty * price
        executed = done + qty
        total_quote = Decimal(order["cumQuote"]) + quote
        order.update({"status": "FILLED" if executed == Decimal(order["origQty"]) else "PARTIALLY_FILLED",
                      "avgPrice": self._px(symbol, total_quote / executed),
                      "executedQty": self._qty(symbol, executed), "cumQty": self._qty(symbol, executed),
                      "cumQuote": _fmt(total_quote, "0.00000"), "updateTime": _now_ms()})
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        self.trades.append({
            "buyer": side == "BUY", "commission": _fmt(fee, "0.00000000"), "commissionAsset": "USDT",
            "id": trade_id, "maker": maker, "orderId": order["orderId"], "price": self._px(symbol, price),
            "qty": self._qty(symbol, qty), "quoteQty": _fmt(quote, "0.00000"),
            "realizedPnl": _fmt(realized, "0.00000000"), "side": side, "positionSide": "BOTH",
            "symbol": symbol, "time": _now_ms(),
        })
        self._emit("account", symbol)
        self._emit("order", dict(order), "TRADE", dict(self.trades[-1]))

    @staticmethod
    def _public_order(order: dict[str, Any], *, for_create: bool = False) -> dict[str, Any]:
        out = dict(order)
        if for_create:
            out.pop("time", None)  # the create answer carries updateTime only
        return out

    def _find_order(self, params: dict[str, str], *, query: bool = False) -> dict[str, Any]:
        symbol = self._symbol(params)
        if params.get("orderId"):
            order = self.orders.get(int(params["orderId"]))
            if order is not None and order["symbol"] == symbol and (not query or self.visible(order)):
                return order
        elif params.get("origClientOrderId"):
            for order in self.orders.values():
                if order["symbol"] == symbol and order["clientOrderId"] == params["origClientOrderId"] \
                        and (not query or self.visible(order)):
                    return order
        else:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        raise ApiError(400, -2013, "Order does not exist.")

    def _query_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._public_order(self._find_order(params, query=True))

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find_order(params)
        except ApiError as exc:
            if exc.code == -2013:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise ApiError(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        order["updateTime"] = _now_ms()
        self._emit("order", dict(order), "CANCELED", None)
        return self._public_order(order, for_create=True)

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        return [self._public_order(o) for o in self.orders.values()
                if o["status"] in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o["symbol"] == symbol)
                and self.visible(o)]

    def _all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        return [self._public_order(o) for o in self.orders.values() if o["symbol"] == symbol and self.visible(o)]

    def _user_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        order_id = params.get("orderId")
        return [dict(t) for t in self.trades if t["symbol"] == symbol
                and (order_id is None or str(t["orderId"]) == order_id)
                and self.visible(self.orders.get(t["orderId"], {}))]

    # ------------------------------------------------------------------ algo (conditional) orders
    def _new_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        if params.get("algoType", "").upper() != "CONDITIONAL":
            raise ApiError(400, -1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        side = params.get("side", "").upper()
        otype = params.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        qty = self._dec(params, "quantity")
        trigger = self._dec(params, "triggerPrice")
        if qty is None or trigger is None:
            raise ApiError(400, -1102, "Mandatory parameter 'quantity' or 'triggerPrice' was not sent.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_id = params.get("clientAlgoId") or f"fake-algo-{self._next_algo_id}"
        self._check_client_id(symbol, client_id)
        self._check_filters(symbol, qty, trigger, True, True)
        if self._would_trigger(side, otype, trigger, self.marks[symbol]):
            raise ApiError(400, -2021, "Order would immediately trigger.")
        now = _now_ms()
        algo_id = self._next_algo_id
        self._next_algo_id += 1
        order = {
            "algoId": algo_id, "clientAlgoId": client_id, "algoType": "CONDITIONAL", "orderType": otype,
            "symbol": symbol, "side": side, "positionSide": "BOTH", "timeInForce": "GTC",
            "quantity": self._qty(symbol, qty), "algoStatus": "NEW", "actualOrderId": "",
            "actualPrice": "0.00", "triggerPrice": self._px(symbol, trigger), "price": "0.00",
            "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": params.get("workingType", "CONTRACT_PRICE"), "priceMatch": "NONE",
            "closePosition": False, "priceProtect": False, "reduceOnly": reduce_only,
            "createTime": now, "updateTime": now, "triggerTime": 0, "goodTillDate": 0,
        }
        self.algo_orders[algo_id] = order
        self._client_ids.add((symbol, client_id))
        return dict(order)

    @staticmethod
    def _would_trigger(side: str, otype: str, trigger: Decimal, mark: Decimal) -> bool:
        if otype == "STOP_MARKET":
            return mark <= trigger if side == "SELL" else mark >= trigger
        return mark >= trigger if side == "SELL" else mark <= trigger

    def _find_algo(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("algoId"):
            order = self.algo_orders.get(int(params["algoId"]))
            if order is not None:
                return order
        elif params.get("clientAlgoId"):
            for order in self.algo_orders.values():
                if order["clientAlgoId"] == params["clientAlgoId"]:
                    return order
        else:
            raise ApiError(400, -1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        raise ApiError(400, -2013, "Order does not exist.")

    def _query_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        return dict(self._find_algo(params))

    def _cancel_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find_algo(params)
        except ApiError as exc:
            if exc.code == -2013:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if order["algoStatus"] != "NEW":
            raise ApiError(400, -2011, "Unknown order sent.")
        order["algoStatus"] = "CANCELED"
        order["updateTime"] = _now_ms()
        return {"algoId": order["algoId"], "clientAlgoId": order["clientAlgoId"], "code": "200", "msg": "success"}

    def _open_algo_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        return [dict(o) for o in self.algo_orders.values()
                if o["algoStatus"] == "NEW" and (symbol is None or o["symbol"] == symbol)]

    def _trigger(self, symbol: str) -> None:
        mark = self.marks[symbol]
        for algo in list(self.algo_orders.values()):
            if algo["symbol"] != symbol or algo["algoStatus"] != "NEW":
                continue
            if not self._would_trigger(algo["side"], algo["orderType"], Decimal(algo["triggerPrice"]), mark):
                continue
            now = _now_ms()
            order_id = self._next_order_id
            self._next_order_id += 1
            child = {
                "orderId": order_id, "symbol": symbol, "status": "NEW", "clientOrderId": algo["clientAlgoId"],
                "price": "0.00", "avgPrice": "0.00", "origQty": algo["quantity"], "executedQty": "0",
                "cumQty": "0", "cumQuote": "0", "timeInForce": "GTC", "type": "MARKET",
                "reduceOnly": algo["reduceOnly"], "closePosition": False, "side": algo["side"],
                "positionSide": "BOTH", "stopPrice": algo["triggerPrice"], "workingType": algo["workingType"],
                "priceProtect": False, "origType": algo["orderType"], "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": now, "updateTime": now,
            }
            self.orders[order_id] = child
            self._emit("order", dict(child), "NEW", None)
            self._fill(child, mark, maker=False)
            algo.update({"algoStatus": "FINISHED" if child["status"] == "FILLED" else "EXPIRED",
                         "actualOrderId": str(order_id), "actualPrice": child["avgPrice"],
                         "triggerTime": now, "updateTime": now})
        for order in list(self.orders.values()):
            if order["symbol"] != symbol or order["status"] not in ("NEW", "PARTIALLY_FILLED") \
                    or order["type"] != "LIMIT":
                continue
            price = Decimal(order["price"])
            if (order["side"] == "BUY" and mark <= price) or (order["side"] == "SELL" and mark >= price):
                self._fill(order, price, maker=True)


class _Handler(BaseHTTPRequestHandler):
    app: FakeBinanceFutures
    protocol_version = "HTTP/1.0"  # one request per connection: a dropped answer stays dropped
    server_version = "FakeBinance/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        app = self.app
        split = urlsplit(self.path)
        path, raw_query = split.path, split.query
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        signed = path not in PUBLIC_PATHS
        fault = app._take_fault(method, path)
        kind = fault.kind if fault else None

        if kind in ("timeout", "drop"):
            app._record(method, path, params, signed, kind, None)
            if kind == "timeout":
                time.sleep(fault.delay)
            self.close_connection = True
            return
        if kind in ("500", "502", "503"):
            app._record(method, path, params, signed, kind, int(kind))
            text = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}[kind]
            self._send(int(kind), f"<html><body><h1>{kind} {text}</h1></body></html>", "text/html")
            return
        if kind == "429":
            app._record(method, path, params, signed, kind, 429)
            body = json.dumps({"code": -1003, "msg": "Too many requests; current limit is 2400 requests "
                                                     "per minute. Please use the websocket for live "
                                                     "updates to avoid polling the API."})
            self._send(429, body, "application/json", {"Retry-After": str(fault.retry_after)})
            return
        if kind == "malformed_json":
            app._record(method, path, params, signed, kind, 200)
            self._send(200, '{"symbol":"BTCUSDT","markPrice":"650', "application/json")
            return

        status, payload = 200, None
        try:
            if signed:
                app._authenticate(self.headers, raw_query, raw_body, params,
                                  key_only=path == "/fapi/v1/listenKey")
            if kind == "accept_late":
                # Taken in (its timestamp checked on arrival), queued past the client's
                # timeout, then executed: nobody is left to read the answer.
                time.sleep(fault.delay)
            payload = app.dispatch(method, path, params)
        except ApiError as exc:
            status, payload = exc.status, {"code": exc.code, "msg": exc.msg}
        app._record(method, path, params, signed, kind, status)

        if kind in ("accept_then_drop", "accept_late"):
            self.close_connection = True
            return
        if kind == "accept_then_timeout":
            time.sleep(fault.delay)
            self.close_connection = True
            return
        if kind == "accept_then_500":
            self._send(500, "<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
            return
        self._send(status, json.dumps(payload), "application/json")

    def _send(self, status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
