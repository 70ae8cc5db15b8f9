"""The user's kill switch.

The trip is one transaction: the KillSwitch row, its RiskEvent and the halt of the
user's agents (the agents app's receiver of ``user_halted`` runs inside it). Flattening
(cancel every open order, close every position on every account, through order_submit as
reduce-only orders) talks to venues and can take minutes, so it is not done in the
caller's request: a Celery task (trading.kill_switch_flatten) queued on commit does it,
one account at a time, recording progress on the KillSwitch row (risk.services) and
announcing each step, so the web request returns at once and the pages follow it live."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from alpha_platform.common.errors import ApplicationError
from alpha_platform.common.vocabulary import closing_side
from exchanges.adapters.errors import ExchangeError
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import KillSwitch
from risk.services import (
    OPERATOR_LABEL,
    acts_for_other,
    kill_switch_flatten_finish,
    kill_switch_flatten_queued,
    kill_switch_flatten_retry_mark,
    kill_switch_flatten_start,
    kill_switch_flatten_step,
    user_halt_lift,
    user_halt_record,
)
from trading.models import Order
from trading.services.orders import order_apply_result, order_submit
from trading.signals import user_halted

logger = logging.getLogger(__name__)

#: What a step of account_flatten reports: "cancelled" (an order) or "closed" (a position).
StepCallback = Callable[[str], None]


def _our_order(account: ExchangeAccount, venue_cid: str) -> Order | None:
    """The order of ours a venue lists under ``venue_cid``: our client order id, or the
    venue's form of it recorded on the Order before sending (the Hyperliquid cloid), so a
    trader that did not place the order (a fresh adapter, another process) still knows it."""
    if not venue_cid:
        return None
    return (Order.objects.filter(account=account)
            .filter(Q(client_order_id=venue_cid) | Q(venue_client_order_id=venue_cid)).first())


def account_flatten(*, account: ExchangeAccount, actor: str, on_step: StepCallback | None = None) -> dict[str, Any]:
    """Cancel the account's open orders and close its positions. Reports what it did
    and what failed; never raises for a venue failure (the caller keeps going).
    ``on_step`` is called after each order cancelled and each position closed."""
    report: dict[str, Any] = {"account_id": account.pk, "name": account.name, "cancelled": 0, "closed": 0,
                              "errors": []}
    step = on_step or (lambda kind: None)
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
            ours = _our_order(account, vo.client_order_id)
            if ours is not None:
                order_apply_result(order=ours, result=result)
            step("cancelled")
        # Orders we hold as open that the venue did not list are settled by reconciliation.
        try:
            positions = trader.get_positions()
        except ExchangeError as exc:
            positions = []
            report["errors"].append(f"positions: {exc.message}")
        for position in positions:
            closing = closing_side(str(position.side)).value
            try:
                result = order_submit(account=account, symbol=position.symbol, side=closing,
                                      position_side=str(position.side), quantity=position.size, reduce_only=True,
                                      source=Order.Source.SYSTEM, actor=actor, trader=trader)
            except (ValidationError, ApplicationError) as exc:  # one position refused: close the others
                text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else exc.message
                report["errors"].append(f"close {position.symbol}: {text}")
                continue
            if result.order.status == Order.Status.FILLED:
                report["closed"] += 1
                step("closed")
            else:
                report["errors"].append(f"close {position.symbol}: {result.order.status} {result.order.error}")
    finally:
        trader.close()
    return report


def _flatten_accounts(user: AbstractBaseUser) -> list[int]:
    return list(ExchangeAccount.objects.filter(owner=user).exclude(status=ExchangeAccount.Status.DISABLED)
                .order_by("pk").values_list("pk", flat=True))


#: Publishing the task: a few quick tries, not the settings' ~30 s, so a trip made while
#: the broker is down answers at once; the flattening stays "queued" and reconcile_all's
#: pass queues it again (kill_switch_flatten_requeue).
FLATTEN_PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _queue_flatten(switch_id: int) -> None:
    from trading.tasks import kill_switch_flatten_task

    # robust: the trip has committed whatever the broker says (the error is logged).
    transaction.on_commit(lambda: kill_switch_flatten_task.apply_async(
        args=[switch_id], retry=True, retry_policy=FLATTEN_PUBLISH_RETRY), robust=True)


def kill_switch_trip(*, user: AbstractBaseUser, label: str, reason: str,
                     by: AbstractBaseUser | None = None) -> KillSwitch:
    """Trip the user's kill switch (idempotent while it is on): in one transaction the
    trip is recorded and the user's agents halted; the flattening is queued on commit
    (progress on the returned switch's ``flatten_*`` fields).

    Tripped by someone else (staff), the user is told "an operator" everywhere (the switch,
    the RiskEvent, the agents' halt reason, the closing orders' actor) instead of ``label``;
    ``switch.tripped_by`` keeps who, for staff. Whether ``by`` may do it is the caller's check
    (the admin's: risk.add_killswitch for another user's switch)."""
    with transaction.atomic():
        switch, created = user_halt_record(user=user, label=label, reason=reason, by=by)
        if acts_for_other(user=user, by=by):
            label = OPERATOR_LABEL
        # Inside the transaction: the agents halt with the trip or not at all.
        user_halted.send(sender=KillSwitch, user_id=user.pk, label=label)
        if not created:
            return switch
        switch.summary = {"actor": f"kill_switch:{label}"}
        kill_switch_flatten_queued(switch=switch, account_ids=_flatten_accounts(user))
        _queue_flatten(switch.pk)
    logger.warning("kill switch tripped for user %s by %s (user %s): %s", user.pk, label,
                   getattr(by, "pk", None), reason)
    return switch


def kill_switch_flatten(*, switch_id: int, still_mine: Callable[[], None] | None = None) -> KillSwitch | None:
    """One pass of a trip's flattening: the caller (the task) holds the user's flatten
    lock, so no other pass runs. Accounts already flattened cleanly by an earlier pass (a
    worker that died, a retry after a failure) are skipped; one account's failure does not
    stop the others. ``still_mine`` is called between steps (the task extends its lock).
    Returns the switch as the pass left it, or None when there was nothing to do."""
    switch = kill_switch_flatten_start(switch_id=switch_id)
    if switch is None:
        return None
    keep = still_mine or (lambda: None)
    actor = (switch.summary or {}).get("actor") or f"kill_switch:{switch.tripped_by_label}"
    done = {int(k) for k, r in ((switch.summary or {}).get("accounts") or {}).items() if not r.get("errors")}
    accounts = {a.pk: a for a in ExchangeAccount.objects.filter(
        pk__in=(switch.summary or {}).get("account_ids") or [])}
    for account_id in (switch.summary or {}).get("account_ids") or []:
        if account_id in done:
            continue
        if not KillSwitch.objects.filter(pk=switch_id, active=True).exists():
            logger.warning("kill switch %s lifted before its flattening finished", switch_id)
            return kill_switch_flatten_finish(switch_id=switch_id, stopped=True)
        account = accounts.get(account_id)
        if account is None:  # deleted since the trip: nothing left there to flatten
            kill_switch_flatten_step(switch_id=switch_id, account_report={
                "account_id": account_id, "name": "", "cancelled": 0, "closed": 0, "errors": []})
            continue

        def on_step(kind: str) -> None:
            keep()
            kill_switch_flatten_step(switch_id=switch_id, cancelled=int(kind == "cancelled"),
                                     closed=int(kind == "closed"))

        try:
            report = account_flatten(account=account, actor=actor, on_step=on_step)
        except Exception as exc:  # one account's failure must not stop the others
            logger.exception("kill switch: flattening account %s failed", account_id)
            report = {"account_id": account_id, "name": account.name, "cancelled": 0, "closed": 0,
                      "errors": [f"{type(exc).__name__}: the flattening of this account stopped"]}
        keep()
        kill_switch_flatten_step(switch_id=switch_id, account_report=report)
    switch = kill_switch_flatten_finish(switch_id=switch_id)
    logger.warning("kill switch %s flattened: %s", switch_id, switch.flatten_state)
    return switch


def kill_switch_flatten_retry(*, user: AbstractBaseUser, by: AbstractBaseUser) -> KillSwitch | None:
    """Flatten a failed trip again (the accounts that reported errors). The user's own
    switch, or another's with ``risk.change_killswitch``. None when there is nothing to retry."""
    from risk.services import user_halt_active

    if acts_for_other(user=user, by=by) and not by.has_perm("risk.change_killswitch"):
        raise PermissionError("Retrying another user's flattening needs the permission to change kill switches.")
    with transaction.atomic():
        active = user_halt_active(user.pk)
        switch = kill_switch_flatten_retry_mark(switch_id=active.pk) if active else None
        if switch is not None:
            _queue_flatten(switch.pk)
    return switch


def kill_switch_flatten_requeue(*, queued_for_seconds: float, running_still_seconds: float) -> list[int]:
    """Queue again the flattening of active trips that stalled (a worker killed mid-way,
    a broker down at the trip). A duplicate of a live or waiting task is harmless: the lock
    and the state make it a no-op."""
    from risk.services import kill_switch_flatten_stalled

    ids = kill_switch_flatten_stalled(queued_for_seconds=queued_for_seconds,
                                      running_still_seconds=running_still_seconds)
    for switch_id in ids:
        _queue_flatten(switch_id)
    return ids


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
