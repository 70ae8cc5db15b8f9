"""The Django side of the decision graph's ports: live context and tool execution.

Every order tool goes through ``trading.services.order_submit`` with a client order id
derived from the decision and the tool call, so the risk gate sees it and a retried
tick never places a second order.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from agents.graph.contracts import (
    AccountSnapshot,
    MarketSnapshot,
    OpenOrderInfo,
    PositionInfo,
    ToolCallRequest,
    ToolOutcome,
)
from agents.models import AgentConfig, Decision
from alpha_platform.common.errors import ApplicationError
from alpha_platform.common.money import dec_str
from alpha_platform.common.vocabulary import OrderSide, PositionSide
from exchanges import market_data
from exchanges.adapters.base import ExchangeTrader
from exchanges.adapters.errors import ExchangeError, InvalidOrderError
from risk.models import RiskProfile
from trading.models import Order
from trading.services import client_order_id_for, order_cancel, order_submit, verdict_summary

logger = logging.getLogger(__name__)

CANDLE_TIMEFRAME = "1m"
CANDLE_LIMIT = 50


class AgentContext:
    """ContextProvider for one agent tick."""

    def __init__(self, agent: AgentConfig, trader: ExchangeTrader) -> None:
        self.agent = agent
        self.exchange_account = agent.account
        self.trader = trader

    def market(self, symbol: str) -> MarketSnapshot:
        kw = dict(trader=self.trader, venue=self.exchange_account.venue, testnet=self.exchange_account.testnet,
                  symbol=symbol)
        tick = market_data.ticker(**kw)
        candles = market_data.candles(**kw, timeframe=CANDLE_TIMEFRAME, limit=CANDLE_LIMIT)
        price = tick.mark if tick.mark is not None else tick.last
        return MarketSnapshot(symbol=symbol, price=price, candles=candles, funding_rate=tick.funding_rate,
                              timeframe=CANDLE_TIMEFRAME)

    def account(self) -> AccountSnapshot:
        balance = self.trader.get_balance()
        positions = [
            PositionInfo(symbol=p.symbol, side=str(p.side), size=p.size, entry_price=p.entry_price,
                         mark_price=p.mark_price, unrealized_pnl=p.unrealized_pnl, leverage=p.leverage)
            for p in self.trader.get_positions()
        ]
        open_orders = [
            OpenOrderInfo(id=o.pk, symbol=o.symbol, side=o.side, type=o.order_type, quantity=o.quantity,
                          price=o.price or o.stop_price, reduce_only=o.reduce_only)
            for o in Order.objects.filter(account=self.exchange_account, status__in=[Order.Status.NEW,
                                                                            Order.Status.PARTIALLY_FILLED])[:20]
        ]
        return AccountSnapshot(balance=balance.total_balance, equity=balance.margin_balance,
                               available=balance.available_balance, currency=balance.currency,
                               positions=positions, open_orders=open_orders)

    def risk_line(self) -> str:
        p = RiskProfile.objects.get(user_id=self.agent.owner_id)
        lev = min(p.max_leverage, self.agent.max_leverage)
        return (f"max leverage {lev}x; per symbol <= {p.max_position_notional_usd:.0f} USD and "
                f"{p.max_position_percent * 100:.0f}% of equity; total exposure <= "
                f"{p.max_total_exposure_percent * 100:.0f}%; min order {p.min_notional_usd:.0f} USD; "
                f"daily loss stop {p.daily_loss_limit_percent * 100:.0f}%")

    def recent_decisions(self, n: int) -> list[str]:
        rows = (Decision.objects.filter(agent=self.agent).exclude(status=Decision.Status.RUNNING)
                .order_by("-started_at").values_list("started_at", "status", "summary")[:n])
        # Summaries already start with the status ("held: ..."); don't say it twice.
        return [f"{started:%H:%M} {summary[:80] if summary.startswith(status) else f'{status}: {summary[:70]}'}"
                for started, status, summary in rows]


class AgentToolExecutor:
    """ToolExecutor for one decision: write tools through the trading services."""

    def __init__(self, agent: AgentConfig, decision: Decision, trader: ExchangeTrader, *,
                 recorder: Any = None) -> None:
        self.agent = agent
        self.decision = decision
        self.trader = trader
        self.recorder = recorder  # agents.services.DecisionAudit: links each order to its tool call at once

    def execute(self, call: ToolCallRequest) -> ToolOutcome:
        handler = getattr(self, f"_tool_{call.name}", None)
        if handler is None:
            return ToolOutcome(status="error", result={"error": f"tool {call.name} is not available"})
        try:
            return handler(call)
        except ValidationError as exc:
            return ToolOutcome(status="rejected", result={"error": "; ".join(exc.messages)})
        except ApplicationError as exc:
            return ToolOutcome(status="rejected", result={"error": exc.message})
        except InvalidOrderError as exc:
            return ToolOutcome(status="rejected", result={"error": exc.message})
        except ExchangeError as exc:
            return ToolOutcome(status="error", result={"error": f"{type(exc).__name__}: {exc.message}"})

    # -- orders ---------------------------------------------------------------------
    def _quantity(self, call: ToolCallRequest, symbol: str) -> Decimal | None:
        quantity = call.decimal("quantity")
        if quantity is None:
            notional = call.decimal("usd_notional")
            if notional is None:
                return None
            quantity = notional / self.trader.get_market_price(symbol)
        return self.trader.format_quantity(symbol, quantity)

    def _order(self, call: ToolCallRequest, *, side: str, position_side: str, closing: bool) -> ToolOutcome:
        symbol = call.arguments["symbol"]
        quantity = self._quantity(call, symbol)
        if quantity is None and closing:
            held = [p for p in self.trader.get_positions([symbol]) if str(p.side) == position_side]
            if not held:
                return ToolOutcome(status="rejected", result={"error": f"no {position_side} position in {symbol}"})
            quantity = held[0].size
        limit = (call.arguments.get("order_type") or "market") == "limit"
        result = order_submit(
            account=self.agent.account, symbol=symbol, side=side, position_side=position_side, quantity=quantity,
            source=Order.Source.AGENT, actor=f"agent:{self.agent.pk}",
            client_order_id=client_order_id_for(decision_id=self.decision.pk, index=call.index),
            order_type="LIMIT" if limit else "MARKET", price=call.decimal("limit_price") if limit else None,
            reduce_only=closing, leverage=None if closing else (call.arguments.get("leverage") or 1),
            stop_loss=None if closing else call.decimal("stop_loss"),
            take_profit=None if closing else call.decimal("take_profit"), trader=self.trader)
        order = result.order
        if self.recorder is not None:  # the audit row points at the order before anything else can fail
            self.recorder.order_placed(index=call.index, order_id=order.pk, risk_event_id=order.risk_event_id)
        payload: dict[str, Any] = {
            "order_id": order.pk, "status": order.status, "quantity": dec_str(order.quantity),
            "executed_quantity": dec_str(order.executed_quantity), "price": dec_str(order.executed_price),
        }
        if result.verdict is not None:
            payload["risk"] = verdict_summary(result.verdict)
        if order.error:
            payload["error"] = order.error
        if order.status == Order.Status.UNKNOWN:
            # The model must not "retry" it under a new id: that would double the position.
            payload["note"] = ("pending confirmation: the venue's answer was lost; do not place this order again, "
                               "the platform settles it with the venue")
        if order.status in (Order.Status.REJECTED,):
            status = "rejected"
        elif order.status in (Order.Status.FAILED, Order.Status.UNKNOWN, Order.Status.LOST):
            status = "error"
        else:
            status = "ok"
        return ToolOutcome(status=status, result=payload, order_id=order.pk,
                           risk_event_id=order.risk_event_id)

    def _tool_open_long(self, call):
        return self._order(call, side=OrderSide.BUY.value, position_side=PositionSide.LONG.value, closing=False)

    def _tool_open_short(self, call):
        return self._order(call, side=OrderSide.SELL.value, position_side=PositionSide.SHORT.value, closing=False)

    def _tool_close_long(self, call):
        return self._order(call, side=OrderSide.SELL.value, position_side=PositionSide.LONG.value, closing=True)

    def _tool_close_short(self, call):
        return self._order(call, side=OrderSide.BUY.value, position_side=PositionSide.SHORT.value, closing=True)

    def _tool_cancel_order(self, call):
        order = Order.objects.filter(pk=call.arguments["order_id"], account=self.agent.account).first()
        if order is None:
            return ToolOutcome(status="rejected", result={"error": "no such order on this agent's account"})
        order = order_cancel(order=order, actor=f"agent:{self.agent.pk}", trader=self.trader)
        return ToolOutcome(status="ok", result={"order_id": order.pk, "status": order.status}, order_id=order.pk)

    def _tool_set_leverage(self, call):
        leverage = int(call.arguments["leverage"])
        cap = min(self.agent.max_leverage, RiskProfile.objects.get(user_id=self.agent.owner_id).max_leverage)
        if leverage > cap:
            return ToolOutcome(status="rejected", result={"error": f"leverage {leverage}x is above the cap of {cap}x"})
        self.trader.set_leverage(call.arguments["symbol"], leverage)
        return ToolOutcome(status="ok", result={"symbol": call.arguments["symbol"], "leverage": leverage})

    # -- reads ----------------------------------------------------------------------
    def _tool_get_positions(self, call):
        return ToolOutcome(status="ok", result={"positions": [
            {"symbol": p.symbol, "side": str(p.side), "size": dec_str(p.size), "entry": dec_str(p.entry_price),
             "mark": dec_str(p.mark_price), "upnl": dec_str(p.unrealized_pnl)}
            for p in self.trader.get_positions()]})

    def _tool_get_balance(self, call):
        b = self.trader.get_balance()
        return ToolOutcome(status="ok", result={"balance": dec_str(b.total_balance), "equity": dec_str(b.margin_balance),
                                                "available": dec_str(b.available_balance), "currency": b.currency})

    def _tool_get_market_data(self, call):
        symbol = call.arguments["symbol"]
        t = market_data.ticker(trader=self.trader, venue=self.agent.account.venue,
                               testnet=self.agent.account.testnet, symbol=symbol)
        return ToolOutcome(status="ok", result={"symbol": symbol, "last": dec_str(t.last), "mark": dec_str(t.mark),
                                                "change_24h_pct": dec_str(t.change_24h_percent),
                                                "funding": dec_str(t.funding_rate)})
