"""order_submit: the only road from an intent to a venue.

    validate -> (idempotency) -> live read -> [lock user's risk state: snapshot, policy,
    RiskEvent, Order saved PENDING or REJECTED] -> send -> position read ->
    [record result, fills, positions, fill folded]

Failures: the platform's own state (Redis, the database) unreadable before sending raises
PlatformUnavailable with nothing written; a guard or limiter that refuses before sending
marks the order FAILED ("Not sent"); an answer lost after sending leaves it UNKNOWN
("pending confirmation") for reconciliation; after the venue took the order nothing
raises: a failure to record it is logged and the caller gets the order.

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
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from alpha_platform.common.config import get_config
from alpha_platform.common.errors import ApplicationError, CredentialsError, PlatformUnavailable
from alpha_platform.common.money import dec_str, decimal_input
from alpha_platform.common.vocabulary import ORDER_SIDES, POSITION_SIDES, TRIGGER_ORDER_TYPES
from exchanges.adapters.base import ExchangeTrader, OrderRequest, OrderResult, OrderSide, OrderType, PositionSide
from exchanges.adapters.errors import (
    CircuitOpenError,
    ExchangeError,
    GuardUnavailable,
    InvalidOrderError,
    NotProcessed,
    OperationalError,
    OrderNotFound,
    RateLimited,
)
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskEvent, RiskProfile
from risk.policy import Limits, OrderIntent, Verdict, check_pre_trade
from risk.services import risk_event_record
from trading.events import order_event
from trading.models import Order
from trading.services.positions import STATUS_MAP, balance_snapshot_record, order_apply_result, positions_sync
from trading.services.snapshot import PLATFORM_DOWN, live_read, risk_snapshot

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
    if side not in ORDER_SIDES:
        errors["side"] = "Side must be BUY or SELL."
    if position_side not in POSITION_SIDES:
        errors["position_side"] = "Position side must be LONG or SHORT."
    if order_type not in SUPPORTED_TYPES:
        errors["order_type"] = f"Order type must be one of {', '.join(sorted(SUPPORTED_TYPES))}."
    if symbol not in get_config().symbol_map(account.venue):
        errors["symbol"] = f"{symbol} is not traded on {account.venue}."
    for name, raw, required in (("quantity", quantity, True), ("price", price, order_type == "LIMIT"),
                                ("stop_price", stop_price, order_type in TRIGGER_ORDER_TYPES),
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
            now = timezone.now()
            # reference_price: the mark this check valued the order at, so every later
            # check values it while it is in flight. submitted_at is set here, not in a
            # write of its own after the commit: nothing touches the database between
            # the commit and the send, so a database failing there cannot strand an order.
            order = Order(**order_fields, risk_event=event, reference_price=read.price,
                          status=Order.Status.PENDING if verdict.allowed else Order.Status.REJECTED,
                          error="" if verdict.allowed else verdict.message,
                          submitted_at=now if verdict.allowed else None)
            if not verdict.allowed:
                order.closed_at = now
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
    except (DatabaseError, RedisError) as exc:
        # Before anything was sent: the transaction rolled back, so nothing is half-written.
        logger.warning("order %s refused: platform state unavailable before sending (%s)", cid,
                       type(exc).__name__)
        raise PlatformUnavailable(PLATFORM_DOWN, extra={"retry_after_seconds": 5}) from exc

    if verdict.trip_kill_switch:
        from trading.services.kill_switch import kill_switch_trip

        kill_switch_trip(user=user, label="daily_loss_limit", reason=verdict.message)
    if not verdict.allowed:
        return SubmitResult(order=order, verdict=verdict, risk_event=event)

    request = OrderRequest(symbol=symbol, side=OrderSide(side), position_side=PositionSide(position_side),
                           order_type=OrderType(order_type), quantity=quantity, client_order_id=cid, price=price,
                           stop_price=stop_price, reduce_only=reduce_only, time_in_force=time_in_force,
                           leverage=leverage, stop_loss=stop_loss, take_profit=take_profit)
    try:
        result = trader.place_order(request)
    except (GuardUnavailable, CircuitOpenError, RateLimited, NotProcessed) as exc:
        # Refused by our own guard, or by the venue's limiter before it took the order.
        _mark(order, Order.Status.FAILED, f"Not sent: {type(exc).__name__}: {exc.message}")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except InvalidOrderError as exc:
        _mark(order, Order.Status.REJECTED, f"Venue rejected the order: {exc.message}")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except OperationalError as exc:
        # Credentials or permissions refused: the venue did not take the order.
        _mark(order, Order.Status.FAILED, f"Not sent: {type(exc).__name__}: {exc.message}")
        try:
            ExchangeAccount.objects.filter(pk=account.pk).update(status=ExchangeAccount.Status.ERROR,
                                                                 last_error=exc.message[:1000])
        except DatabaseError:
            logger.exception("could not record the account error of account %s", account.pk)
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except ExchangeError as exc:
        # A lost answer, a 5xx, a timeout: the venue may have taken the order (5xx after
        # executing is real), so it is never FAILED on this; reconciliation settles it.
        _mark(order, Order.Status.UNKNOWN, f"Sent, pending confirmation from the venue: {type(exc).__name__}: "
                                           f"{exc.message}")
        logger.warning("order %s fate unknown; left for reconciliation", order.client_order_id)
        return SubmitResult(order=order, verdict=verdict, risk_event=event)
    except Exception as exc:  # an adapter bug: the order may or may not exist at the venue
        logger.exception("unexpected error placing order %s", order.client_order_id)
        _mark(order, Order.Status.UNKNOWN, f"Pending confirmation from the venue (unexpected error: "
                                           f"{type(exc).__name__})")
        return SubmitResult(order=order, verdict=verdict, risk_event=event)

    order = _record_placed(order=order, result=result, account=account, trader=trader, symbol=symbol)
    return SubmitResult(order=order, verdict=verdict, risk_event=event)


def _mark(order: Order, status: str, error: str) -> None:
    """Record an outcome; never raises. Should the database fail, the caller still gets the
    order as decided here, and the row, left PENDING (in flight, counted by every risk
    check), is settled by reconciliation."""
    order.status = status
    order.error = error[:2000]
    if status in (Order.Status.REJECTED, Order.Status.FAILED):
        order.closed_at = timezone.now()
    try:
        with transaction.atomic():
            order.save(update_fields=["status", "error", "closed_at", "updated_at"])
            order_event(order, "rejected" if status == Order.Status.REJECTED else "updated")
    except Exception:
        logger.exception("could not record order %s as %s; left for reconciliation", order.client_order_id, status)


def _record_placed(*, order: Order, result: OrderResult, account: ExchangeAccount, trader: ExchangeTrader,
                   symbol: str) -> Order:
    """The venue took the order: record its answer and, after a fill, the position and a
    balance snapshot, all in one transaction, the order's fill marked folded with the
    position read after it. Never raises: the order was placed, so the caller gets it.

    If the position read fails, the order is recorded alone and its fill stays unfolded:
    every later risk check, on any account, counts it until a position read folds it."""
    venue_positions = balance = None
    read_started_at = timezone.now()
    if result.executed_quantity > 0:
        try:
            venue_positions = trader.get_positions([symbol])
            balance = trader.get_balance()
        except (ExchangeError, RedisError, DatabaseError) as exc:  # the paper venue's book is in the database
            logger.warning("position read after fill failed for account %s: %s; the fill counts as unfolded",
                           account.pk, type(exc).__name__)
    try:
        with transaction.atomic():
            recorded = order_apply_result(order=order, result=result)
            if venue_positions is not None and recorded.executed_quantity > 0:
                positions_sync(account=account, venue_positions=venue_positions, symbols=[symbol],
                               read_started_at=read_started_at)
                recorded.position_folded_at = timezone.now()
                Order.objects.filter(pk=recorded.pk).update(position_folded_at=recorded.position_folded_at)
                if balance is not None:
                    balance_snapshot_record(account=account, balance=balance)
        return recorded
    except Exception:
        logger.exception("order %s placed but its result and position could not be recorded together",
                         order.client_order_id)
    try:
        return order_apply_result(order=order, result=result)
    except Exception:
        logger.exception("order %s placed but not recorded; left for reconciliation", order.client_order_id)
    # What the venue said, in memory; the row stays PENDING (in flight, counted) until
    # reconciliation looks the order up by its client order id.
    order.status = STATUS_MAP.get(str(result.status), Order.Status.UNKNOWN)
    order.exchange_order_id = result.order_id or order.exchange_order_id
    order.executed_quantity = min(result.executed_quantity, order.quantity)
    order.executed_price = result.executed_price
    order.error = "Placed at the venue; recording it failed, pending confirmation by reconciliation"
    return order


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
