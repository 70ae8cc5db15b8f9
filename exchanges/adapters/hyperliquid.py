"""Hyperliquid perpetuals through the official hyperliquid-python-sdk. Django-free.

Signing is done by an agent ("API") wallet for the main account: ``private_key`` is the
agent's key, ``account_address`` the account it trades for. Before the first signed
action the adapter asks the venue (``userRole``) whom the agent belongs to, so a key
approved for another account can never trade there by mistake.

Orders: a market order is an IOC limit order at the mid price moved by the configured
``parameters.slippage_tolerance``, rounded towards the mid so it never exceeds the
tolerance. Prices follow Hyperliquid's rule (at most 5 significant figures and
``6 - szDecimals`` decimals; integers always allowed), sizes ``szDecimals``. Every order
carries a cloid derived from our client order id (``cloid_for``), so a lost answer is
settled by looking the order up, never by sending it again. Stop-loss / take-profit
attached to an entry go in the same signed action (grouping ``normalTpsl``): the venue
activates them when the entry fills.

The SDK speaks floats; what this adapter returns is built from the venue's JSON strings
as Decimals. Hyperliquid margins in USDC, so balances and fees are in USDC.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar

import eth_account
import requests
from hyperliquid.api import API
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.signing import float_to_wire
from hyperliquid.utils.types import Cloid

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
    SymbolRules,
    Ticker,
    VenueSpec,
    ms_to_datetime,
    utcnow,
)
from exchanges.adapters.errors import (
    AuthenticationError,
    BadPrecision,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrderError,
    NetworkError,
    OrderNotFound,
    PermissionDenied,
    RateLimited,
    UnknownSymbol,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
T = TypeVar("T")

PERP_MAX_DECIMALS = 6
PRICE_SIG_FIGS = 5
# A triggered stop executes as a market order bounded by this limit; wide on purpose
# (as the venue's own front end does), so a fast market does not leave a stop unfilled.
TRIGGER_SLIPPAGE = Decimal("0.10")
TIF = {"GTC": "Gtc", "IOC": "Ioc", "ALO": "Alo", "POST_ONLY": "Alo", "GTX": "Alo"}
INTERVALS_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000,
                "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
                "1M": 2_592_000_000}
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_LONG_HEX = re.compile(r"(0x)?[0-9a-fA-F]{64,}")


class _SignerNonces:
    """The venue refuses a nonce twice per signer, and the SDK's nonce is the time in ms:
    every action one signer signs in this process takes this lock and a fresh millisecond,
    whichever trader instance (and thread) sends it."""

    _registry: dict[str, _SignerNonces] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_ms = 0

    @classmethod
    def of(cls, signer: str) -> _SignerNonces:
        with cls._registry_lock:
            found = cls._registry.get(signer)
            if found is None:
                found = cls._registry[signer] = cls()
            return found


class _KnownCloids:
    """Bounded memory of what this (long-lived) trader sent: only to show our client id,
    order type and position side on a venue listing sooner. Nothing depends on it: every
    result carries the cloid (``venue_client_order_id``) and the trading layer maps it."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[str, tuple[str, PositionSide, OrderType]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def remember(self, cloid: str, value: tuple[str, PositionSide, OrderType]) -> None:
        with self._lock:
            self._items[cloid] = value
            self._items.move_to_end(cloid)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, cloid: str) -> tuple[str, PositionSide, OrderType] | None:
        with self._lock:
            return self._items.get(cloid)


def cloid_for(client_order_id: str) -> str:
    """Our client order id -> the venue's 16-byte cloid (0x + 32 hex), always the same."""
    return "0x" + hashlib.sha256(client_order_id.encode()).digest()[:16].hex()


def round_price(price: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Hyperliquid's perp price rule: <= 5 significant figures and <= 6 - szDecimals
    decimals; an integer price is always valid."""
    if price <= 0:
        raise BadPrecision(f"Price {price} must be positive", venue="hyperliquid")
    exponent = min(0, max(price.adjusted() - (PRICE_SIG_FIGS - 1), -(PERP_MAX_DECIMALS - sz_decimals)))
    rounded = price.quantize(Decimal(1).scaleb(exponent), rounding=rounding)
    if rounded <= 0:
        raise BadPrecision(f"Price {price} rounds to zero", venue="hyperliquid")
    return rounded


def _d(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ExchangeUnavailable(f"hyperliquid: not a number in the response: {str(value)[:40]!r}",
                                  venue="hyperliquid") from None


def _plain(value: Decimal) -> Decimal:
    """A computed Decimal without exponent notation (65000, not 6.500E+4)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _scrub(text: Any) -> str:
    """Venue text for our messages: no key- or signature-length hex, bounded length."""
    return _LONG_HEX.sub("0x[redacted]", str(text))[:300]


@dataclass(frozen=True)
class _Leg:
    """One order of a signed order action (an entry, or an attached stop/target)."""

    client_order_id: str
    cloid: str
    order_type: OrderType
    is_buy: bool
    quantity: Decimal
    limit_px: Decimal
    trigger_px: Decimal | None
    reduce_only: bool
    tif: str | None
    position_side: PositionSide

    @property
    def side(self) -> OrderSide:
        return OrderSide.BUY if self.is_buy else OrderSide.SELL

    def check_wire(self) -> None:
        """The SDK refuses (ValueError) a float that its 8-decimal wire form would round."""
        for value in (self.quantity, self.limit_px, self.trigger_px):
            if value is None:
                continue
            try:
                float_to_wire(float(value))
            except ValueError:
                raise BadPrecision(f"{value} cannot be sent exactly to hyperliquid", venue="hyperliquid") from None

    def sdk_request(self, coin: str) -> dict[str, Any]:
        if self.trigger_px is not None:
            tpsl = "sl" if self.order_type == OrderType.STOP_MARKET else "tp"
            order_type: dict[str, Any] = {"trigger": {"triggerPx": float(self.trigger_px),
                                                      "isMarket": True, "tpsl": tpsl}}
        else:
            order_type = {"limit": {"tif": self.tif}}
        return {"coin": coin, "is_buy": self.is_buy, "sz": float(self.quantity),
                "limit_px": float(self.limit_px), "order_type": order_type,
                "reduce_only": self.reduce_only, "cloid": Cloid(self.cloid)}


class HyperliquidTrader(BaseTrader):
    CAPABILITIES: ClassVar[dict[str, Any]] = {
        "supports_attached_tp_sl": True,  # normalTpsl grouping: entry and brackets in one action
        "supports_reduce_only": True,
        "has_user_stream": True,
    }

    def __init__(self, *, spec: VenueSpec, credentials: Credentials,
                 runtime: AdapterRuntime | None = None) -> None:
        super().__init__(spec=spec, credentials=credentials, runtime=runtime or AdapterRuntime())
        config = spec.config
        rest = (config.get("network") or {}).get("rest_api") or {}
        url = rest.get("testnet") if spec.testnet else rest.get("production")
        if not url:
            raise ExchangeUnavailable("hyperliquid: no REST URL configured", venue=spec.venue)
        # The SDK picks mainnet signing by comparing with its constant, so no trailing slash.
        self.base_url = str(url).rstrip("/")
        self.timeout = float(rest.get("timeout", 15000)) / 1000.0
        params = config.get("parameters") or {}
        self.slippage = Decimal(str(params.get("slippage_tolerance", "0.005")))
        self.cross_margin_only = bool(params.get("cross_margin_only", False))
        trading = config.get("trading") or {}
        self._default_mode = MarginMode(trading.get("margin_mode", "cross"))
        self._leverage_cfg = trading.get("leverage") or {}
        self._min_notional = Decimal(str((trading.get("position_sizing") or {}).get("min_notional", 10)))

        key = credentials.reveal("private_key").strip()
        account = credentials.reveal("account_address").strip()
        if not _KEY.match(key):
            raise AuthenticationError("hyperliquid: private_key must be 32 bytes of hex (0x + 64 hex)",
                                      venue=spec.venue)
        try:
            self._wallet = eth_account.Account.from_key(key)
        except Exception:  # noqa: BLE001 - whatever it says could quote the key
            raise AuthenticationError("hyperliquid: private_key is not a valid key", venue=spec.venue) from None
        if account and not _ADDRESS.match(account):
            raise AuthenticationError("hyperliquid: account_address must be 0x + 40 hex", venue=spec.venue)
        self.account_address = (account or self._wallet.address).lower()
        self.agent_address = self._wallet.address.lower()

        self._guard = Guard(self.runtime, venue=spec.venue, account_ref=spec.account_ref,
                            venue_config=dict(config))
        # Long-lived (pooled per account): meta/spotMeta, the signer check and the leverage
        # and margin mode applied are fetched or sent once and reused, from several threads.
        self._info: Info | None = None
        self._exchange: Exchange | None = None
        self._assets: dict[str, dict[str, Any]] = {}
        self._clients_lock = threading.Lock()
        self._signer_checked = False
        self._signer_lock = threading.Lock()
        self._nonces = _SignerNonces.of(self.agent_address)
        self._settings_lock = threading.RLock()
        self._leverage_set: dict[str, tuple[int, bool]] = {}
        self._margin_mode: dict[str, MarginMode] = {}
        self._known = _KnownCloids()

    # ================================================================ plumbing
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One SDK call with its errors mapped onto ours."""
        venue = self.spec.venue
        try:
            result = fn(*args, **kwargs)
        except requests.exceptions.Timeout:
            raise NetworkError(f"{venue}: request timed out after {self.timeout:g}s", venue=venue) from None
        except requests.exceptions.RequestException as exc:
            raise NetworkError(f"{venue}: connection failed ({type(exc).__name__})", venue=venue) from None
        except ClientError as exc:
            if exc.status_code == 429:
                raise RateLimited(f"{venue}: rate limited (HTTP 429)", venue=venue, code="429",
                                  retry_after=self._retry_after(exc)) from None
            raise self._venue_error(exc.error_message or f"HTTP {exc.status_code}",
                                    default=InvalidOrderError, code=str(exc.status_code)) from None
        except ServerError as exc:
            raise ExchangeUnavailable(f"{venue}: server error (HTTP {exc.status_code})", venue=venue,
                                      code=str(exc.status_code)) from None
        except (KeyError, TypeError, ValueError) as exc:  # the SDK choking on a reply's shape
            raise ExchangeUnavailable(f"{venue}: malformed response ({type(exc).__name__})",
                                      venue=venue) from None
        if isinstance(result, dict) and str(result.get("error", "")).startswith("Could not parse JSON"):
            raise ExchangeUnavailable(f"{venue}: malformed response (not JSON)", venue=venue)
        return result

    @staticmethod
    def _retry_after(exc: ClientError) -> float | None:
        # The SDK puts the headers in ``header`` or, for a body that is not an error
        # object, in ``error_data``.
        for headers in (exc.header, exc.error_data):
            try:
                return float(headers["Retry-After"])
            except (KeyError, TypeError, ValueError):
                continue
        return None

    def _venue_error(self, message: Any, *, default: type[ExchangeError] = InvalidOrderError,
                     code: str | None = None) -> ExchangeError:
        """Map the venue's words onto our error classes."""
        text = _scrub(message)
        low = text.lower()
        venue = self.spec.venue
        cls: type[ExchangeError] = default
        if "does not exist" in low and ("wallet" in low or "user" in low):
            cls, code = AuthenticationError, code or "agent_unknown"
        elif "signature" in low:
            cls = AuthenticationError
        elif "vault" in low or "not authorized" in low or "unauthorized" in low:
            cls = PermissionDenied
        elif "insufficient" in low:
            cls = InsufficientFunds
        elif "duplicate" in low and "cloid" in low:
            cls, code = InvalidOrderError, "duplicate_cloid"
        elif "invalid size" in low or "invalid price" in low or "tick size" in low or "significant" in low:
            cls = BadPrecision
        elif "asset" in low and ("invalid asset" in low or "unknown asset" in low or "not found" in low):
            cls = UnknownSymbol
        elif "never placed, already canceled, or filled" in low or "unknownoid" in low:
            cls = OrderNotFound
        elif "too many" in low or "rate limit" in low:
            return RateLimited(f"{venue}: {text}", venue=venue, code=code)
        elif "nonce" in low:
            cls = ExchangeUnavailable
        return cls(f"{venue}: {text}", venue=venue, code=code)

    def _read(self, fn: Callable[[], T]) -> T:
        return self._guard.read(fn)

    def _clients(self) -> tuple[Info, Exchange]:
        """Build the SDK's Info and Exchange once, from one fetch of the venue's metadata."""
        info, exchange = self._info, self._exchange
        if info is not None and exchange is not None:
            return info, exchange
        with self._clients_lock:
            if self._info is not None and self._exchange is not None:
                return self._info, self._exchange
            def build() -> tuple[Info, Exchange]:
                api = API(self.base_url, self.timeout)
                try:
                    spot_meta = self._call(api.post, "/info", {"type": "spotMeta"})
                    meta = self._call(api.post, "/info", {"type": "meta", "dex": ""})
                finally:
                    api.session.close()
                if not isinstance(meta, dict) or not isinstance(meta.get("universe"), list) \
                        or not isinstance(spot_meta, dict):
                    raise ExchangeUnavailable(f"{self.spec.venue}: malformed meta", venue=self.spec.venue)
                info = self._call(Info, self.base_url, skip_ws=True, meta=meta, spot_meta=spot_meta,
                                  timeout=self.timeout)
                exchange = self._call(Exchange, self._wallet, self.base_url, meta=meta, spot_meta=spot_meta,
                                      account_address=self.account_address, timeout=self.timeout)
                exchange.info.session.close()
                exchange.info = info
                self._assets = {a["name"]: dict(a, index=i) for i, a in enumerate(meta["universe"])}
                return info, exchange

            built_info, built_exchange = self._read(build)
            self._info, self._exchange = built_info, built_exchange
            return built_info, built_exchange

    def _asset(self, coin: str) -> dict[str, Any]:
        self._clients()
        try:
            return self._assets[coin]
        except KeyError:
            raise UnknownSymbol(f"{coin} is not listed on {self.spec.venue}", venue=self.spec.venue) from None

    def _coin(self, symbol: str) -> tuple[str, dict[str, Any]]:
        coin = self.normalize_symbol(symbol)
        return coin, self._asset(coin)

    def _signed(self, action: Callable[[Exchange], T]) -> T:
        """A signed action. The SDK's nonce is the time in ms and the venue refuses a
        nonce twice, so two actions of this signer never share a millisecond (the lock is
        the signer's, shared by every trader instance in the process)."""
        _, exchange = self._clients()
        nonces = self._nonces
        with nonces.lock:
            while int(time.time() * 1000) <= nonces.last_ms:
                time.sleep(0.0005)
            try:
                return self._call(action, exchange)
            finally:
                nonces.last_ms = int(time.time() * 1000)

    def check_credentials(self) -> Balance:
        """The balance is public by address: also prove the agent key is approved for it."""
        self._ensure_signer()
        return self.get_balance()

    def _ensure_signer(self) -> None:
        """Refuse to sign unless the key is the account's own or an agent approved for it."""
        if self._signer_checked:
            return
        with self._signer_lock:
            if not self._signer_checked:
                self._check_signer()

    def _check_signer(self) -> None:
        info, _ = self._clients()
        if self.agent_address != self.account_address:
            role = self._read(lambda: self._call(info.user_role, self.agent_address))
            if not isinstance(role, dict) or "role" not in role:
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed userRole answer", venue=self.spec.venue)
            owner = str(((role.get("data") or {}).get("user")) or "").lower()
            if role["role"] != "agent":
                raise AuthenticationError(
                    f"{self.spec.venue}: the API wallet {self.agent_address} is not an approved agent "
                    f"(role: {_scrub(role['role'])}); approve it for {self.account_address}",
                    venue=self.spec.venue, code="agent_unknown")
            if owner != self.account_address:
                raise AuthenticationError(
                    f"{self.spec.venue}: the API wallet {self.agent_address} is approved for another "
                    f"account, not {self.account_address}", venue=self.spec.venue, code="agent_mismatch")
        self._signer_checked = True

    @staticmethod
    def _statuses(response: Any, venue_error: Callable[..., ExchangeError], venue: str) -> list[Any]:
        if not isinstance(response, dict):
            raise ExchangeUnavailable(f"{venue}: malformed answer to an action", venue=venue)
        if response.get("status") == "err":
            raise venue_error(response.get("response"))
        try:
            statuses = response["response"]["data"]["statuses"] if response["status"] == "ok" else None
        except (KeyError, TypeError):
            statuses = None
        if not isinstance(statuses, list) or not statuses:
            raise ExchangeUnavailable(f"{venue}: malformed answer to an action", venue=venue)
        return statuses

    # ================================================================ symbols & precision
    def symbol_rules(self, symbol: str) -> SymbolRules:
        coin, asset = self._coin(symbol)
        sz_decimals = int(asset["szDecimals"])
        step = Decimal(1).scaleb(-sz_decimals)
        caps = [int(asset.get("maxLeverage") or 1)]
        for cap in (self._leverage_cfg.get("maximum"), (self._leverage_cfg.get("per_symbol") or {}).get(coin)):
            if cap:
                caps.append(int(cap))
        return SymbolRules(symbol=symbol, quantity_step=step,
                           price_tick=Decimal(1).scaleb(-(PERP_MAX_DECIMALS - sz_decimals)),
                           min_quantity=step, min_notional=self._min_notional, max_leverage=min(caps))

    def format_price(self, symbol: str, price: Decimal) -> Decimal:
        _, asset = self._coin(symbol)
        return round_price(price, int(asset["szDecimals"]))

    # ================================================================ orders
    def place_order(self, request: OrderRequest) -> OrderResult:
        coin, asset = self._coin(request.symbol)
        szd = int(asset["szDecimals"])
        quantity = self.format_quantity(request.symbol, request.quantity)
        is_buy = request.side == OrderSide.BUY
        toward_mid = ROUND_DOWN if is_buy else ROUND_UP  # never pay more than asked
        trigger_px: Decimal | None = None
        tif: str | None = None
        if request.order_type == OrderType.MARKET:
            reference = self._mid(coin)
            limit_px = round_price(reference * (1 + self.slippage if is_buy else 1 - self.slippage),
                                   szd, toward_mid)
            tif = "Ioc"
        elif request.order_type == OrderType.LIMIT:
            if request.price is None:
                raise InvalidOrderError("A LIMIT order needs a price", venue=self.spec.venue)
            tif = TIF.get(request.time_in_force.upper())
            if tif is None:
                raise InvalidOrderError(f"Time in force {request.time_in_force!r} is not supported "
                                        f"on {self.spec.venue} (GTC, IOC, ALO)", venue=self.spec.venue)
            reference = limit_px = round_price(request.price, szd, toward_mid)
        else:
            if request.stop_price is None:
                raise InvalidOrderError(f"A {request.order_type} order needs a stop_price", venue=self.spec.venue)
            trigger_px = round_price(request.stop_price, szd)
            limit_px = self._trigger_limit(trigger_px, is_buy, szd)
            reference = trigger_px

        entry = _Leg(request.client_order_id, cloid_for(request.client_order_id), request.order_type, is_buy,
                     quantity, limit_px, trigger_px, request.reduce_only, tif, request.position_side)
        legs = [entry]
        wants_brackets = request.stop_loss is not None or request.take_profit is not None
        if wants_brackets and request.is_opening and not request.reduce_only \
                and request.order_type in (OrderType.MARKET, OrderType.LIMIT):
            legs += self._bracket_legs(request, entry, reference, szd)

        for leg in legs:
            leg.check_wire()
        if request.leverage:
            self.set_leverage(request.symbol, int(request.leverage))
        self._ensure_signer()
        for leg in legs:
            self._known.remember(leg.cloid, (leg.client_order_id, leg.position_side, leg.order_type))
        grouping = "normalTpsl" if len(legs) > 1 else "na"
        orders = [leg.sdk_request(coin) for leg in legs]

        def send() -> OrderResult:
            response = self._signed(lambda ex: ex.bulk_orders(orders, grouping=grouping))
            statuses = self._statuses(response, self._venue_error, self.spec.venue)
            if len(statuses) != len(legs):
                raise ExchangeUnavailable(f"{self.spec.venue}: answer has {len(statuses)} statuses for "
                                          f"{len(legs)} orders", venue=self.spec.venue)
            first = statuses[0]
            if isinstance(first, dict) and "error" in first:
                error = self._venue_error(first["error"])
                if error.code == "duplicate_cloid":
                    # Sent before (another attempt or process): that order is this order.
                    return lookup()
                raise error
            result = self._result_from_status(request.symbol, entry, first)
            attached = tuple(self._child_result(request.symbol, leg, status)
                             for leg, status in zip(legs[1:], statuses[1:], strict=True))
            return replace(result, attached=attached)

        def lookup() -> OrderResult:
            result = self._query(request.symbol, coin, cloid=entry.cloid, retry=False)
            attached = []
            for leg in legs[1:]:
                try:
                    attached.append(self._query(request.symbol, coin, cloid=leg.cloid, retry=False))
                except OrderNotFound:  # a child still waiting for its entry to fill
                    attached.append(self._leg_result(request.symbol, leg, "", OrderStatus.NEW,
                                                     {"status": "waitingForFill"}))
            return replace(result, attached=tuple(attached))

        result = self._guard.submit(send, lookup)
        return self._with_fills(result)

    def _trigger_limit(self, trigger: Decimal, is_buy: bool, szd: int) -> Decimal:
        bound = trigger * (1 + TRIGGER_SLIPPAGE) if is_buy else trigger * (1 - TRIGGER_SLIPPAGE)
        return round_price(bound, szd, ROUND_DOWN if is_buy else ROUND_UP)

    def _bracket_legs(self, request: OrderRequest, entry: _Leg, reference: Decimal, szd: int) -> list[_Leg]:
        legs = []
        long = entry.is_buy
        for kind, price in ((OrderType.STOP_MARKET, request.stop_loss),
                            (OrderType.TAKE_PROFIT_MARKET, request.take_profit)):
            if price is None:
                continue
            trigger = round_price(price, szd)
            below = kind == OrderType.STOP_MARKET if long else kind == OrderType.TAKE_PROFIT_MARKET
            if (trigger >= reference) if below else (trigger <= reference):
                raise InvalidOrderError(
                    f"{'Stop-loss' if kind == OrderType.STOP_MARKET else 'Take-profit'} {trigger} is on the "
                    f"wrong side of the entry price {reference}", venue=self.spec.venue)
            suffix = "sl" if kind == OrderType.STOP_MARKET else "tp"
            coid = f"{request.client_order_id}:{suffix}"
            legs.append(_Leg(coid, cloid_for(coid), kind, not long, entry.quantity,
                             self._trigger_limit(trigger, not long, szd), trigger, True, None,
                             request.position_side))
        return legs

    def _mid(self, coin: str) -> Decimal:
        info, _ = self._clients()

        def read() -> Decimal:
            mids = self._call(info.all_mids)
            value = _d(mids.get(coin)) if isinstance(mids, dict) else None
            if value is None or value <= 0:
                raise ExchangeUnavailable(f"{self.spec.venue}: no mid price for {coin}", venue=self.spec.venue)
            return value

        return self._read(read)

    def _leg_result(self, symbol: str, leg: _Leg, order_id: str, status: OrderStatus, raw: dict[str, Any],
                    executed: Decimal = D0, avg_px: Decimal | None = None) -> OrderResult:
        return OrderResult(
            symbol=symbol, order_id=order_id, client_order_id=leg.client_order_id, side=leg.side,
            order_type=leg.order_type, quantity=leg.quantity,
            price=leg.limit_px if leg.order_type != OrderType.MARKET else None,
            executed_quantity=executed, executed_price=avg_px, status=status, fees=D0, timestamp=utcnow(),
            exchange=self.spec.venue, raw_data=raw, position_side=leg.position_side,
            reduce_only=leg.reduce_only, stop_price=leg.trigger_px, fee_currency="USDC",
            venue_client_order_id=leg.cloid)

    def _result_from_status(self, symbol: str, leg: _Leg, status: Any) -> OrderResult:
        venue = self.spec.venue
        raw = {"status": status, "cloid": leg.cloid, "limit_px": str(leg.limit_px)}
        if isinstance(status, dict) and "resting" in status:
            return self._leg_result(symbol, leg, str(status["resting"]["oid"]), OrderStatus.NEW, raw)
        if isinstance(status, dict) and "filled" in status:
            filled = status["filled"]
            size = _d(filled.get("totalSz")) or D0
            if size >= leg.quantity:
                state = OrderStatus.FILLED
            else:  # an IOC's rest is cancelled; a GTC's keeps resting
                state = OrderStatus.EXPIRED if leg.tif == "Ioc" else OrderStatus.PARTIALLY_FILLED
            return self._leg_result(symbol, leg, str(filled["oid"]), state, raw, size, _d(filled.get("avgPx")))
        raise ExchangeUnavailable(f"{venue}: unexpected order status {_scrub(status)[:80]}", venue=venue)

    def _child_result(self, symbol: str, leg: _Leg, status: Any) -> OrderResult:
        """An attached stop/target. Never raises: the entry is placed whatever became of it."""
        raw = {"status": status, "cloid": leg.cloid}
        if isinstance(status, dict) and "error" in status:
            return replace(self._leg_result(symbol, leg, "", OrderStatus.REJECTED, raw),
                           raw_data={**raw, "error": _scrub(status["error"])})
        if isinstance(status, dict) and ("resting" in status or "filled" in status):
            return self._result_from_status(symbol, leg, status)
        # "waitingForTrigger" / "waitingForFill": no oid in the answer; ask for it.
        order_id = ""
        try:
            found = self._read(lambda: self._order_status(self._coin(symbol)[0], leg.cloid))
            if found is not None:
                order_id = str(found["order"]["oid"])
        except ExchangeError as exc:
            logger.info("%s: attached order %s not looked up (%s)", self.spec.venue, leg.cloid, type(exc).__name__)
        return self._leg_result(symbol, leg, order_id, OrderStatus.NEW, raw)

    # ---------------------------------------------------------------- look-ups
    def _order_status(self, coin: str, ref: str | int) -> dict[str, Any] | None:
        """orderStatus by oid or cloid; None when the venue does not know it."""
        info, _ = self._clients()
        if isinstance(ref, str):
            answer = self._call(info.query_order_by_cloid, self.account_address, Cloid(ref))
        else:
            answer = self._call(info.query_order_by_oid, self.account_address, ref)
        if not isinstance(answer, dict) or "status" not in answer:
            raise ExchangeUnavailable(f"{self.spec.venue}: malformed orderStatus answer", venue=self.spec.venue)
        if answer["status"] != "order":
            return None
        try:
            found = answer["order"]
            found["order"]["oid"], found["status"]  # noqa: B018 - shape check
        except (KeyError, TypeError):
            raise ExchangeUnavailable(f"{self.spec.venue}: malformed orderStatus answer",
                                      venue=self.spec.venue) from None
        return found

    def _query(self, symbol: str, coin: str, *, cloid: str | None = None, oid: int | None = None,
               retry: bool = True) -> OrderResult:
        """One order by cloid or oid. ``retry=False`` inside Guard.submit's look-ups, which
        are already paced and counted there."""
        ask = lambda: self._order_status(coin, cloid if cloid is not None else oid)  # noqa: E731
        found = self._read(ask) if retry else ask()
        if found is None:
            raise OrderNotFound(f"{self.spec.venue}: order {cloid or oid} is unknown", venue=self.spec.venue)
        return self._order_from_wire(symbol, found["order"], found.get("status"), found.get("statusTimestamp"))

    def _order_from_wire(self, symbol: str | None, order: dict[str, Any], status: str | None,
                         status_ts: Any = None) -> OrderResult:
        coin = order.get("coin", "")
        cloid = (order.get("cloid") or "").lower()
        is_buy = order.get("side") == "B"
        reduce_only = bool(order.get("reduceOnly"))
        known = self._known.get(cloid)
        orig = _d(order.get("origSz")) or _d(order.get("sz")) or D0
        remaining = _d(order.get("sz")) or D0
        executed = max(D0, orig - remaining)
        kind = str(order.get("orderType") or "Limit")
        if known is not None:
            order_type = known[2]
        elif kind.startswith("Stop"):
            order_type = OrderType.STOP_MARKET
        elif kind.startswith("Take Profit"):
            order_type = OrderType.TAKE_PROFIT_MARKET
        else:
            order_type = OrderType.MARKET if order.get("tif") == "Ioc" else OrderType.LIMIT
        if known is not None:
            position_side = known[1]
        elif reduce_only:
            position_side = PositionSide.SHORT if is_buy else PositionSide.LONG
        else:
            position_side = PositionSide.LONG if is_buy else PositionSide.SHORT
        state = self._map_status(status or "open", executed, orig, order.get("tif"))
        if state == OrderStatus.FILLED and remaining == orig:
            executed = orig  # some answers keep sz at the original size once filled
        trigger = _d(order.get("triggerPx")) if order.get("isTrigger") else None
        return OrderResult(
            symbol=symbol or self.denormalize_symbol(coin), order_id=str(order.get("oid", "")),
            client_order_id=known[0] if known else cloid, side=OrderSide.BUY if is_buy else OrderSide.SELL,
            order_type=order_type, quantity=orig,
            price=None if order_type == OrderType.MARKET else _d(order.get("limitPx")),
            executed_quantity=executed, executed_price=None, status=state, fees=D0,
            timestamp=ms_to_datetime(status_ts or order.get("timestamp")), exchange=self.spec.venue,
            raw_data={"order": order, "status": status}, position_side=position_side,
            reduce_only=reduce_only, stop_price=trigger, fee_currency="USDC", venue_client_order_id=cloid)

    @staticmethod
    def _map_status(status: str, executed: Decimal, orig: Decimal, tif: Any) -> OrderStatus:
        if status in ("open", "triggered"):
            return OrderStatus.PARTIALLY_FILLED if D0 < executed < orig else OrderStatus.NEW
        if status == "filled":
            return OrderStatus.FILLED
        if status == "canceled" or status.endswith("Canceled") or status == "scheduledCancel":
            return OrderStatus.EXPIRED if tif == "Ioc" and executed > 0 else OrderStatus.CANCELLED
        if status == "rejected" or status.endswith("Rejected"):
            return OrderStatus.REJECTED
        return OrderStatus.FAILED

    def _with_fills(self, result: OrderResult) -> OrderResult:
        """Average price, fees and fills from userFills. Best effort: the order stands anyway."""
        if result.executed_quantity <= 0 or not result.order_id:
            return result
        info, _ = self._clients()
        try:
            fills = self._read(lambda: self._call(info.user_fills, self.account_address))
        except ExchangeError as exc:
            logger.info("%s: fills for %s not read (%s)", self.spec.venue, result.order_id, type(exc).__name__)
            return result
        mine = [f for f in fills if isinstance(f, dict) and str(f.get("oid")) == result.order_id] \
            if isinstance(fills, list) else []
        if not mine:
            return result
        infos = tuple(FillInfo(trade_id=str(f.get("tid", "")), quantity=_d(f.get("sz")) or D0,
                               price=_d(f.get("px")) or D0, fee=_d(f.get("fee")) or D0,
                               realized_pnl=_d(f.get("closedPnl")) or D0, timestamp=ms_to_datetime(f.get("time")))
                      for f in sorted(mine, key=lambda f: f.get("time", 0)))
        size = sum((f.quantity for f in infos), D0)
        avg = sum((f.quantity * f.price for f in infos), D0) / size if size else result.executed_price
        return replace(result, fills=infos, fees=sum((f.fee for f in infos), D0),
                       executed_price=avg, executed_quantity=max(result.executed_quantity, size))

    def get_order(self, symbol: str, *, order_id: str | None = None,
                  client_order_id: str | None = None) -> OrderResult:
        coin, _ = self._coin(symbol)
        if client_order_id is not None:
            result = self._query(symbol, coin, cloid=self._cloid_ref(client_order_id))
            if result.client_order_id != client_order_id and not client_order_id.startswith("0x"):
                result = replace(result, client_order_id=client_order_id)
        elif order_id is not None:
            result = self._query(symbol, coin, oid=int(order_id))
        else:
            raise InvalidOrderError("get_order needs order_id or client_order_id", venue=self.spec.venue)
        return self._with_fills(result)

    def venue_client_order_id(self, client_order_id: str) -> str:
        return self._cloid_ref(client_order_id)

    @staticmethod
    def _cloid_ref(client_order_id: str) -> str:
        # A cloid read back from the venue may be passed in as the client order id.
        if re.fullmatch(r"0x[0-9a-fA-F]{32}", client_order_id):
            return client_order_id.lower()
        return cloid_for(client_order_id)

    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderResult:
        coin, _ = self._coin(symbol)
        if order_id is None and client_order_id is None:
            raise InvalidOrderError("cancel_order needs order_id or client_order_id", venue=self.spec.venue)
        self._ensure_signer()
        cloid = self._cloid_ref(client_order_id) if client_order_id is not None else None

        def send() -> None:
            if cloid is not None:
                response = self._signed(lambda ex: ex.cancel_by_cloid(coin, Cloid(cloid)))
            else:
                response = self._signed(lambda ex: ex.cancel(coin, int(order_id)))
            status = self._statuses(response, self._venue_error, self.spec.venue)[0]
            if status != "success":
                raise self._venue_error(status.get("error") if isinstance(status, dict) else status)

        try:
            # A cancel may be repeated safely: a second one is refused as already cancelled.
            self._guard.read(send, kind="orders")
        except OrderNotFound:
            pass  # already cancelled or filled, or unknown: the look-up below tells which
        return self.get_order(symbol, order_id=order_id, client_order_id=client_order_id)

    def get_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        info, _ = self._clients()
        coin = self.normalize_symbol(symbol) if symbol else None

        def read() -> list[dict[str, Any]]:
            rows = self._call(info.frontend_open_orders, self.account_address)
            if not isinstance(rows, list):
                raise ExchangeUnavailable(f"{self.spec.venue}: malformed open orders", venue=self.spec.venue)
            return rows

        return [self._order_from_wire(None, row, "open") for row in self._read(read)
                if coin is None or row.get("coin") == coin]

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

    def shutdown(self) -> None:
        with self._clients_lock:
            clients, self._info, self._exchange = (self._info, self._exchange), None, None
        for client in clients:
            if client is not None:
                client.session.close()
