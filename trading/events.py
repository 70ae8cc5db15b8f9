"""Live-update payloads for trading objects (sent on commit to the owner's group)."""

from __future__ import annotations

from alpha_platform.common.realtime import send_to_user_on_commit
from trading.models import BalanceSnapshot, Order, Position


def order_payload(order: Order) -> dict:
    return {
        "id": order.pk, "client_order_id": order.client_order_id, "account_id": order.account_id,
        "symbol": order.symbol, "side": order.side, "position_side": order.position_side,
        "order_type": order.order_type, "quantity": order.quantity, "price": order.price,
        "stop_price": order.stop_price, "status": order.status, "executed_quantity": order.executed_quantity,
        "executed_price": order.executed_price, "fees": order.fees, "source": order.source,
        "error": order.error, "created_at": order.created_at, "parent_id": order.parent_id,
    }


def position_payload(position: Position) -> dict:
    return {
        "id": position.pk, "account_id": position.account_id, "symbol": position.symbol, "side": position.side,
        "status": position.status, "size": position.size, "entry_price": position.entry_price,
        "mark_price": position.mark_price, "unrealized_pnl": position.unrealized_pnl,
        "realized_pnl": position.realized_pnl, "leverage": position.leverage,
        "liquidation_price": position.liquidation_price,
    }


def order_event(order: Order, action: str) -> None:
    """action: created | filled | partially_filled | cancelled | rejected | updated."""
    send_to_user_on_commit(order.owner_id, {"type": "order", "action": action, "order": order_payload(order)})


def position_event(position: Position) -> None:
    send_to_user_on_commit(position.owner_id, {"type": "position", "position": position_payload(position)})


def balance_event(snapshot: BalanceSnapshot, owner_id: int) -> None:
    send_to_user_on_commit(owner_id, {"type": "balance", "balance": {
        "account_id": snapshot.account_id, "taken_at": snapshot.taken_at, "currency": snapshot.currency,
        "total_balance": snapshot.total_balance, "available_balance": snapshot.available_balance,
        "margin_balance": snapshot.margin_balance, "unrealized_pnl": snapshot.unrealized_pnl,
    }})
