"""Reading Hyperliquid's orders: orderStatus, open orders, fills."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from hyperliquid.utils.types import Cloid

from exchanges.adapters.base import (
    D0,
    FillInfo,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    ms_to_datetime,
)
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrderError,
    OrderNotFound,
)
from exchanges.adapters.hyperliquid.wire import (
    _d,
)

logger = logging.getLogger(__name__)


class OrderReads:
    """Mixed into HyperliquidTrader: needs its ``_clients``, ``_call``, ``_read``, ``_known``."""

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
