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

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import ccxt

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    D0, Balance, BaseTrader, Candle, FillInfo, MarginMode, OrderRequest, OrderResult, OrderSide,
    OrderStatus, OrderType, Position, PositionSide, SymbolRules, Ticker, VenueSpec,
    ms_to_datetime, utcnow,
)
from exchanges.adapters.ccxt.errors import map_error, wire_state
from exchanges.adapters.errors import (
    ExchangeError, ExchangeUnavailable, InvalidOrderError, OperationalError, OrderNotFound, UnknownSymbol,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
# ccxt logs request headers (the API key) and signed URLs at DEBUG: keep that logger above it.
_wire_logger = logging.getLogger("exchanges.adapters.ccxt.wire")
_wire_logger.setLevel(logging.INFO)

T = TypeVar("T")


# --------------------------------------------------------------------------- ccxt class
class _ResponseChecks:
    """Mixed into the ccxt class.

    - A 2xx body that is not JSON is a BadResponse (ccxt would hand the text to its parsers).
    - The last answer's headers and path are kept per thread (a 429's Retry-After).
    - ccxt chooses an exchange's per-market error table by the *production* host name in
      the request URL (binance's ``get_exceptions_by_url`` matches ``https://fapi.binance.com/``
      and its demo/testnet hosts): against any other configured URL (a testnet mirror, a
      local fake, a proxy) only the common table would apply. ``alpha_exception_urls``
      (configured prefix -> market type) makes the same tables apply to the URLs we use.
    """

    alpha_exception_urls: dict[str, str] = {}

    def on_rest_response(self, code, reason, url, method, response_headers, response_body,
                         request_headers, request_body):
        body = super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)
        wire_state.headers = dict(response_headers or {})
        wire_state.path = urlsplit(url).path
        if 200 <= int(code) < 300 and body:
            try:
                json.loads(body)
            except ValueError:
                raise ccxt.BadResponse(f"{self.id} {method} {url} malformed JSON in the response") from None
        return body

    def get_exceptions_by_url(self, url, exactOrBroad):  # noqa: N803 - ccxt's signature
        inherited = getattr(super(), "get_exceptions_by_url", None)
        found = inherited(url, exactOrBroad) if inherited else {}
        if found or not url:
            return found
        for prefix, market_type in self.alpha_exception_urls.items():
            if url.startswith(prefix):
                return (self.exceptions.get(market_type) or {}).get(exactOrBroad) or {}
        return {}


_classes: dict[str, type] = {}
_classes_lock = threading.Lock()


def _exchange_class(ccxt_id: str) -> type:
    with _classes_lock:
        cls = _classes.get(ccxt_id)
        if cls is None:
            base = getattr(ccxt, ccxt_id, None)
            if not isinstance(base, type):
                raise OperationalError(f"ccxt has no exchange {ccxt_id!r}")
            cls = _classes[ccxt_id] = type(f"Checked_{ccxt_id}", (_ResponseChecks, base), {})
        return cls


# --------------------------------------------------------------------------- helpers
def dec(value: Any) -> Decimal | None:
    """A venue value as Decimal: raw strings as they are, ccxt numbers through str()."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number if number.is_finite() else None


def nz(value: Any) -> Decimal | None:
    number = dec(value)
    return None if number is None or number == 0 else number


def first(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if mapping and mapping.get(key) not in (None, ""):
            return mapping[key]
    return None


@dataclass(frozen=True)
class _Markets:
    attrs: dict[str, Any]
    loaded_at: float


UNIFIED_STATUS: dict[str, OrderStatus] = {
    "open": OrderStatus.NEW, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
}


class CcxtTrader(BaseTrader):
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

    MARKETS_TTL = 3600.0
    _market_cache: ClassVar[dict[tuple[str, str], _Markets]] = {}
    _market_locks: ClassVar[dict[tuple[str, str], threading.Lock]] = {}
    _market_guard: ClassVar[threading.Lock] = threading.Lock()
    _MARKET_ATTRS = ("markets", "markets_by_id", "symbols", "ids", "currencies", "currencies_by_id",
                     "codes", "baseCurrencies", "quoteCurrencies")

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

    @classmethod
    def clear_market_cache(cls) -> None:
        with CcxtTrader._market_guard:
            CcxtTrader._market_cache.clear()

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

    # ------------------------------------------------------------------ markets
    def _markets(self) -> dict[str, Any]:
        key = self._markets_key
        entry = self._market_cache.get(key)
        if entry is not None and time.monotonic() - entry.loaded_at < self._markets_ttl:
            return entry.attrs
        with self._market_guard:
            lock = self._market_locks.setdefault(key, threading.Lock())
        with lock:  # one load per process and key, however many traders and threads ask at once
            entry = self._market_cache.get(key)
            if entry is None or time.monotonic() - entry.loaded_at >= self._markets_ttl:
                def load(exchange: Any) -> _Markets:
                    exchange.load_markets(reload=True)
                    return _Markets({a: getattr(exchange, a, None) for a in self._MARKET_ATTRS}, time.monotonic())

                entry = self._read("load_markets", load)
                self._market_cache[key] = entry
        return entry.attrs

    def _ensure_markets(self) -> None:
        self._markets()

    def _market(self, venue_symbol: str) -> dict[str, Any]:
        candidates = (self._markets().get("markets_by_id") or {}).get(venue_symbol) or []
        for market in candidates:
            if market.get("contract") and market.get("linear", True):
                return market
        raise UnknownSymbol(f"{venue_symbol} is not listed on {self.spec.venue}", venue=self.spec.venue)

    def _resolve(self, symbol: str) -> tuple[str, str]:
        """Internal symbol -> (venue id, ccxt unified symbol)."""
        venue_symbol = self.normalize_symbol(symbol)
        return venue_symbol, self._market(venue_symbol)["symbol"]

    def _internal(self, unified: str | None) -> str:
        market = (self._markets().get("markets") or {}).get(unified or "")
        return self.denormalize_symbol(market["id"] if market else (unified or ""))

    def symbol_rules(self, symbol: str) -> SymbolRules:
        venue_symbol, _ = self._resolve(symbol)
        market = self._market(venue_symbol)
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        step = self._unified_precision(precision.get("amount"))
        tick = self._unified_precision(precision.get("price"))
        min_qty = dec((limits.get("amount") or {}).get("min")) or step
        min_notional = dec((limits.get("cost") or {}).get("min")) or D0
        return SymbolRules(symbol=symbol, quantity_step=step, price_tick=tick, min_quantity=min_qty,
                           min_notional=min_notional, max_leverage=self._max_leverage(venue_symbol, market))

    def _unified_precision(self, value: Any) -> Decimal:
        number = nz(value)
        if number is None:
            raise UnknownSymbol(f"{self.spec.venue}: the market has no precision", venue=self.spec.venue)
        if self._exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(number))
        return number

    def _max_leverage(self, venue_symbol: str, market: Mapping[str, Any]) -> int:
        maximum = int(self._leverage_cfg.get("maximum") or 1)
        per_symbol = (self._leverage_cfg.get("per_symbol") or {}).get(venue_symbol)
        venue_max = dec(((market.get("limits") or {}).get("leverage") or {}).get("max"))
        caps = [maximum] + ([int(per_symbol)] if per_symbol else []) + ([int(venue_max)] if venue_max else [])
        return max(1, min(caps))

    # ------------------------------------------------------------------ client order ids
    def venue_client_order_id(self, client_order_id: str) -> str:
        """Ours if the venue accepts it, else a stable shortened form (same input, same id)."""
        if self.CLIENT_ID_RE.fullmatch(client_order_id):
            return client_order_id
        digest = hashlib.sha256(client_order_id.encode()).hexdigest()[:10]
        cleaned = re.sub(r"[^.A-Za-z0-9:/_-]", "-", client_order_id)
        return f"{cleaned[:self.CLIENT_ID_MAX - 11]}-{digest}"

    def derived_client_order_id(self, client_order_id: str, suffix: str) -> str:
        """``<cid>-sl`` / ``<cid>-tp``, hashed down when that would pass the venue's limit."""
        base = self.venue_client_order_id(client_order_id)
        candidate = f"{base}-{suffix}"
        if len(candidate) <= self.CLIENT_ID_MAX:
            return candidate
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        return f"{base[:self.CLIENT_ID_MAX - len(suffix) - 10]}-{digest}-{suffix}"

    # ------------------------------------------------------------------ venue hooks
    def _lookup_params(self, client_order_id: str | None, conditional: bool) -> dict[str, Any]:
        """Params that address an order by client id (and in the conditional book)."""
        params: dict[str, Any] = {"clientOrderId": client_order_id} if client_order_id else {}
        if conditional:
            params["trigger"] = True
        return params

    def _order_position_side(self, order: Mapping[str, Any]) -> PositionSide | None:
        """The position an order belongs to when the venue says so (hedge mode)."""
        return None

    def _trade_realized_pnl(self, trade: Mapping[str, Any]) -> Decimal:
        return D0  # not a unified field; venues that report it override

    def _balance_extras(self, balance: Mapping[str, Any]) -> dict[str, Decimal]:
        """Wallet balance, unrealized PnL and maintenance margin: not unified by ccxt."""
        return {}

    def _order_trades(self, exchange: Any, unified: str, order_id: str) -> list[dict[str, Any]]:
        if exchange.has.get("fetchOrderTrades"):
            return exchange.fetch_order_trades(order_id, unified)
        return [t for t in exchange.fetch_my_trades(unified) if str(t.get("order")) == order_id]

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
            self._conditional_ids.add(client_order_id)
        result = self._guard.submit(send, lookup)
        if conditional:
            self._conditional_ids.add(result.order_id)
        return self._with_fills(unified, result)

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

    def _with_fills(self, unified: str, result: OrderResult) -> OrderResult:
        if not self.capabilities.get("fetch_fills") or result.executed_quantity <= 0 or not result.order_id \
                or result.order_type not in (OrderType.MARKET, OrderType.LIMIT):
            return result
        try:
            trades = self._read("fetch_my_trades", lambda ex: self._order_trades(ex, unified, result.order_id))
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
        return replace(result, fills=fills, fees=sum((f.fee for f in fills), D0),
                       fee_currency=str(currency or self.QUOTE))

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
                return self._read("fetch_order", lambda ex, c=conditional: self._order_result(
                    self._fetch_order_raw(ex, unified, None if cid else order_id, cid, c)))
            except OrderNotFound as exc:
                error = exc
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

    def _order_result(self, order: Mapping[str, Any], *, position_side: PositionSide | None = None) -> OrderResult:
        """From ccxt's unified order structure."""
        side = OrderSide(str(order.get("side")).upper())
        quantity = dec(order.get("amount")) or D0
        executed = dec(order.get("filled")) or D0
        trigger = nz(order.get("triggerPrice"))
        raw_type = str(order.get("type") or "").lower()
        if trigger is not None or raw_type in ("stop_market", "stop", "take_profit_market", "take_profit"):
            take_profit = nz(order.get("takeProfitPrice")) is not None or raw_type.startswith("take_profit")
            order_type = OrderType.TAKE_PROFIT_MARKET if take_profit else OrderType.STOP_MARKET
        else:
            order_type = OrderType.LIMIT if raw_type == "limit" else OrderType.MARKET
        status = UNIFIED_STATUS.get(str(order.get("status")), OrderStatus.NEW)
        if status == OrderStatus.NEW and D0 < executed < quantity:
            status = OrderStatus.PARTIALLY_FILLED
        if order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET) \
                and status == OrderStatus.FILLED and executed == 0:
            executed = quantity  # a triggered conditional order executes through the order it became
        reduce_only = bool(order.get("reduceOnly"))
        if position_side is None:
            position_side = self._order_position_side(order)
        if position_side is None:  # one-way mode: a reducing sell closes a long, an opening buy makes one
            position_side = PositionSide.LONG if (side == OrderSide.BUY) != reduce_only else PositionSide.SHORT
        fee = dec((order.get("fee") or {}).get("cost")) or D0
        return OrderResult(
            symbol=self._internal(order.get("symbol")), order_id=str(order.get("id") or ""),
            client_order_id=str(order.get("clientOrderId") or ""),
            side=side, order_type=order_type, quantity=quantity,
            price=nz(order.get("price")) if order_type == OrderType.LIMIT else None,
            executed_quantity=executed, executed_price=nz(order.get("average")),
            status=status, fees=fee,
            timestamp=ms_to_datetime(order.get("lastUpdateTimestamp") or order.get("timestamp")),
            exchange=self.spec.venue, raw_data=dict(order.get("info") or {}),
            position_side=position_side, reduce_only=reduce_only, stop_price=trigger,
        )

    # ------------------------------------------------------------------ account
    def get_balance(self) -> Balance:
        self._ensure_markets()
        return self._read("fetch_balance", lambda ex: self._balance(ex.fetch_balance()))

    def _balance(self, balance: Mapping[str, Any]) -> Balance:
        """From ccxt's unified balance (free / used / total of the quote currency)."""
        unified = balance.get(self.QUOTE) or {}
        equity = dec(unified.get("total")) or D0
        extras = self._balance_extras(balance)
        upnl = extras.get("unrealized_pnl", D0)
        return Balance(
            total_balance=extras.get("wallet_balance", equity - upnl),
            available_balance=dec(unified.get("free")) or D0,
            margin_balance=equity, unrealized_pnl=upnl, currency=self.QUOTE,
            timestamp=ms_to_datetime(balance.get("timestamp")), exchange=self.spec.venue,
            margin_used=dec(unified.get("used")) or D0,
            maintenance_margin=extras.get("maintenance_margin", D0),
            can_trade=bool(extras.get("can_trade", True)), account_type="futures",
            raw_data=dict(balance.get("info") or {}),
        )

    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        unified = [self._resolve(s)[1] for s in symbols] if symbols else None
        self._ensure_markets()
        return self._read("fetch_positions", lambda ex: [
            p for p in (self._position(raw) for raw in ex.fetch_positions(unified)) if p is not None])

    def _position(self, raw: Mapping[str, Any]) -> Position | None:
        """From ccxt's unified position structure."""
        contracts = dec(raw.get("contracts")) or D0
        size = abs(contracts * (dec(raw.get("contractSize")) or Decimal(1)))
        if size == 0:
            return None
        side = PositionSide.SHORT if raw.get("side") == "short" else PositionSide.LONG
        symbol = self._internal(raw.get("symbol"))
        notional = abs(dec(raw.get("notional")) or D0)
        isolated = raw.get("marginMode") == "isolated"
        margin = (nz(raw.get("collateral")) if isolated else None) or dec(raw.get("initialMargin")) or D0
        leverage = nz(raw.get("leverage"))
        if leverage is None and margin:
            leverage = (notional / margin).quantize(Decimal("1"))
        if leverage is None:
            market = (self._markets().get("markets") or {}).get(raw.get("symbol") or "") or {}
            leverage = Decimal(self._leverage_set.get(str(market.get("id")), 1))
        upnl = dec(raw.get("unrealizedPnl")) or D0
        return Position(
            symbol=symbol, side=side, size=size,
            entry_price=dec(raw.get("entryPrice")) or D0, mark_price=dec(raw.get("markPrice")) or D0,
            unrealized_pnl=upnl,
            percentage_pnl=(upnl / margin * 100).quantize(Decimal("0.01")) if margin else D0,
            leverage=leverage, margin=margin, timestamp=ms_to_datetime(raw.get("timestamp")),
            exchange=self.spec.venue, position_id=None,
            liquidation_price=nz(raw.get("liquidationPrice")),
            margin_type="isolated" if isolated else "cross", raw_data=dict(raw.get("info") or {}),
        )

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
