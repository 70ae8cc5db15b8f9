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

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any, ClassVar, TypeVar

import eth_account
import requests
from hyperliquid.api import API
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.types import Cloid

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    D0,
    Balance,
    BaseTrader,
    MarginMode,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    SymbolRules,
    VenueSpec,
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
from exchanges.adapters.hyperliquid.account import AccountAndMarketData
from exchanges.adapters.hyperliquid.reads import OrderReads
from exchanges.adapters.hyperliquid.wire import (
    _ADDRESS,
    _KEY,
    PERP_MAX_DECIMALS,
    TIF,
    TRIGGER_SLIPPAGE,
    _d,
    _KnownCloids,
    _Leg,
    _scrub,
    _SignerNonces,
    cloid_for,
    round_price,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
T = TypeVar("T")


class HyperliquidTrader(OrderReads, AccountAndMarketData, BaseTrader):
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

    def shutdown(self) -> None:
        with self._clients_lock:
            clients, self._info, self._exchange = (self._info, self._exchange), None, None
        for client in clients:
            if client is not None:
                client.session.close()
