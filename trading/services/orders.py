"""order_submit: the only road from an intent to a venue.

    validate -> (idempotency) -> live read -> [lock user's risk state: snapshot, policy,
    RiskEvent, Order saved PENDING or REJECTED] -> send -> record result, fills, positions

The Order row exists, with its client order id, before anything is sent: an order a
venue accepted is never lost, and a retried submission with the same client order id
returns the existing order instead of placing a second one.

Client order ids belong to their account: unique within it (the database constraint
``order_client_id_unique_per_account``), looked up only within it, and never a sign of what
another account holds (an id used elsewhere is a fresh id here). Ids starting with
``RESERVED_PREFIX`` are the platform's own (agents' ``at-d<decision>-<n>``, manual and
kill-switch ``at-m<random>``, their attached ``-sl``/``-tp`` children): only a
``PlatformOrderId``, which ``client_order_id_for`` mints, may carry it, so no caller can
take an id the platform will use.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from alpha_platform.common.config import get_config
from alpha_platform.common.errors import ApplicationError, CredentialsError
from alpha_platform.common.money import dec_str, decimal_input
from exchanges.adapters.base import ExchangeTrader, OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.adapters.errors import (
    ExchangeError,
    InvalidOrderError,
    OperationalError,
    OrderNotFound,
    OrderStatusUnknown,
)
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskEvent, RiskProfile
from risk.policy import Limits, OrderIntent, Verdict, check_pre_trade
from risk.services import risk_event_record
from trading.events import order_event
from trading.models import Order
from trading.services.positions import balance_snapshot_record, order_apply_result, positions_sync
from trading.services.snapshot import live_read, risk_snapshot

logger = logging.getLogger(__name__)

CLIENT_ID = re.compile(r"^[A-Za-z0-9_\-:.]{1,32}$")
CLIENT_ID_MESSAGE = "Client order id: 1 to 32 letters, digits, _ - : ."
RESERVED_PREFIX = "at-"
RESERVED_MESSAGE = (f'Client order ids starting with "{RESERVED_PREFIX}" are reserved for the platform\'s own '
                    "orders: choose an id with a different start.")
SUPPORTED_TYPES = {t.value for t in OrderType}


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    verdict: Verdict | None  # None when an existing order was returned (idempotent retry)
    risk_event: RiskEvent | None
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        return self.order.status not in (Order.Status.REJECTED, Order.Status.FAILED)


class PlatformOrderId(str):
    """A client order id the platform minted (``client_order_id_for``): the only kind that
    may start with ``RESERVED_PREFIX``. A type rather than a ``source`` value, so that no
    id that came from outside (a request, a form, a model's tool arguments) can pass for
    one, whichever code path carries it."""

    __slots__ = ()


def client_order_id_for(*, decision_id: int | None = None, index: int | None = None) -> PlatformOrderId:
    """Deterministic where there is a cause (an agent's decision and tool call), random
    for manual orders. At most 32 characters: venues cap client ids (Binance: 36)."""
    if decision_id is not None:
        return PlatformOrderId(f"{RESERVED_PREFIX}d{decision_id}-{index or 0}")
    return PlatformOrderId(f"{RESERVED_PREFIX}m{uuid.uuid4().hex[:24]}")


def is_reserved_client_order_id(value: str) -> bool:
    """Whether ``value`` has the platform's prefix (in any case: venues may fold it)."""
    return value[:len(RESERVED_PREFIX)].lower() == RESERVED_PREFIX


def client_order_id_error(value: Any) -> str | None:
    """Why a caller's client order id is refused, or None. The answer depends on the id
    alone, never on which orders exist (in this account or any other)."""
    if not isinstance(value, str) or not CLIENT_ID.fullmatch(value):
        return CLIENT_ID_MESSAGE
    if is_reserved_client_order_id(value) and not isinstance(value, PlatformOrderId):
        return RESERVED_MESSAGE
    return None


def _venue_cid(trader: ExchangeTrader, cid: str) -> str:
    """The venue's form of ``cid``, stored only where it differs (Hyperliquid's cloid)."""
    venue_cid = trader.venue_client_order_id(cid)
    return "" if venue_cid == cid else venue_cid


def _own_order(account: ExchangeAccount, client_order_id: str) -> Order | None:
    """The account's order with this client order id: the only scope ids are looked up in."""
    return Order.objects.filter(account=account, client_order_id=client_order_id).first()


def _validate(*, account: ExchangeAccount, symbol: str, side: str, position_side: str, quantity: Any,
              order_type: str, price: Any, stop_price: Any, leverage: Any, stop_loss: Any,
              take_profit: Any, client_order_id: str | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if side not in ("BUY", "SELL"):
        errors["side"] = "Side must be BUY or SELL."
    if position_side not in ("LONG", "SHORT"):
        errors["position_side"] = "Position side must be LONG or SHORT."
    if order_type not in SUPPORTED_TYPES:
        errors["order_type"] = f"Order type must be one of {', '.join(sorted(SUPPORTED_TYPES))}."
    if symbol not in get_config().symbol_map(account.venue):
        errors["symbol"] = f"{symbol} is not traded on {account.venue}."
    for name, raw, required in (("quantity", quantity, True), ("price", price, order_type == "LIMIT"),
                                ("stop_price", stop_price, order_type in ("STOP_MARKET", "TAKE_PROFIT_MARKET")),
                                ("stop_loss", stop_loss, False), ("take_profit", take_profit, False)):
        if raw is None or raw == "":
            if required:
                errors[name] = f"{name.replace('_', ' ').capitalize()} is required for a {order_type} order."
            values[name] = None
            continue
        try:
            value = decimal_input(raw, field=name, label=name.replace("_", " ").capitalize())
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if value <= 0:
            errors[name] = f"{name.replace('_', ' ').capitalize()} must be greater than zero."
        values[name] = value
    if leverage is not None:
        try:
            values["leverage"] = int(leverage)
            if values["leverage"] < 1 or str(leverage).strip() not in (str(values["leverage"]),):
                raise ValueError
        except (TypeError, ValueError):
            errors["leverage"] = "Leverage must be a whole number of at least 1."
    else:
        values["leverage"] = None
    if client_order_id is not None and (cid_error := client_order_id_error(client_order_id)):
        errors["client_order_id"] = cid_error
    if account.status == ExchangeAccount.Status.DISABLED:
        errors["account"] = "This exchange account is disabled."
    if errors:
        raise ValidationError(errors)
    return values


def order_submit(*, account: ExchangeAccount, symbol: str, side: str, position_side: str, quantity: Any,
                 source: str, actor: str = "", order_type: str = "MARKET", price: Any = None,
                 stop_price: Any = None, reduce_only: bool = False, leverage: Any = None,
                 stop_loss: Any = None, take_profit: Any = None, time_in_force: str = "GTC",
                 client_order_id: str | None = None, trader: ExchangeTrader | None = None) -> SubmitResult:
    """Check an order against the owner's risk profile and, if allowed, place it.

    Raises ValidationError for a malformed request (nothing is written), including a
    caller's ``client_order_id`` with the platform's reserved prefix. A repeated
    ``client_order_id`` returns this account's order with it (``duplicate=True``, nothing
    sent). A risk rejection returns a REJECTED order with its RiskEvent (never raises).
    """
    values = _validate(account=account, symbol=symbol, side=side, position_side=position_side,
                       quantity=quantity, order_type=order_type, price=price, stop_price=stop_price,
                       leverage=leverage, stop_loss=stop_loss, take_profit=take_profit,
                       client_order_id=client_order_id)
    if client_order_id is not None:
        # An idempotent retry: this account's order with the id. Another account's order
        # with the same id is neither returned nor a reason to refuse (nor even looked at).
        existing = _own_order(account, client_order_id)
        if existing is not None:
            return SubmitResult(order=existing, verdict=None, risk_event=existing.risk_event, duplicate=True)
    cid = client_order_id or client_order_id_for()
    user = account.owner
    own_trader = trader is None
    try:
        trader = trader or trader_for_account(account)
    except CredentialsError as exc:
        raise ApplicationError(exc.message) from None
    try:
        result = _submit(account=account, user=user, trader=trader, cid=cid, symbol=symbol, side=side,
                         position_side=position_side, order_type=order_type, reduce_only=reduce_only,
                         time_in_force=time_in_force, source=source, actor=actor, **values)
    finally:
        if own_trader:
            trader.close()
    _log_order(result)
    return result


def _log_order(result: SubmitResult) -> None:
    """One line per order, with its ids (and, for JSON logs, the same as fields)."""
    o = result.order
    rule = result.verdict.rule if result.verdict else ""
    fields = {"order_id": o.pk, "client_order_id": o.client_order_id, "account_id": o.account_id,
              "symbol": o.symbol, "side": o.side, "quantity": str(o.quantity), "status": o.status,
              "rule": rule, "source": o.source, "actor": o.actor}
    logger.info("order %s cid=%s account=%s %s %s %s status=%s rule=%s source=%s", o.pk, o.client_order_id,
                o.account_id, o.side, o.quantity, o.symbol, o.status, rule, o.source, extra={"order": fields})


def _submit(*, account, user, trader, cid, symbol, side, position_side, order_type, reduce_only, time_in_force,
            source, actor, quantity, price, stop_price, leverage, stop_loss, take_profit) -> SubmitResult:
    profile_leverage = leverage or 1
    read = live_read(account=account, trader=trader, symbol=symbol)
    intent = OrderIntent(account_id=account.pk, venue=account.venue, symbol=symbol, side=side,
                         position_side=position_side, quantity=quantity, order_type=order_type,
                         price=price, leverage=profile_leverage, reduce_only=reduce_only)
    order_fields = dict(owner=user, account=account, source=source, actor=actor[:100], client_order_id=cid,
                        venue_client_order_id=_venue_cid(trader, cid),
                        symbol=symbol, side=side, position_side=position_side, order_type=order_type,
                        reduce_only=reduce_only, time_in_force=time_in_force, quantity=quantity, price=price,
                        stop_price=stop_price, leverage=leverage)
    try:
        with transaction.atomic():
            # The user's risk lock: every check-and-reserve for this user is serialised here.
            profile = RiskProfile.objects.select_for_update().get(user=user)
            snapshot = risk_snapshot(user=user, read=read)
            verdict = check_pre_trade(Limits.from_profile(profile), intent, snapshot)
            details = dict(verdict.details)
            if read.errors:
                details["read_errors"] = "; ".join(read.errors)
            event = risk_event_record(user=user, allowed=verdict.allowed, rule=verdict.rule,
                                      message=verdict.message, details=details, symbol=symbol,
                                      venue=account.venue, actor=actor or source)
            order = Order(**order_fields, risk_event=event,
                          status=Order.Status.PENDING if verdict.allowed else Order.Status.REJECTED,
                          error="" if verdict.allowed else verdict.message)
            if not verdict.allowed:
                order.closed_at = timezone.now()
            # Field checks only: _validate has already enforced what the check constraints
            # say (and the database still does), and a duplicate client order id is the
            # IntegrityError below; the constraint queries would run inside the risk lock.
            order.full_clean(exclude=["risk_event", "parent"], validate_unique=False, validate_constraints=False)
            order.save()
            order_event(order, "created" if verdict.allowed else "rejected")
    except IntegrityError:
        # The same client order id was submitted concurrently to this account: return the
        # one that won (the constraint is per account, so only this account's can have).
        existing = _own_order(account, cid)
        if existing is None:
            raise
        return SubmitResult(order=existing, verdict=None, risk_event=existing.risk_event, duplicate=True)

    if verdict.trip_kill_switch:
        from trading.services.kill_switch import kill_switch_trip

        kill_switch_trip(user=user, label="daily_loss_limit", reason=verdict.message)
    if not verdict.allowed:
        return SubmitResult(order=order, verdict=verdict, risk_event=event)

    request = OrderRequest(symbol=symbol, side=OrderSide(side), position_side=PositionSide(position_side),
                           order_type=OrderType(order_type), quantity=quantity, client_order_id=cid, price=price,
                           stop_price=stop_price, reduce_only=reduce_only, time_in_force=time_in_force,
                           leverage=leverage, stop_loss=stop_loss, take_profit=take_profit)
    Order.objects.filter(pk=order.pk).update(submitted_at=timezone.now())
    order.submitted_at = timezone.now()
    try:
        result = trader.place_order(request)
    except OrderStatusUnknown as exc:
        _mark(order, Order.Status.UNKNOWN, exc.message)
        logger.warning("order %s fate unknown; left for reconciliation", order.client_order_id)
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except InvalidOrderError as exc:
        _mark(order, Order.Status.REJECTED, f"Venue rejected the order: {exc.message}")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except OperationalError as exc:
        _mark(order, Order.Status.FAILED, f"{type(exc).__name__}: {exc.message}")
        ExchangeAccount.objects.filter(pk=account.pk).update(status=ExchangeAccount.Status.ERROR,
                                                             last_error=exc.message[:1000])
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except ExchangeError as exc:
        _mark(order, Order.Status.FAILED, f"Not placed: {type(exc).__name__}: {exc.message}")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except Exception as exc:  # an adapter bug: the order may or may not exist at the venue
        logger.exception("unexpected error placing order %s", order.client_order_id)
        _mark(order, Order.Status.UNKNOWN, f"Unexpected error: {type(exc).__name__}")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)

    order = order_apply_result(order=order, result=result)
    if order.executed_quantity > 0:
        _sync_positions_after(account=account, trader=trader, symbol=symbol)
    return SubmitResult(order=order, verdict=verdict, risk_event=event)


def _mark(order: Order, status: str, error: str) -> None:
    order.status = status
    order.error = error[:2000]
    if status in (Order.Status.REJECTED, Order.Status.FAILED):
        order.closed_at = timezone.now()
    with transaction.atomic():
        order.save(update_fields=["status", "error", "closed_at", "updated_at"])
        order_event(order, "rejected" if status == Order.Status.REJECTED else "updated")


def _sync_positions_after(*, account: ExchangeAccount, trader: ExchangeTrader, symbol: str) -> None:
    """After a fill: the symbol's position and a balance snapshot, so the next risk check
    on any of the user's accounts values this one from fresh figures."""
    try:
        venue_positions = trader.get_positions([symbol])
        balance = trader.get_balance()
    except ExchangeError as exc:
        # The fill is recorded; reconciliation will bring the position in line.
        logger.warning("position read after fill failed for account %s: %s", account.pk, type(exc).__name__)
        return
    with transaction.atomic():
        positions_sync(account=account, venue_positions=venue_positions, symbols=[symbol])
        balance_snapshot_record(account=account, balance=balance)


def order_cancel(*, order: Order, actor: str = "", trader: ExchangeTrader | None = None) -> Order:
    """Cancel an open order at the venue and record the outcome."""
    if not order.is_open:
        raise ApplicationError(f"Order {order.client_order_id} is {order.get_status_display().lower()}: "
                               "only open orders can be cancelled.")
    own = trader is None
    trader = trader or trader_for_account(order.account)
    try:
        try:
            result = trader.cancel_order(order.symbol, order_id=order.exchange_order_id or None,
                                         client_order_id=order.client_order_id)
        except OrderNotFound:
            if order.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
                _mark(order, Order.Status.CANCELLED, "Cancelled before the venue knew it")
                return order
            raise ApplicationError("The venue does not know this order; reconciliation will settle it.") from None
        except ExchangeError as exc:
            raise ApplicationError(f"Cancel failed: {type(exc).__name__}: {exc.message}") from None
    finally:
        if own:
            trader.close()
    order = order_apply_result(order=order, result=result)
    logger.info("order %s cancelled by %s", order.client_order_id, actor or "?")
    return order


def verdict_summary(verdict: Verdict) -> dict[str, Any]:
    """What a caller (an API response, an LLM tool result) is told about a verdict."""
    return {"allowed": verdict.allowed, "rule": verdict.rule, "message": verdict.message,
            "details": {k: (dec_str(v) if isinstance(v, Decimal) else v) for k, v in verdict.details.items()}}
