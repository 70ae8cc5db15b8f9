"""ccxt futures adapter, Binance USD-M (``binanceusdm``) first.

Generic over ccxt ids in the freqtrade manner: the venue's specifics (API URL layout, ccxt
options, credential field names, error codes, order statuses, client id rules) are class
attributes and small methods, so another ccxt futures venue is a small subclass.

Every call goes through ``resilience.Guard``: reads are retried with backoff, an order is
sent once and, when its answer is lost, looked up by client order id. ccxt's exceptions are
mapped onto ``exchanges.adapters.errors`` with messages rebuilt from the venue name, the
endpoint path and the venue's own code and text: never the URL (its query string carries
the signature), never the key or the secret. Amounts are read from the venue's raw strings
(``info``) or ``str()`` of ccxt's values, never through float arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import ccxt

from alpha_platform.common.secrets import MASK, Credentials
from exchanges.adapters.base import (
    D0, Balance, BaseTrader, Candle, FillInfo, MarginMode, OrderRequest, OrderResult, OrderSide,
    OrderStatus, OrderType, Position, PositionSide, SymbolRules, Ticker, VenueSpec,
    ms_to_datetime, utcnow,
)
from exchanges.adapters.errors import (
    AuthenticationError, BadPrecision, ExchangeError, ExchangeUnavailable, InsufficientFunds,
    InvalidOrderError, NetworkError, OperationalError, OrderNotFound, PermissionDenied,
    RateLimited, UnknownSymbol,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
# ccxt logs request headers (the API key) and signed URLs at DEBUG: keep that logger above it.
_wire_logger = logging.getLogger(__name__ + ".wire")
_wire_logger.setLevel(logging.INFO)

T = TypeVar("T")
_URL = re.compile(r"https?://[^\s'\"]+")
_STATUS = re.compile(r"\s(\d{3})\s")
_SIGNATURE = re.compile(r"signature=[^&\s\"']*", re.I)


# --------------------------------------------------------------------------- ccxt class
class _ResponseChecks:
    """Mixed into the ccxt class: a 2xx body that is not JSON is a BadResponse (ccxt would
    hand the text to its parsers), and the last answer's headers are kept per thread so a
    429's Retry-After can be honoured."""

    def on_rest_response(self, code, reason, url, method, response_headers, response_body,
                         request_headers, request_body):
        body = super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)
        _thread_state.headers = dict(response_headers or {})
        _thread_state.path = urlsplit(url).path
        if 200 <= int(code) < 300 and body:
            try:
                json.loads(body)
            except ValueError:
                raise ccxt.BadResponse(f"{self.id} {method} {url} malformed JSON in the response") from None
        return body


_thread_state = threading.local()
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
def _dec(value: Any) -> Decimal | None:
    """A venue value as Decimal: raw strings as they are, ccxt numbers through str()."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return number if number.is_finite() else None


def _nz(value: Any) -> Decimal | None:
    number = _dec(value)
    return None if number is None or number == 0 else number


def _first(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if mapping and mapping.get(key) not in (None, ""):
            return mapping[key]
    return None


@dataclass
class _Markets:
    attrs: dict[str, Any]
    loaded_at: float


class CcxtTrader(BaseTrader):
    # -- venue specifics: Binance USD-M. Another ccxt futures venue overrides these. -----
    DEFAULT_CCXT_ID = "binanceusdm"
    API_URL_PATHS: ClassVar[dict[str, str]] = {
        # Only these: ccxt refuses (NotSupported) any other API section instead of calling
        # a host we did not configure.
        "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
        "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data",
    }
    CCXT_OPTIONS: ClassVar[dict[str, Any]] = {
        "defaultType": "swap",
        "fetchMarkets": {"types": ["linear"]},
        "fetchCurrencies": False,  # a spot (sapi) call with keys; futures need none of it
        "fetchMargins": False,
        "adjustForTimeDifference": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "setMarginMode": {"throwMarginModeAlreadySet": False},
        "disableFuturesSandboxWarning": True,
    }
    CREDENTIAL_FIELDS: ClassVar[dict[str, str]] = {"apiKey": "api_key", "secret": "api_secret"}
    CLIENT_ID_PARAM = "newClientOrderId"  # ccxt moves it to clientAlgoId for conditional orders
    CLIENT_ID_MAX = 36
    CLIENT_ID_RE = re.compile(r"[.A-Za-z0-9:/_-]{1,36}")
    QUOTE = "USDT"
    CAPABILITIES: ClassVar[dict[str, bool]] = {
        "conditional_endpoint": True,  # stops live apart (Binance's algo orders): trigger=True
        "book_ticker": True,            # bid/ask in get_ticker (one extra light call)
        "fetch_fills": True,            # fees and realized PnL of a filled order (userTrades)
    }
    ERROR_CODES: ClassVar[dict[str, type[ExchangeError]]] = {
        # Applied before ccxt's own mapping, which depends on the URL's host name.
        "-1000": ExchangeUnavailable, "-1001": ExchangeUnavailable, "-1006": ExchangeUnavailable,
        "-1007": NetworkError, "-1008": ExchangeUnavailable, "-1021": NetworkError,
        "-1003": RateLimited, "-1015": RateLimited,
        "-1002": AuthenticationError, "-1022": AuthenticationError, "-1099": AuthenticationError,
        "-2014": AuthenticationError, "-2015": AuthenticationError, "-4056": AuthenticationError,
        "-4057": AuthenticationError,
        "-1005": PermissionDenied, "-1011": PermissionDenied, "-1109": PermissionDenied,
        "-2017": PermissionDenied, "-4087": PermissionDenied, "-4088": PermissionDenied,
        "-4400": PermissionDenied, "-4401": PermissionDenied, "-4402": PermissionDenied,
        "-1121": UnknownSymbol, "-4144": UnknownSymbol,
        "-2011": OrderNotFound, "-2013": OrderNotFound,
        "-2018": InsufficientFunds, "-2019": InsufficientFunds, "-2024": InsufficientFunds,
        "-4050": InsufficientFunds, "-4051": InsufficientFunds,
        "-1111": BadPrecision, "-4003": BadPrecision, "-4004": BadPrecision, "-4014": BadPrecision,
        "-4023": BadPrecision, "-4029": BadPrecision, "-4030": BadPrecision,
    }
    MARGIN_ALREADY_SET_CODES = frozenset({"-4046"})
    DUPLICATE_CLIENT_ID_CODES = frozenset({"-4116"})
    STATUS_MAP: ClassVar[dict[str, OrderStatus]] = {
        "NEW": OrderStatus.NEW, "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
        "FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELLED,
        "CANCELLED": OrderStatus.CANCELLED, "EXPIRED": OrderStatus.EXPIRED,
        "EXPIRED_IN_MATCH": OrderStatus.EXPIRED, "REJECTED": OrderStatus.REJECTED,
        # conditional (algo) orders
        "TRIGGERING": OrderStatus.NEW, "TRIGGERED": OrderStatus.FILLED, "FINISHED": OrderStatus.FILLED,
    }
    UNIFIED_STATUS: ClassVar[dict[str, OrderStatus]] = {
        "open": OrderStatus.NEW, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
        "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
    }

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
        rest = (cfg.get("network") or {}).get("rest_api") or {}
        base = rest.get("testnet" if spec.testnet else "production")
        if not base:
            raise OperationalError(f"{spec.venue}: no REST URL configured for "
                                   f"{'testnet' if spec.testnet else 'production'}", venue=spec.venue)
        self.base_url = str(base).rstrip("/")
        self.capabilities = {**self.CAPABILITIES, **(cfg.get("capabilities") or {})}
        trading = cfg.get("trading") or {}
        self._leverage_cfg = trading.get("leverage") or {}
        self._margin_mode_cfg = MarginMode(str(trading.get("margin_mode") or "cross").lower())
        self._hedged = bool((cfg.get("parameters") or {}).get("dual_side_position"))
        self._markets_ttl = float(cfg.get("markets_ttl_seconds") or self.MARKETS_TTL)
        self._guard = Guard(runtime, venue=spec.venue, account_ref=spec.account_ref, venue_config=dict(cfg))
        self._exchange = self._build_exchange(int(rest.get("timeout") or 10000), cfg.get("ccxt_options") or {})
        self._markets_key = (self.ccxt_id, self.base_url)
        self._markets_entry: _Markets | None = None
        self._leverage_set: dict[str, int] = {}
        self._margin_mode_set: dict[str, MarginMode] = {}
        self._conditional_ids: set[str] = set()

    # ------------------------------------------------------------------ construction
    def _build_exchange(self, timeout_ms: int, extra: Mapping[str, Any]) -> Any:
        settings: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": json.loads(json.dumps(self.CCXT_OPTIONS)),
        }
        for ccxt_field, our_field in self.CREDENTIAL_FIELDS.items():
            value = self.credentials.reveal(our_field)
            if value:
                settings[ccxt_field] = value
        for key, value in extra.items():  # e.g. rateLimit, or options for a subclass venue
            if key == "options":
                settings["options"].update(value)
            elif key not in self.CREDENTIAL_FIELDS:
                settings[key] = value
        exchange = _exchange_class(self.ccxt_id)(settings)
        exchange.urls = {**exchange.urls, "api": self._api_urls(self.base_url)}
        exchange.logger = _wire_logger
        exchange.verbose = False
        return exchange

    def _api_urls(self, base: str) -> dict[str, str]:
        return {name: base + path for name, path in self.API_URL_PATHS.items()}

    @classmethod
    def clear_market_cache(cls) -> None:
        with cls._market_guard:
            cls._market_cache.clear()

    def close(self) -> None:
        try:
            self._exchange.close()
        except Exception:  # closing a requests session must not fail a caller
            logger.debug("closing the ccxt session failed", exc_info=True)

    # ------------------------------------------------------------------ calling the venue
    def _call(self, op: str, fn: Callable[[], T]) -> T:
        """Run one ccxt call (and its conversion) and map what it raises."""
        _thread_state.headers, _thread_state.path = {}, ""
        try:
            return fn()
        except ExchangeError:
            raise
        except ccxt.BaseError as exc:
            mapped = self._map_error(op, exc)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError) as exc:
            logger.warning("%s: %s: unexpected response (%s)", self.spec.venue, op, type(exc).__name__)
            mapped = ExchangeUnavailable(f"{self.spec.venue}: {op}: unexpected response from the venue "
                                         f"({type(exc).__name__})", venue=self.spec.venue)
        raise mapped  # outside the except block: the ccxt exception (signed URL) is not chained

    def _read(self, op: str, fn: Callable[[], T]) -> T:
        return self._guard.read(lambda: self._call(op, fn))

    def _scrub(self, text: str) -> str:
        text = _SIGNATURE.sub("signature=" + MASK, text)
        for secret in self.credentials.reveal_all().values():
            if secret and len(secret) >= 4:
                text = text.replace(secret, MASK)
        return text

    def _map_error(self, op: str, exc: ccxt.BaseError) -> ExchangeError:
        raw = str(exc)
        url = _URL.search(raw)
        path = urlsplit(url.group(0)).path if url else getattr(_thread_state, "path", "")
        status = None
        if url:
            found = _STATUS.match(raw[url.end():])
            status = int(found.group(1)) if found else None
        code, venue_msg = None, None
        start, end = raw.find("{"), raw.rfind("}")
        if 0 <= start < end:
            try:
                body = json.loads(raw[start:end + 1])
                code = None if body.get("code") is None else str(body.get("code"))
                venue_msg = body.get("msg")
            except (ValueError, AttributeError):
                pass
        cls = self._error_class(exc, code, status)
        where = f" at {path}" if path else ""
        if venue_msg is not None:
            prefix = f"venue code {code}: " if code is not None else ""
            detail = f": {prefix}{self._scrub(str(venue_msg))[:200]}"
        elif status is not None:
            detail = f": HTTP {status}"
        else:
            detail = f": {type(exc).__name__}"
        message = f"{self.spec.venue}: {op} failed{where}{detail}"
        if cls is RateLimited:
            retry_after = None
            headers = getattr(_thread_state, "headers", None) or {}
            value = headers.get("Retry-After") or headers.get("retry-after")
            try:
                retry_after = float(value) if value is not None else None
            except ValueError:
                retry_after = None
            return RateLimited(message, venue=self.spec.venue, code=code, retry_after=retry_after)
        return cls(message, venue=self.spec.venue, code=code)

    def _error_class(self, exc: ccxt.BaseError, code: str | None, status: int | None) -> type[ExchangeError]:
        if code in self.ERROR_CODES:
            return self.ERROR_CODES[code]
        ordered: tuple[tuple[type, type[ExchangeError]], ...] = (
            (ccxt.RateLimitExceeded, RateLimited), (ccxt.DDoSProtection, RateLimited),
            (ccxt.RequestTimeout, NetworkError), (ccxt.ExchangeNotAvailable, ExchangeUnavailable),
            (ccxt.InvalidNonce, NetworkError), (ccxt.NetworkError, NetworkError),
            (ccxt.BadResponse, ExchangeUnavailable), (ccxt.OperationFailed, ExchangeUnavailable),
            (ccxt.PermissionDenied, PermissionDenied), (ccxt.AccountSuspended, PermissionDenied),
            (ccxt.AuthenticationError, AuthenticationError), (ccxt.InsufficientFunds, InsufficientFunds),
            (ccxt.BadSymbol, UnknownSymbol), (ccxt.OrderNotFound, OrderNotFound),
            (ccxt.InvalidOrder, InvalidOrderError), (ccxt.BadRequest, InvalidOrderError),
            (ccxt.OperationRejected, InvalidOrderError), (ccxt.NotSupported, OperationalError),
        )
        for ccxt_cls, ours in ordered:
            if isinstance(exc, ccxt_cls):
                return ours
        if status is not None and status >= 500:
            return ExchangeUnavailable
        if code is not None and (status is None or 400 <= status < 500):
            return InvalidOrderError  # the venue answered and refused this request
        return ExchangeUnavailable

    # ------------------------------------------------------------------ markets
    def _ensure_markets(self) -> None:
        entry = self._markets_entry
        if entry is not None and time.monotonic() - entry.loaded_at < self._markets_ttl:
            return
        key = self._markets_key
        with self._market_guard:
            lock = self._market_locks.setdefault(key, threading.Lock())
        with lock:  # one load per process and key, however many adapters ask at once
            entry = self._market_cache.get(key)
            if entry is None or time.monotonic() - entry.loaded_at >= self._markets_ttl:
                self._read("load_markets", lambda: self._exchange.load_markets(reload=True))
                entry = _Markets({a: getattr(self._exchange, a, None) for a in self._MARKET_ATTRS},
                                 time.monotonic())
                self._market_cache[key] = entry
        if entry is not self._markets_entry:
            for attr, value in entry.attrs.items():
                setattr(self._exchange, attr, value)
            self._markets_entry = entry

    def _market(self, venue_symbol: str) -> dict[str, Any]:
        self._ensure_markets()
        candidates = (self._exchange.markets_by_id or {}).get(venue_symbol) or []
        for market in candidates:
            if market.get("contract") and market.get("linear", True):
                return market
        raise UnknownSymbol(f"{venue_symbol} is not listed on {self.spec.venue}", venue=self.spec.venue)

    def _resolve(self, symbol: str) -> tuple[str, str]:
        """Internal symbol -> (venue id, ccxt unified symbol)."""
        venue_symbol = self.normalize_symbol(symbol)
        return venue_symbol, self._market(venue_symbol)["symbol"]

    def _internal(self, venue_symbol: str | None, unified: str | None = None) -> str:
        if not venue_symbol and unified:
            market = (self._exchange.markets or {}).get(unified)
            venue_symbol = market["id"] if market else unified
        return self.denormalize_symbol(venue_symbol or "")

    def symbol_rules(self, symbol: str) -> SymbolRules:
        venue_symbol, _ = self._resolve(symbol)
        market = self._market(venue_symbol)
        step, tick, min_qty, min_notional = self._precision(market)
        return SymbolRules(symbol=symbol, quantity_step=step, price_tick=tick, min_quantity=min_qty,
                           min_notional=min_notional, max_leverage=self._max_leverage(venue_symbol, market))

    def _precision(self, market: Mapping[str, Any]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(step, tick, min qty, min notional): the venue's raw filter strings when present
        (Binance), else ccxt's unified precision and limits."""
        filters = {f.get("filterType"): f for f in (market.get("info") or {}).get("filters") or []}
        lot, price_filter = filters.get("LOT_SIZE") or {}, filters.get("PRICE_FILTER") or {}
        notional = filters.get("MIN_NOTIONAL") or filters.get("NOTIONAL") or {}
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        step = _nz(lot.get("stepSize")) or self._unified_precision(precision.get("amount"))
        tick = _nz(price_filter.get("tickSize")) or self._unified_precision(precision.get("price"))
        min_qty = _dec(lot.get("minQty")) or _dec((limits.get("amount") or {}).get("min")) or step
        min_notional = (_dec(_first(notional, "notional", "minNotional"))
                        or _dec((limits.get("cost") or {}).get("min")) or D0)
        return step, tick, min_qty, min_notional

    def _unified_precision(self, value: Any) -> Decimal:
        number = _nz(value)
        if number is None:
            raise UnknownSymbol(f"{self.spec.venue}: the market has no precision", venue=self.spec.venue)
        if self._exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(number))
        return number

    def _max_leverage(self, venue_symbol: str, market: Mapping[str, Any]) -> int:
        maximum = int(self._leverage_cfg.get("maximum") or 1)
        per_symbol = (self._leverage_cfg.get("per_symbol") or {}).get(venue_symbol)
        venue_max = _dec(((market.get("limits") or {}).get("leverage") or {}).get("max"))
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
        result = self._submit(
            unified, order_type, request.side, request.position_side, quantity, price, stop_price,
            reduce_only=request.reduce_only, client_order_id=self.venue_client_order_id(request.client_order_id),
            time_in_force=request.time_in_force,
        )
        if opening and (request.stop_loss is not None or request.take_profit is not None):
            result = replace(result, attached=self._attach_protection(request, result, unified))
        return result

    def _prepare_symbol(self, symbol: str, venue_symbol: str, leverage: int | None) -> None:
        """Margin mode and leverage before an opening order, each once per instance."""
        if self._margin_mode_set.get(venue_symbol) != self._margin_mode_cfg:
            self.set_margin_mode(symbol, self._margin_mode_cfg)
        wanted = int(leverage or self._leverage_cfg.get("default") or 1)
        if self._leverage_set.get(venue_symbol) != wanted:
            self.set_leverage(symbol, wanted)

    def _order_params(self, order_type: OrderType, side: OrderSide, position_side: PositionSide,
                      stop_price: Decimal | None, reduce_only: bool, client_order_id: str,
                      time_in_force: str) -> dict[str, Any]:
        params: dict[str, Any] = {self.CLIENT_ID_PARAM: client_order_id}
        if self._hedged:  # hedge mode: the side names the position; reduceOnly is refused
            params["positionSide"] = position_side.value
        elif reduce_only:
            params["reduceOnly"] = True
        if order_type == OrderType.LIMIT:
            params["timeInForce"] = time_in_force
        elif order_type == OrderType.STOP_MARKET:
            params["stopLossPrice"] = str(stop_price)
        elif order_type == OrderType.TAKE_PROFIT_MARKET:
            params["takeProfitPrice"] = str(stop_price)
        return params

    def _submit(self, unified: str, order_type: OrderType, side: OrderSide, position_side: PositionSide,
                quantity: Decimal, price: Decimal | None, stop_price: Decimal | None, *,
                reduce_only: bool, client_order_id: str, time_in_force: str) -> OrderResult:
        conditional = order_type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
        ccxt_type = "limit" if order_type == OrderType.LIMIT else "market"

        def convert(order: dict[str, Any]) -> OrderResult:
            return self._order_result(order, position_side=position_side)

        def lookup() -> OrderResult:
            return self._call("fetch_order", lambda: convert(
                self._fetch_order_raw(unified, None, client_order_id, conditional)))

        def send() -> OrderResult:
            params = self._order_params(order_type, side, position_side, stop_price, reduce_only,
                                        client_order_id, time_in_force)
            try:
                return self._call("create_order", lambda: convert(self._exchange.create_order(
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
            cid = self.derived_client_order_id(entry.client_order_id or request.client_order_id, suffix)
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
            trades = self._read("fetch_my_trades", lambda: self._exchange.fetch_my_trades(
                unified, params={"orderId": result.order_id}))
        except ExchangeError as exc:  # the order stands; its fees are settled by reconciliation
            logger.warning("%s: fills of %s not read: %s", self.spec.venue, result.order_id, exc.message)
            return result
        fills = []
        for trade in trades:
            info = trade.get("info") or {}
            fee = _dec(_first(info, "commission")) or _dec((trade.get("fee") or {}).get("cost")) or D0
            fills.append(FillInfo(
                trade_id=str(trade.get("id")), quantity=_dec(_first(info, "qty")) or _dec(trade.get("amount")) or D0,
                price=_dec(_first(info, "price")) or _dec(trade.get("price")) or D0, fee=fee,
                realized_pnl=_dec(_first(info, "realizedPnl")) or D0, timestamp=ms_to_datetime(trade.get("timestamp"))))
        if not fills:
            return result
        currency = _first(trades[0].get("info"), "commissionAsset") or (trades[0].get("fee") or {}).get("currency")
        return replace(result, fills=tuple(fills), fees=sum((f.fee for f in fills), D0),
                       fee_currency=str(currency or self.QUOTE))

    def _fetch_order_raw(self, unified: str, order_id: str | None, client_order_id: str | None,
                         conditional: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if client_order_id:
            params["origClientOrderId" if not conditional else "clientOrderId"] = client_order_id
        if conditional:
            params["trigger"] = True
        return self._exchange.fetch_order(order_id, unified, params)

    def _conditional_order(self, order_id: str | None, client_order_id: str | None) -> list[bool]:
        """Where to look for an order: regular, conditional, or both (known ones first)."""
        if not self.capabilities.get("conditional_endpoint"):
            return [False]
        if (order_id and order_id in self._conditional_ids) or (client_order_id and client_order_id in self._conditional_ids):
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
                return self._read("fetch_order", lambda c=conditional: self._order_result(
                    self._fetch_order_raw(unified, None if cid else order_id, cid, c)))
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
            params: dict[str, Any] = {"trigger": True} if conditional else {}
            if cid:
                params["clientOrderId" if conditional else "origClientOrderId"] = cid
            try:
                order = self._read("cancel_order", lambda p=params: self._exchange.cancel_order(
                    None if cid else order_id, unified, p))
            except OrderNotFound as exc:
                error = exc
                continue
            info = order.get("info") or {}
            if _first(info, "status", "algoStatus") is None:  # a bare acknowledgement: read it back
                ref = str(order.get("id") or order_id or "")
                return self._read("fetch_order", lambda c=conditional, r=ref: self._order_result(
                    self._fetch_order_raw(unified, r or None, None if r else cid, c)))
            return self._order_result(order)
        assert error is not None
        raise error

    def get_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        unified = self._resolve(symbol)[1] if symbol else None
        if symbol is None:
            self._ensure_markets()
        results = self._read("fetch_open_orders", lambda: [
            self._order_result(o) for o in self._exchange.fetch_open_orders(unified)])
        if self.capabilities.get("conditional_endpoint"):
            results += self._read("fetch_open_orders", lambda: [
                self._order_result(o) for o in self._exchange.fetch_open_orders(unified, params={"trigger": True})])
        return results

    def _order_result(self, order: Mapping[str, Any], *, position_side: PositionSide | None = None) -> OrderResult:
        info = order.get("info") or {}
        side = OrderSide(str(_first(info, "side") or order.get("side")).upper())
        raw_type = str(_first(info, "type", "orderType") or "").upper()
        if raw_type in OrderType.__members__:
            order_type = OrderType(raw_type)
        else:
            order_type = OrderType.LIMIT if order.get("type") == "limit" else OrderType.MARKET
        raw_status = _first(info, "status", "algoStatus")
        status = self.STATUS_MAP.get(str(raw_status)) or self.UNIFIED_STATUS.get(str(order.get("status")),
                                                                                 OrderStatus.NEW)
        quantity = _dec(_first(info, "origQty", "quantity")) or _dec(order.get("amount")) or D0
        executed = _dec(_first(info, "executedQty")) or _dec(order.get("filled")) or D0
        if "algoId" in info and status == OrderStatus.FILLED and executed == 0:
            executed = quantity  # a finished conditional order executed through its child order
        reduce_only = bool(info.get("reduceOnly") if "reduceOnly" in info else order.get("reduceOnly"))
        if position_side is None:
            raw_side = str(info.get("positionSide") or "").upper()
            if raw_side in PositionSide.__members__:
                position_side = PositionSide(raw_side)
            else:  # one-way mode: a reducing sell closes a long, an opening buy makes one
                position_side = PositionSide.LONG if (side == OrderSide.BUY) != reduce_only else PositionSide.SHORT
        timestamp = order.get("lastUpdateTimestamp") or order.get("timestamp") or _first(info, "updateTime", "time")
        return OrderResult(
            symbol=self._internal(_first(info, "symbol"), order.get("symbol")),
            order_id=str(order.get("id") or _first(info, "orderId", "algoId") or ""),
            client_order_id=str(order.get("clientOrderId") or _first(info, "clientOrderId", "clientAlgoId") or ""),
            side=side, order_type=order_type, quantity=quantity,
            price=_nz(info["price"]) if "price" in info else _nz(order.get("price")),
            executed_quantity=executed,
            executed_price=_nz(_first(info, "avgPrice")) or _nz(order.get("average")) or _nz(_first(info, "actualPrice")),
            status=status, fees=_dec((order.get("fee") or {}).get("cost")) or D0,
            timestamp=ms_to_datetime(timestamp), exchange=self.spec.venue, raw_data=dict(info),
            position_side=position_side, reduce_only=reduce_only,
            stop_price=_nz(_first(info, "stopPrice", "triggerPrice")) or _nz(order.get("triggerPrice")),
        )

    # ------------------------------------------------------------------ account
    def get_balance(self) -> Balance:
        self._ensure_markets()
        return self._read("fetch_balance", lambda: self._balance(self._exchange.fetch_balance()))

    def _balance(self, balance: Mapping[str, Any]) -> Balance:
        info = balance.get("info") or {}
        asset = next((a for a in info.get("assets") or [] if a.get("asset") == self.QUOTE), {})
        unified = balance.get(self.QUOTE) or {}

        def pick(asset_key: str, total_key: str, fallback: Any) -> Decimal:
            value = _dec(asset.get(asset_key))
            if value is None:
                value = _dec(info.get(total_key))
            return value if value is not None else (_dec(fallback) or D0)

        wallet = pick("walletBalance", "totalWalletBalance", unified.get("total"))
        upnl = pick("unrealizedProfit", "totalUnrealizedProfit", D0)
        return Balance(
            total_balance=wallet, available_balance=pick("availableBalance", "availableBalance", unified.get("free")),
            margin_balance=pick("marginBalance", "totalMarginBalance", wallet + upnl), unrealized_pnl=upnl,
            currency=self.QUOTE, timestamp=ms_to_datetime(balance.get("timestamp") or asset.get("updateTime")),
            exchange=self.spec.venue,
            margin_used=pick("initialMargin", "totalInitialMargin", unified.get("used")),
            maintenance_margin=pick("maintMargin", "totalMaintMargin", D0),
            can_trade=bool(info.get("canTrade", True)), account_type="futures", raw_data=dict(info),
        )

    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        unified = [self._resolve(s)[1] for s in symbols] if symbols else None
        self._ensure_markets()
        return self._read("fetch_positions", lambda: [
            p for p in (self._position(raw) for raw in self._exchange.fetch_positions(unified)) if p is not None])

    def _position(self, raw: Mapping[str, Any]) -> Position | None:
        info = raw.get("info") or {}
        amount = _dec(info.get("positionAmt"))
        if amount is None:
            contracts = _dec(raw.get("contracts")) or D0
            amount = contracts if raw.get("side") != "short" else -contracts
        if amount == 0:
            return None
        venue_symbol = _first(info, "symbol")
        notional = abs(_dec(_first(info, "notional")) or _dec(raw.get("notional")) or D0)
        isolated = raw.get("marginMode") == "isolated"
        margin = (_nz(_first(info, "isolatedWallet")) if isolated else None) \
            or _dec(_first(info, "positionInitialMargin", "initialMargin")) or _dec(raw.get("initialMargin")) or D0
        leverage = _nz(_first(info, "leverage")) or _nz(raw.get("leverage"))
        if leverage is None and margin:
            leverage = (notional / margin).quantize(Decimal("1"))
        if leverage is None:
            leverage = Decimal(self._leverage_set.get(str(venue_symbol), 1))
        upnl = _dec(_first(info, "unRealizedProfit", "unrealizedProfit")) or _dec(raw.get("unrealizedPnl")) or D0
        return Position(
            symbol=self._internal(venue_symbol, raw.get("symbol")),
            side=PositionSide.LONG if amount > 0 else PositionSide.SHORT, size=abs(amount),
            entry_price=_dec(_first(info, "entryPrice")) or _dec(raw.get("entryPrice")) or D0,
            mark_price=_dec(_first(info, "markPrice")) or _dec(raw.get("markPrice")) or D0,
            unrealized_pnl=upnl,
            percentage_pnl=(upnl / margin * 100).quantize(Decimal("0.01")) if margin else D0,
            leverage=leverage, margin=margin, timestamp=ms_to_datetime(raw.get("timestamp")),
            exchange=self.spec.venue, position_id=None,
            liquidation_price=_nz(_first(info, "liquidationPrice")) or _nz(raw.get("liquidationPrice")),
            margin_type="isolated" if isolated else "cross", raw_data=dict(info),
        )

    def set_leverage(self, symbol: str, leverage: int) -> None:
        venue_symbol, unified = self._resolve(symbol)
        maximum = self.symbol_rules(symbol).max_leverage
        if not 1 <= int(leverage) <= maximum:
            raise InvalidOrderError(f"Leverage {leverage} for {symbol} is outside 1..{maximum}",
                                    venue=self.spec.venue)
        self._read("set_leverage", lambda: self._exchange.set_leverage(int(leverage), unified))
        self._leverage_set[venue_symbol] = int(leverage)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        venue_symbol, unified = self._resolve(symbol)
        mode = MarginMode(mode)

        def change() -> None:
            try:
                self._exchange.set_margin_mode(mode.value, unified)
            except ccxt.MarginModeAlreadySet:
                return  # "No need to change margin type": already so

        try:
            self._read("set_margin_mode", change)
        except InvalidOrderError as exc:
            if exc.code not in self.MARGIN_ALREADY_SET_CODES:
                raise
        self._margin_mode_set[venue_symbol] = mode

    # ------------------------------------------------------------------ market data
    def get_ticker(self, symbol: str) -> Ticker:
        _, unified = self._resolve(symbol)
        ticker = self._read("fetch_ticker", lambda: self._exchange.fetch_ticker(unified))
        info = ticker.get("info") or {}
        funding = self._read("fetch_funding_rate", lambda: self._exchange.fetch_funding_rate(unified))
        finfo = funding.get("info") or {}
        bid = _nz(_first(info, "bidPrice")) or _nz(ticker.get("bid"))
        ask = _nz(_first(info, "askPrice")) or _nz(ticker.get("ask"))
        if (bid is None or ask is None) and self.capabilities.get("book_ticker"):
            book = self._read("fetch_bids_asks", lambda: self._exchange.fetch_bids_asks([unified]))
            entry = book.get(unified) or {}
            binfo = entry.get("info") or {}
            bid = _nz(_first(binfo, "bidPrice")) or _nz(entry.get("bid"))
            ask = _nz(_first(binfo, "askPrice")) or _nz(entry.get("ask"))
        last = _dec(_first(info, "lastPrice")) or _dec(ticker.get("last"))
        if last is None:
            raise ExchangeUnavailable(f"{self.spec.venue}: no last price for {symbol}", venue=self.spec.venue)
        return Ticker(
            symbol=symbol, last=last, mark=_nz(_first(finfo, "markPrice")) or _nz(funding.get("markPrice")),
            bid=bid, ask=ask,
            change_24h_percent=_dec(_first(info, "priceChangePercent")) or _dec(ticker.get("percentage")),
            funding_rate=_dec(_first(finfo, "lastFundingRate")) or _dec(funding.get("fundingRate")),
            timestamp=ms_to_datetime(ticker.get("timestamp")), exchange=self.spec.venue,
        )

    def get_market_price(self, symbol: str) -> Decimal:
        """The mark price: one light call (premiumIndex on Binance) instead of a full ticker."""
        _, unified = self._resolve(symbol)
        funding = self._read("fetch_funding_rate", lambda: self._exchange.fetch_funding_rate(unified))
        mark = _nz(_first(funding.get("info") or {}, "markPrice")) or _nz(funding.get("markPrice"))
        return mark if mark is not None else super().get_market_price(symbol)

    def get_candles(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> list[Candle]:
        _, unified = self._resolve(symbol)
        if timeframe not in (self._exchange.timeframes or {}):
            raise InvalidOrderError(f"{self.spec.venue} has no {timeframe!r} candles", venue=self.spec.venue)
        rows = self._read("fetch_ohlcv", lambda: self._exchange.fetch_ohlcv(unified, timeframe, limit=int(limit)))
        return [Candle(timestamp=ms_to_datetime(row[0]), open=_dec(row[1]), high=_dec(row[2]), low=_dec(row[3]),
                       close=_dec(row[4]), volume=_dec(row[5]) or D0) for row in rows]
