"""The user's kill switch: record the trip, cancel every open order, close every
position on every account (through order_submit, as reduce-only orders), and tell the
agents app to halt the user's agents."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from alpha_platform.common.errors import ApplicationError
from exchanges.adapters.errors import ExchangeError
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import KillSwitch
from risk.services import OPERATOR_LABEL, acts_for_other, user_halt_lift, user_halt_record
from trading.models import Order
from trading.services.orders import order_apply_result, order_submit
from trading.signals import user_halted

logger = logging.getLogger(__name__)


def account_flatten(*, account: ExchangeAccount, actor: str) -> dict[str, Any]:
    """Cancel the account's open orders and close its positions. Reports what it did
    and what failed; never raises for a venue failure (the caller keeps going)."""
    report: dict[str, Any] = {"account_id": account.pk, "cancelled": 0, "closed": 0, "errors": []}
    trader = trader_for_account(account)
    try:
        try:
            venue_orders = trader.get_open_orders()
        except ExchangeError as exc:
            venue_orders = []
            report["errors"].append(f"open orders: {exc.message}")
        for vo in venue_orders:
            try:
                result = trader.cancel_order(vo.symbol, order_id=vo.order_id, client_order_id=vo.client_order_id)
            except ExchangeError as exc:
                report["errors"].append(f"cancel {vo.client_order_id or vo.order_id}: {exc.message}")
                continue
            report["cancelled"] += 1
            ours = Order.objects.filter(account=account, client_order_id=vo.client_order_id).first()
            if ours is not None:
                order_apply_result(order=ours, result=result)
        # Orders we hold as open that the venue did not list are settled by reconciliation.
        try:
            positions = trader.get_positions()
        except ExchangeError as exc:
            positions = []
            report["errors"].append(f"positions: {exc.message}")
        for position in positions:
            closing_side = "SELL" if str(position.side) == "LONG" else "BUY"
            try:
                result = order_submit(account=account, symbol=position.symbol, side=closing_side,
                                      position_side=str(position.side), quantity=position.size, reduce_only=True,
                                      source=Order.Source.SYSTEM, actor=actor, trader=trader)
            except (ValidationError, ApplicationError) as exc:  # one position refused: close the others
                text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else exc.message
                report["errors"].append(f"close {position.symbol}: {text}")
                continue
            if result.order.status == Order.Status.FILLED:
                report["closed"] += 1
            else:
                report["errors"].append(f"close {position.symbol}: {result.order.status} {result.order.error}")
    finally:
        trader.close()
    return report


def kill_switch_trip(*, user: AbstractBaseUser, label: str, reason: str,
                     by: AbstractBaseUser | None = None) -> KillSwitch:
    """Trip the user's kill switch (idempotent while it is on).

    Tripped by someone else (staff), the user is told "an operator" everywhere (the switch,
    the RiskEvent, the agents' halt reason, the closing orders' actor) instead of ``label``;
    ``switch.tripped_by`` keeps who, for staff. Whether ``by`` may do it is the caller's check
    (the admin's: risk.add_killswitch for another user's switch)."""
    switch, created = user_halt_record(user=user, label=label, reason=reason, by=by)
    if acts_for_other(user=user, by=by):
        label = OPERATOR_LABEL
    user_halted.send(sender=KillSwitch, user_id=user.pk, label=label)
    if not created:
        return switch
    reports = []
    for account in ExchangeAccount.objects.filter(owner=user).exclude(status=ExchangeAccount.Status.DISABLED):
        try:
            reports.append(account_flatten(account=account, actor=f"kill_switch:{label}"))
        except Exception as exc:  # one account's failure must not stop the others
            logger.exception("kill switch: flattening account %s failed", account.pk)
            reports.append({"account_id": account.pk, "errors": [type(exc).__name__]})
    switch.summary = {"accounts": reports}
    switch.save(update_fields=["summary", "updated_at"])
    logger.warning("kill switch tripped for user %s by %s (user %s): %s", user.pk, label,
                   getattr(by, "pk", None), reason)
    return switch


def kill_switch_lift(*, user: AbstractBaseUser, by: AbstractBaseUser) -> int:
    return user_halt_lift(user=user, by=by)


def daily_loss_watch(*, user: AbstractBaseUser) -> KillSwitch | None:
    """Trip the kill switch when today's loss reaches the limit, without waiting for an
    order to be attempted. Runs after each reconciliation (which snapshots balances)."""
    from django.utils import timezone

    from risk.models import RiskProfile
    from risk.policy import daily_loss
    from risk.services import user_halt_active
    from trading.services.snapshot import equity_figures

    if user_halt_active(user.pk):
        return None
    equity, day_start = equity_figures(user=user, now=timezone.now())
    if equity is None or not day_start:
        return None
    limit = RiskProfile.objects.get(user=user).daily_loss_limit_percent
    loss, loss_limit, breached = daily_loss(day_start, equity, limit)
    if not breached:
        return None
    return kill_switch_trip(user=user, label="daily_loss_limit",
                            reason=f"Loss today {loss:.2f} USD reached the daily limit of {loss_limit:.2f} USD "
                                   f"({limit * 100:.1f}% of {day_start:.2f} USD)")
