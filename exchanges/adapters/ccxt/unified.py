"""ccxt's unified structures (order, trade, position, balance) read into our data
classes. A venue class overrides only the hooks for what ccxt does not unify."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from exchanges.adapters.base import (
    D0,
    Balance,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    ms_to_datetime,
)
from exchanges.adapters.ccxt.wire import UNIFIED_STATUS, dec, nz


class UnifiedReads:
    """Needs ``spec``, ``QUOTE``, ``_internal``, ``_markets`` and ``_leverage_set``."""

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
