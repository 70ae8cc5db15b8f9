"""Trading writes. ``order_submit`` is the only way an order reaches a venue."""

from trading.services.kill_switch import account_flatten, daily_loss_watch, kill_switch_lift, kill_switch_trip
from trading.services.orders import (
    SubmitResult,
    client_order_id_for,
    order_cancel,
    order_submit,
    verdict_summary,
)
from trading.services.positions import balance_snapshot_record, order_apply_result, positions_sync
from trading.services.reconcile import ReconcileReport, account_reconcile

__all__ = [
    "ReconcileReport", "SubmitResult", "account_flatten", "account_reconcile", "daily_loss_watch", "balance_snapshot_record", "client_order_id_for",
    "kill_switch_lift", "kill_switch_trip", "order_apply_result", "order_cancel", "order_submit",
    "positions_sync", "verdict_summary",
]
