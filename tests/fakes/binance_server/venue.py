"""The fake Binance venue itself: its state (marks, positions, orders, wallet, faults,
recorded requests), the server's lifecycle, the helpers tests script it with, and the route
table; each endpoint family lives in its own mixin beside this module."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakes.binance_server.account import AccountMixin
from tests.fakes.binance_server.auth import AuthMixin
from tests.fakes.binance_server.conditional import ConditionalOrdersMixin
from tests.fakes.binance_server.handler import _Handler
from tests.fakes.binance_server.market_data import MarketDataMixin
from tests.fakes.binance_server.orders import OrdersMixin
from tests.fakes.binance_server.spec import (
    D0,
    FAULTS,
    SYMBOLS,
    ApiError,
    Fault,
    PositionState,
    RecordedRequest,
    _fmt,
    _now_ms,
)


class FakeBinanceFutures(AuthMixin, MarketDataMixin, AccountMixin, OrdersMixin, ConditionalOrdersMixin):
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
