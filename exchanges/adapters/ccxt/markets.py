"""Markets, precision and client ids for the ccxt adapters: one load of ccxt's markets
per process and (ccxt id, base URL), read from ccxt's unified market structure."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import ccxt

from exchanges.adapters.base import D0, SymbolRules
from exchanges.adapters.ccxt.wire import _Markets, dec, nz
from exchanges.adapters.errors import UnknownSymbol


class MarketsMixin:
    """Needs ``spec``, ``_markets_key``, ``_markets_ttl``, ``_leverage_cfg``, ``_read``,
    ``_exchange`` and the CLIENT_ID_* attributes of the trader it is mixed into."""

    MARKETS_TTL = 3600.0
    _market_cache: ClassVar[dict[tuple[str, str], _Markets]] = {}
    _market_locks: ClassVar[dict[tuple[str, str], threading.Lock]] = {}
    _market_guard: ClassVar[threading.Lock] = threading.Lock()
    _MARKET_ATTRS = ("markets", "markets_by_id", "symbols", "ids", "currencies", "currencies_by_id",
                     "codes", "baseCurrencies", "quoteCurrencies")

    @classmethod
    def clear_market_cache(cls) -> None:
        with MarketsMixin._market_guard:
            MarketsMixin._market_cache.clear()

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
