"""Placing orders on a ccxt venue: the order's parameters, margin mode and leverage
before an opening order, sending once through ``Guard.submit`` (a lost answer is looked up
by client order id, never sent again), attached stop-loss / take-profit, and the fills of
what was placed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from exchanges.adapters.base import (
    D0,
    FillInfo,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    ms_to_datetime,
    utcnow,
)
from exchanges.adapters.ccxt.wire import dec
from exchanges.adapters.errors import ExchangeError, InvalidOrderError

logger = logging.getLogger(__name__)


class OrderPlacement:
    """Mixed into CcxtTrader: needs its ``_call``, ``_read``, ``_guard``, ``_resolve``,
    ``_order_result``, ``_lookup_params`` and the settings it keeps."""

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
