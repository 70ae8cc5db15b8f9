"""Orders already at a ccxt venue: one looked up (with its fills), cancelled, or all
open ones; a venue whose conditional orders live in a separate book is asked in both."""

from __future__ import annotations

from exchanges.adapters.base import OrderResult
from exchanges.adapters.errors import OrderNotFound


class OrderReads:
    """Mixed into CcxtTrader: needs its ``_read``, ``_resolve``, ``_fetch_order_raw``,
    ``_with_fills``, ``_order_result`` and ``_conditional_ids``."""

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
