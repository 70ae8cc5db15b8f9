"""Liquidations: orders the venue placed itself to close a position (the paper venue's and
Binance's ``autoclose-N``). They are never open, so neither the open-order list nor a
look-up of our own orders finds them; reconciliation reads the venue's liquidation list
(``ExchangeTrader.get_liquidations``) and records each one here, once:

- an Order of the account (source system, actor ``venue:liquidation``) with the venue's
  fills (price, quantity, fee, realized PnL), matched by client order id or the venue's
  order id within the account, so a second pass records nothing more;
- the Position row it closed marked liquidated, its realized PnL summed from the fills
  (the liquidation's included) and its fees beside it (``raw_data["fees"]``);
- a RiskEvent (kind reconcile, rule ``liquidation``) and the live updates, on commit.

Everything for one liquidation is written in one transaction: a failure leaves no part.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from alpha_platform.common.money import ZERO, dec_str
from alpha_platform.common.vocabulary import OrderSide, PositionSide
from exchanges.adapters.base import OrderResult
from exchanges.models import ExchangeAccount
from risk.models import RiskEvent
from risk.services import risk_event_record
from trading.events import position_event
from trading.models import Fill, Order, Position
from trading.services.positions import order_apply_result

logger = logging.getLogger(__name__)

LIQUIDATION_ACTOR = "venue:liquidation"
# How far back the first pass of an account looks for liquidations it has not recorded.
LIQUIDATION_LOOKBACK = timedelta(days=7)


def liquidations_since(*, account: ExchangeAccount, now: datetime | None = None) -> datetime:
    """Where the next read of the venue's liquidations starts: the newest one recorded (the
    venue lists it again; it is skipped), else ``LIQUIDATION_LOOKBACK`` ago."""
    newest = Order.objects.filter(account=account, actor=LIQUIDATION_ACTOR).aggregate(
        at=Max("submitted_at"))["at"]
    return newest or (now or timezone.now()) - LIQUIDATION_LOOKBACK


def _recorded(account: ExchangeAccount, result: OrderResult) -> Order | None:
    match = Q(pk__in=[])
    if result.client_order_id:
        match |= Q(client_order_id=result.client_order_id)
    if result.order_id:
        match |= Q(exchange_order_id=result.order_id, symbol=result.symbol)
    return Order.objects.filter(account=account).filter(match).first()


def _position_side(result: OrderResult) -> str:
    if result.position_side is not None:
        return str(result.position_side)
    # One-way venues: a liquidation reduces, so a buy closes a short.
    return PositionSide.SHORT.value if str(result.side) == OrderSide.BUY.value else PositionSide.LONG.value


def _closed_row(account: ExchangeAccount, symbol: str, side: str, at: datetime) -> Position | None:
    """The row of the position the liquidation closed: the leg's newest row opened before it,
    open, or closed since (a pass or a stream that saw the position gone first)."""
    return (Position.objects.select_for_update()
            .filter(account=account, symbol=symbol, side=side, opened_at__lte=at)
            .filter(Q(status=Position.Status.OPEN) | Q(closed_at__gte=at - timedelta(minutes=5)))
            .order_by("-opened_at", "-id").first())


def _sums_since(account: ExchangeAccount, symbol: str, since: datetime) -> tuple:
    sums = Fill.objects.filter(account=account, symbol=symbol, filled_at__gte=since).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee"))
    return sums["realized"] or ZERO, sums["fees"] or ZERO


def liquidation_record(*, account: ExchangeAccount, result: OrderResult) -> Order | None:
    """Record one venue liquidation. Returns its new Order, or None if already recorded."""
    with transaction.atomic():
        # The lock every writer of the account's positions takes first (positions_sync).
        ExchangeAccount.objects.select_for_update().filter(pk=account.pk).first()
        if _recorded(account, result) is not None:
            return None
        fills = sorted(result.fills, key=lambda f: f.timestamp)
        at = fills[-1].timestamp if fills else result.timestamp
        side = _position_side(result)
        quantity = max(result.quantity, result.executed_quantity)
        order = Order(owner=account.owner, account=account, source=Order.Source.SYSTEM, actor=LIQUIDATION_ACTOR,
                      client_order_id=(result.client_order_id or f"liquidation-{result.order_id}")[:64],
                      exchange_order_id=result.order_id, symbol=result.symbol, side=str(result.side),
                      position_side=side, order_type=Order.Type.MARKET, reduce_only=True, quantity=quantity,
                      submitted_at=at, status=Order.Status.PENDING)
        order.full_clean()
        order.save()
        order = order_apply_result(order=order, result=result)
        order.closed_at = at
        order.save(update_fields=["closed_at", "updated_at"])

        row = _closed_row(account, result.symbol, side, at)
        if row is not None:
            if row.status == Position.Status.OPEN and order.executed_quantity >= row.size:
                row.size = ZERO
                row.unrealized_pnl = ZERO
                row.closed_at = at
            if row.status != Position.Status.OPEN or row.size == 0:
                row.status = Position.Status.LIQUIDATED
                # The row holds the close now: the liquidation's fill is folded into it.
                Order.objects.filter(pk=order.pk).update(position_folded_at=timezone.now())
            row.realized_pnl, fees = _sums_since(account, row.symbol, row.opened_at)
            row.raw_data = {**(row.raw_data or {}), "fees": dec_str(fees), "liquidation_order_id": result.order_id}
            row.save()
            position_event(row)

        filled = sum((f.quantity for f in fills), ZERO)
        event = risk_event_record(
            user=account.owner, allowed=False, rule="liquidation", kind=RiskEvent.Kind.RECONCILE,
            message=f"The venue liquidated {filled or quantity} {result.symbol} ({side}) at "
                    f"{result.executed_price}: realized {dec_str(sum((f.realized_pnl for f in fills), ZERO))}",
            details={"client_order_id": order.client_order_id, "order_id": result.order_id,
                     "quantity": dec_str(filled or quantity),
                     "price": dec_str(result.executed_price) if result.executed_price is not None else None,
                     "fees": dec_str(result.fees),
                     "realized_pnl": dec_str(sum((f.realized_pnl for f in fills), ZERO))},
            symbol=result.symbol, venue=account.venue, actor=LIQUIDATION_ACTOR)
        Order.objects.filter(pk=order.pk).update(risk_event=event)
        order.refresh_from_db()
    logger.warning("account %s: liquidation %s of %s recorded", account.pk, order.client_order_id, order.symbol)
    return order
