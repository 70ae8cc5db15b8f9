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

This module builds the trader and calls the venue; what it does is in its mixins:
``orders`` (placing), ``reads`` (orders looked up, cancelled, listed), ``account``
(balance, positions, leverage, margin mode, market data), ``markets`` and ``unified``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import ccxt

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    BaseTrader,
    MarginMode,
    VenueSpec,
)
from exchanges.adapters.ccxt.account import AccountAndMarketData
from exchanges.adapters.ccxt.errors import map_error, wire_state
from exchanges.adapters.ccxt.markets import MarketsMixin
from exchanges.adapters.ccxt.orders import OrderPlacement
from exchanges.adapters.ccxt.reads import OrderReads
from exchanges.adapters.ccxt.unified import UnifiedReads
from exchanges.adapters.ccxt.wire import _exchange_class, _wire_logger
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    OperationalError,
)
from exchanges.adapters.resilience import AdapterRuntime, Guard

logger = logging.getLogger(__name__)
T = TypeVar("T")


class CcxtTrader(OrderPlacement, OrderReads, AccountAndMarketData, MarketsMixin, UnifiedReads, BaseTrader):
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
            # One throttle per call path: every call of this trader goes through the Guard,
            # whose rate limiter counts per venue key in Redis, across all worker processes
            # (the venue counts per key, not per process). ccxt's own throttle is per
            # instance: stacked on it, it would only add waits (several leased instances
            # each pacing alone) without bounding what the processes send together.
            "enableRateLimit": False,
            "timeout": self._timeout_ms,
            "options": json.loads(json.dumps(self.CCXT_OPTIONS)),
        }
        for ccxt_field, our_field in self.CREDENTIAL_FIELDS.items():
            value = self.credentials.reveal(our_field)
            if value:
                settings[ccxt_field] = value
        for key, value in self._ccxt_extra.items():  # e.g. timeouts, or options for a venue
            if key == "options":
                settings["options"].update(value)
            elif key not in self.CREDENTIAL_FIELDS and key != "enableRateLimit":  # see above
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
