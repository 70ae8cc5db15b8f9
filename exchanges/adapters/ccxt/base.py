"""A ccxt futures adapter that reads ccxt's unified structures.

What a venue answers is read through ccxt's unified order, trade, position, balance,
ticker and market structures (``status``, ``filled``, ``average``, ``fee``,
``clientOrderId``, ``contracts``, ``side``, ``entryPrice``...). A venue class (see
``binanceusdm.py``) adds only what is truly its own: the API's URL layout, ccxt options,
client id rules, codes, how its conditional orders live apart, and the few fields ccxt
does not unify (a wallet balance, a trade's realized PnL). Which optional behaviours a
venue has are capabilities (data, overridable from config), not branches.

Long-lived: a trader is pooled per account (``exchanges.services``), so the markets,
leverage and margin mode it has applied are reused, and one trader is used by several
threads. ccxt's Exchange objects are not thread-safe (the last response, throttling state,
options it writes while calling), so each call leases a ccxt instance of its own from a
small per-trader free list; the markets they read are one shared, immutable load.

Every call goes through ``resilience.Guard``: reads are retried with backoff, an order is
sent once and, when its answer is lost, looked up by client order id.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import ccxt

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    D0,
    Balance,
    BaseTrader,
    Candle,
    FillInfo,
    MarginMode,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Ticker,
    VenueSpec,
    ms_to_datetime,
    utcnow,
)
from exchanges.adapters.ccxt.errors import map_error, wire_state
from exchanges.adapters.ccxt.markets import MarketsMixin
from exchanges.adapters.ccxt.unified import UnifiedReads
from exchanges.adapters.ccxt.wire import _exchange_class, _wire_logger, dec, nz
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrderError,
    OperationalError,
    OrderNotFound,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
T = TypeVar("T")


class CcxtTrader(MarketsMixin, UnifiedReads, BaseTrader):
    """Generic over ccxt ids; subclasses set the venue's specifics."""

    DEFAULT_CCXT_ID = ""
    API_URL_PATHS: ClassVar[dict[str, str]] = {}  # ccxt API section -> path under the base URL
    EXCEPTION_URL_SECTIONS: ClassVar[dict[str, str]] = {}  # path prefix -> ccxt exceptions market type
    CCXT_OPTIONS: ClassVar[dict[str, Any]] = {"defaultType": "swap"}
    CREDENTIAL_FIELDS: ClassVar[dict[str, str]] = {"apiKey": "api_key", "secret": "api_secret"}
    CLIENT_ID_PARAM = "clientOrderId"  # ccxt's unified create_order param
    CLIENT_ID_MAX = 36
    CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")
    QUOTE = "USDT"
    CAPABILITIES: ClassVar[dict[str, Any]] = {
        "conditional_endpoint": False,  # stops live in a separate book (trigger=True to reach it)
        "book_ticker": True,             # bid/ask through fetch_bids_asks when the ticker lacks them
        "fetch_fills": True,             # fees and fills of a filled order
    }
    # Codes where our hierarchy is finer than ccxt's class for them; everything else is ccxt's.
    ERROR_REFINEMENTS: ClassVar[dict[str, type[ExchangeError]]] = {}
    MARGIN_ALREADY_SET_CODES: ClassVar[frozenset[str]] = frozenset()
    DUPLICATE_CLIENT_ID_CODES: ClassVar[frozenset[str]] = frozenset()

    CONDITIONAL_MEMORY = 10_000

    def __init__(self, *, spec: VenueSpec, credentials: Credentials, runtime: AdapterRuntime | None = None) -> None:
        runtime = runtime or AdapterRuntime()
        super().__init__(spec=spec, credentials=credentials, runtime=runtime)
        cfg = spec.config
        self.ccxt_id = str(cfg.get("ccxt_id") or self.DEFAULT_CCXT_ID)
        if not self.ccxt_id:
            raise OperationalError(f"{spec.venue}: no ccxt_id configured", venue=spec.venue)
        rest = (cfg.get("network") or {}).get("rest_api") or {}
        base = rest.get("testnet" if spec.testnet else "production")
        if not base:
            raise OperationalError(f"{spec.venue}: no REST URL configured for "
                                   f"{'testnet' if spec.testnet else 'production'}", venue=spec.venue)
        self.base_url = str(base).rstrip("/")
        trading = cfg.get("trading") or {}
        self._leverage_cfg = trading.get("leverage") or {}
        self._margin_mode_cfg = MarginMode(str(trading.get("margin_mode") or "cross").lower())
        self._hedged = bool((cfg.get("parameters") or {}).get("dual_side_position"))
        self._markets_ttl = float(cfg.get("markets_ttl_seconds") or self.MARKETS_TTL)
        self._guard = Guard(runtime, venue=spec.venue, account_ref=spec.account_ref, venue_config=dict(cfg))
        self._timeout_ms = int(rest.get("timeout") or 10000)
        self._ccxt_extra = dict(cfg.get("ccxt_options") or {})
        self._markets_key = (self.ccxt_id, self.base_url)
        # Leased ccxt instances: one per concurrent call, reused afterwards.
        self._lease_lock = threading.Lock()
        self._idle: list[Any] = []
        self._built: list[Any] = []
        self._exchange = self._new_exchange()  # the first instance; also what tests inspect
        self._idle.append(self._exchange)
        # What this trader has applied at the venue (shared by its threads).
        self._settings_lock = threading.Lock()
        self._leverage_set: dict[str, int] = {}
        self._margin_mode_set: dict[str, MarginMode] = {}
        self._conditional_ids: set[str] = set()

    # ------------------------------------------------------------------ construction
    def _new_exchange(self) -> Any:
        settings: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": self._timeout_ms,
            "options": json.loads(json.dumps(self.CCXT_OPTIONS)),
        }
        for ccxt_field, our_field in self.CREDENTIAL_FIELDS.items():
            value = self.credentials.reveal(our_field)
            if value:
                settings[ccxt_field] = value
        for key, value in self._ccxt_extra.items():  # e.g. rateLimit, or options for a venue
            if key == "options":
                settings["options"].update(value)
            elif key not in self.CREDENTIAL_FIELDS:
                settings[key] = value
        exchange = _exchange_class(self.ccxt_id)(settings)
        if self.API_URL_PATHS:
            exchange.urls = {**exchange.urls, "api": self._api_urls(self.base_url)}
        exchange.alpha_exception_urls = {self.base_url + prefix: market_type
                                         for prefix, market_type in self.EXCEPTION_URL_SECTIONS.items()}
        exchange.logger = _wire_logger
        exchange.verbose = False
        exchange.alpha_markets = None
        with self._lease_lock:
            self._built.append(exchange)
        return exchange

    def _api_urls(self, base: str) -> dict[str, str]:
        return {name: base + path for name, path in self.API_URL_PATHS.items()}

    @contextmanager
    def _lease(self) -> Iterator[Any]:
        with self._lease_lock:
            exchange = self._idle.pop() if self._idle else None
        if exchange is None:
            exchange = self._new_exchange()
        try:
            entry = self._market_cache.get(self._markets_key)
            if entry is not None and exchange.alpha_markets is not entry:
                for attr, value in entry.attrs.items():
                    setattr(exchange, attr, value)
                exchange.alpha_markets = entry
            yield exchange
        finally:
            with self._lease_lock:
                self._idle.append(exchange)

    def shutdown(self) -> None:
        with self._lease_lock:
            built, self._built, self._idle = self._built, [], []
        for exchange in built:
            try:
                exchange.close()
            except Exception:  # closing a requests session must not fail a caller
                logger.debug("closing the ccxt session failed", exc_info=True)

    # ------------------------------------------------------------------ calling the venue
    def _call(self, op: str, fn: Callable[[Any], T]) -> T:
        """Run one ccxt call (and its conversion) on a leased instance and map what it raises."""
        wire_state.headers, wire_state.path = {}, ""
        try:
            with self._lease() as exchange:
                return fn(exchange)
        except ExchangeError:
            raise
        except ccxt.BaseError as exc:
            mapped = map_error(exc, venue=self.spec.venue, op=op, secrets=self.credentials.reveal_all().values(),
                               refinements=self.ERROR_REFINEMENTS)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError) as exc:
            logger.warning("%s: %s: unexpected response (%s)", self.spec.venue, op, type(exc).__name__)
            mapped = ExchangeUnavailable(f"{self.spec.venue}: {op}: unexpected response from the venue "
                                         f"({type(exc).__name__})", venue=self.spec.venue)
        raise mapped  # outside the except block: the ccxt exception (signed URL) is not chained

    def _read(self, op: str, fn: Callable[[Any], T]) -> T:
        return self._guard.read(lambda: self._call(op, fn))

    # ------------------------------------------------------------------ orders
    def place_order(self, request: OrderRequest) -> OrderResult:
        venue_symbol, unified = self._resolve(request.symbol)
        order_type = OrderType(request.order_type)
        quantity = self.format_quantity(request.symbol, request.quantity)
        price = stop_price = None
        if order_type == OrderType.LIMIT:
            if request.price is None:
                raise InvalidOrderError("A LIMIT order needs a price", venue=self.spec.venue)
            price = self.format_price(request.symbol, request.price)
        if order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            if request.stop_price is None:
                raise InvalidOrderError(f"A {order_type} order needs a stop_price", venue=self.spec.venue)
            stop_price = self.format_price(request.symbol, request.stop_price)
        opening = request.is_opening and not request.reduce_only
        if opening:
            self._prepare_symbol(request.symbol, venue_symbol, request.leverage)
        venue_cid = self.venue_client_order_id(request.client_order_id)
        attached_params: dict[str, Any] = {}
        wants_protection = opening and (request.stop_loss is not None or request.take_profit is not None)
        if wants_protection and self.capabilities.get("supports_attached_tp_sl"):
            # ccxt's unified attached stop-loss / take-profit, sent with the entry.
            if request.stop_loss is not None:
                attached_params["stopLoss"] = {
                    "triggerPrice": str(self.format_price(request.symbol, request.stop_loss))}
            if request.take_profit is not None:
                attached_params["takeProfit"] = {
                    "triggerPrice": str(self.format_price(request.symbol, request.take_profit))}
        result = self._submit(
            unified, order_type, request.side, request.position_side, quantity, price, stop_price,
            reduce_only=request.reduce_only, client_order_id=venue_cid,
            time_in_force=request.time_in_force, extra=attached_params,
        )
        result = self._ours(result, request.client_order_id, venue_cid)
        if wants_protection and not attached_params:
            result = replace(result, attached=self._attach_protection(request, result, unified))
        return result

    @staticmethod
    def _ours(result: OrderResult, ours: str, venue_cid: str) -> OrderResult:
        """Our id on a result of an order we placed; the venue's form beside it when different."""
        return replace(result, client_order_id=ours, venue_client_order_id=venue_cid if venue_cid != ours else "")

    def _prepare_symbol(self, symbol: str, venue_symbol: str, leverage: int | None) -> None:
        """Margin mode and leverage before an opening order, sent only when they change.
        Under a lock: two threads opening at once send them once, not twice."""
        wanted = int(leverage or self._leverage_cfg.get("default") or 1)
        with self._settings_lock:
            if self._margin_mode_set.get(venue_symbol) != self._margin_mode_cfg:
                self.set_margin_mode(symbol, self._margin_mode_cfg)
            if self._leverage_set.get(venue_symbol) != wanted:
                self.set_leverage(symbol, wanted)

    def _order_params(self, order_type: OrderType, position_side: PositionSide, stop_price: Decimal | None,
                      reduce_only: bool, client_order_id: str, time_in_force: str) -> dict[str, Any]:
        params: dict[str, Any] = {self.CLIENT_ID_PARAM: client_order_id}
        if self._hedged:  # hedge mode: the side names the position; reduceOnly is refused
            params["positionSide"] = position_side.value
        elif reduce_only and self.capabilities.get("supports_reduce_only", True):
            params["reduceOnly"] = True
        if order_type == OrderType.LIMIT:
            params["timeInForce"] = time_in_force
        elif order_type == OrderType.STOP_MARKET:
            params["stopLossPrice"] = str(stop_price)
        elif order_type == OrderType.TAKE_PROFIT_MARKET:
            params["takeProfitPrice"] = str(stop_price)
        return params

    def _fetch_order_raw(self, exchange: Any, unified: str, order_id: str | None, client_order_id: str | None,
                         conditional: bool) -> dict[str, Any]:
        return exchange.fetch_order(order_id, unified, self._lookup_params(client_order_id, conditional))

    def _submit(self, unified: str, order_type: OrderType, side: OrderSide, position_side: PositionSide,
                quantity: Decimal, price: Decimal | None, stop_price: Decimal | None, *,
                reduce_only: bool, client_order_id: str, time_in_force: str,
                extra: Mapping[str, Any] | None = None) -> OrderResult:
        conditional = order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET) \
            and bool(self.capabilities.get("conditional_endpoint"))
        ccxt_type = "limit" if order_type == OrderType.LIMIT else "market"

        def convert(order: dict[str, Any]) -> OrderResult:
            return self._order_result(order, position_side=position_side)

        def lookup() -> OrderResult:
            return self._call("fetch_order", lambda ex: convert(
                self._fetch_order_raw(ex, unified, None, client_order_id, conditional)))

        def send() -> OrderResult:
            params = {**self._order_params(order_type, position_side, stop_price, reduce_only,
                                           client_order_id, time_in_force), **(extra or {})}
            try:
                return self._call("create_order", lambda ex: convert(ex.create_order(
                    unified, ccxt_type, side.value.lower(), str(quantity),
                    None if price is None else str(price), params)))
            except InvalidOrderError as exc:
                if exc.code in self.DUPLICATE_CLIENT_ID_CODES:
                    # Already placed under this client order id (an earlier lost answer): it.
                    return lookup()
                raise

        if conditional:
            self._remember_conditional(client_order_id)
        result = self._guard.submit(send, lookup)
        if conditional:
            self._remember_conditional(result.order_id)
        return self._with_fills(unified, result)

    def _remember_conditional(self, ref: str) -> None:
        """Which book to look in first. Only an ordering hint (both books are tried), so a
        long-lived trader may forget: bounded."""
        if len(self._conditional_ids) >= self.CONDITIONAL_MEMORY:
            self._conditional_ids.clear()
        self._conditional_ids.add(ref)

    def _attach_protection(self, request: OrderRequest, entry: OrderResult, unified: str) -> tuple[OrderResult, ...]:
        quantity = entry.executed_quantity
        if quantity <= 0:
            logger.info("%s: %s not filled yet; stop-loss/take-profit not placed",
                        self.spec.venue, entry.client_order_id)
            return ()
        close_side = OrderSide.SELL if request.position_side == PositionSide.LONG else OrderSide.BUY
        placed = []
        for order_type, trigger, suffix in ((OrderType.STOP_MARKET, request.stop_loss, "sl"),
                                            (OrderType.TAKE_PROFIT_MARKET, request.take_profit, "tp")):
            if trigger is None:
                continue
            cid = self.derived_client_order_id(request.client_order_id, suffix)
            try:
                placed.append(self._submit(
                    unified, order_type, close_side, request.position_side, quantity, None,
                    self.format_price(request.symbol, trigger), reduce_only=True, client_order_id=cid,
                    time_in_force="GTC"))
            except ExchangeError as exc:
                # The entry is real: report the protective order's failure beside it, do not lose it.
                logger.error("%s: %s %s not placed: %s", self.spec.venue, order_type, cid, exc.message)
                placed.append(OrderResult(
                    symbol=request.symbol, order_id="", client_order_id=cid, side=close_side,
                    order_type=order_type, quantity=quantity, price=None, executed_quantity=D0,
                    executed_price=None,
                    status=OrderStatus.REJECTED if isinstance(exc, InvalidOrderError) else OrderStatus.FAILED,
                    fees=D0, timestamp=utcnow(), exchange=self.spec.venue, position_side=request.position_side,
                    reduce_only=True, stop_price=trigger,
                    raw_data={"error": exc.message, "error_type": type(exc).__name__}))
        return tuple(placed)

    def _execution_order_id(self, result: OrderResult) -> str:
        """The venue order whose trades are ``result``'s execution: itself for MARKET and
        LIMIT orders; for a triggered conditional order, the order it became, which only
        venues that report it (their class) can name."""
        return result.order_id if result.order_type in (OrderType.MARKET, OrderType.LIMIT) else ""

    def _with_fills(self, unified: str, result: OrderResult) -> OrderResult:
        execution_id = self._execution_order_id(result)
        if not self.capabilities.get("fetch_fills") or result.executed_quantity <= 0 or not execution_id:
            return result
        try:
            trades = self._read("fetch_my_trades", lambda ex: self._order_trades(ex, unified, execution_id))
        except ExchangeError as exc:  # the order stands; its fees are settled by reconciliation
            logger.warning("%s: fills of %s not read: %s", self.spec.venue, result.order_id, exc.message)
            return result
        fills = tuple(FillInfo(
            trade_id=str(trade.get("id")), quantity=dec(trade.get("amount")) or D0,
            price=dec(trade.get("price")) or D0, fee=dec((trade.get("fee") or {}).get("cost")) or D0,
            realized_pnl=self._trade_realized_pnl(trade), timestamp=ms_to_datetime(trade.get("timestamp")),
        ) for trade in trades)
        if not fills:
            return result
        currency = (trades[0].get("fee") or {}).get("currency")
        executed_price = result.executed_price
        filled = sum((f.quantity for f in fills), D0)
        if executed_price is None and filled > 0:  # e.g. a triggered conditional: the trades' average
            executed_price = sum((f.quantity * f.price for f in fills), D0) / filled
        return replace(result, fills=fills, fees=sum((f.fee for f in fills), D0),
                       fee_currency=str(currency or self.QUOTE), executed_price=executed_price)

    def _conditional_order(self, order_id: str | None, client_order_id: str | None) -> list[bool]:
        """Where to look for an order: regular, conditional, or both (known ones first)."""
        if not self.capabilities.get("conditional_endpoint"):
            return [False]
        known = self._conditional_ids
        if (order_id and order_id in known) or (client_order_id and client_order_id in known):
            return [True, False]
        return [False, True]

    def get_order(self, symbol: str, *, order_id: str | None = None,
                  client_order_id: str | None = None) -> OrderResult:
        if not order_id and not client_order_id:
            raise ValueError("get_order needs an order_id or a client_order_id")
        _, unified = self._resolve(symbol)
        cid = self.venue_client_order_id(client_order_id) if client_order_id else None
        error: OrderNotFound | None = None
        for conditional in self._conditional_order(order_id, cid):
            try:
                result = self._read("fetch_order", lambda ex, c=conditional: self._order_result(
                    self._fetch_order_raw(ex, unified, None if cid else order_id, cid, c)))
            except OrderNotFound as exc:
                error = exc
                continue
            # Its trades too: reconciliation records the venue's fills (ids, prices, fees,
            # realized PnL), not one aggregate without them.
            return self._with_fills(unified, result)
        assert error is not None
        raise error

    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderResult:
        if not order_id and not client_order_id:
            raise ValueError("cancel_order needs an order_id or a client_order_id")
        _, unified = self._resolve(symbol)
        cid = self.venue_client_order_id(client_order_id) if client_order_id else None
        error: OrderNotFound | None = None
        for conditional in self._conditional_order(order_id, cid):
            params = self._lookup_params(cid, conditional)
            try:
                order = self._read("cancel_order", lambda ex, p=params: ex.cancel_order(
                    None if cid else order_id, unified, p))
            except OrderNotFound as exc:
                error = exc
                continue
            if order.get("status") in (None, "ok"):  # a bare acknowledgement: read it back
                ref = str(order.get("id") or order_id or "")
                return self._read("fetch_order", lambda ex, c=conditional, r=ref: self._order_result(
                    self._fetch_order_raw(ex, unified, r or None, None if r else cid, c)))
            return self._order_result(order)
        assert error is not None
        raise error

    def get_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        unified = self._resolve(symbol)[1] if symbol else None
        if symbol is None:
            self._ensure_markets()
        results = self._read("fetch_open_orders", lambda ex: [
            self._order_result(o) for o in ex.fetch_open_orders(unified)])
        if self.capabilities.get("conditional_endpoint"):
            results += self._read("fetch_open_orders", lambda ex: [
                self._order_result(o) for o in ex.fetch_open_orders(unified, params={"trigger": True})])
        return results

    # ------------------------------------------------------------------ account
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
