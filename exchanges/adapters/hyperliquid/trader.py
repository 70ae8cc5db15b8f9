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
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import eth_account
import requests
from hyperliquid.api import API
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    Balance,
    BaseTrader,
    MarginMode,
    SymbolRules,
    VenueSpec,
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
from exchanges.adapters.hyperliquid.orders import OrderPlacement
from exchanges.adapters.hyperliquid.reads import OrderReads
from exchanges.adapters.hyperliquid.wire import (
    _ADDRESS,
    _KEY,
    PERP_MAX_DECIMALS,
    _KnownCloids,
    _scrub,
    _SignerNonces,
    round_price,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
T = TypeVar("T")


class HyperliquidTrader(OrderPlacement, OrderReads, AccountAndMarketData, BaseTrader):
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

    def shutdown(self) -> None:
        with self._clients_lock:
            clients, self._info, self._exchange = (self._info, self._exchange), None, None
        for client in clients:
            if client is not None:
                client.session.close()
