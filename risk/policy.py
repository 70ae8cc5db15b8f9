"""The pre-trade risk policy: one pure function that decides whether an order may go out.

Pure on purpose: no Django, no ORM, no clock, no I/O. ``trading.services.order_submit``
builds the inputs (``Limits`` from the user's RiskProfile, an ``OrderIntent``, a ``Snapshot``
read under the user's lock; defined in ``risk.inputs`` and importable from here) and records
the ``Verdict`` as a RiskEvent. Every order, whoever
asks (agent, API, portal, admin, kill switch), passes through ``check_pre_trade``.

Conventions
-----------
* Boundaries: being *at* a limit is allowed, anything *over* it is rejected. A 10,000 USD
  per-symbol limit allows a position of exactly 10,000.00 USD and rejects 10,000.01.
  Counts follow the same rule: ``max_orders_per_minute = 10`` allows the 10th order in a
  minute and rejects the 11th (``orders_last_minute >= 10`` means this one would be the 11th).
  A cooldown of 300 s is over at exactly 300 s. The minimum notional is met when equal to it.
  One deliberate exception: the daily loss limit is *reached* at equality (a 15% limit trips
  at a 15.0% loss), because it is a stop, not an allowance.
* Fail closed: a missing price, equity or position read rejects the order; it never passes.
* Exposure is gross notional at the mark: ``sum(size * mark_price)`` over open positions plus
  ``reserved`` (orders the gate accepted that have not filled yet) plus this order's
  ``quantity * mark``, whichever side. Hedged legs add up; they do not net.
* Positions are hedge-mode legs keyed by (account, symbol, side). ``position_side`` names the
  leg an order acts on: BUY+LONG / SELL+SHORT open or increase it, SELL+LONG / BUY+SHORT close
  or reduce it.
* Fractions in ``Limits`` are shares of the user's equity across all accounts (0.3 = 30%).

Rules, in order; the first that fails decides (``Verdict.rule`` names are stable identifiers):

 1. global_halt         the platform-wide halt rejects everything, reductions included.
 2. user_halted         the user's kill switch rejects every order that is not reduce-shaped
                        (closing, or marked reduce_only); those go on to rule 6, which only
                        lets true reductions through, so the kill switch can still flatten.
 3. data_unavailable    price, equity or positions unreadable (None), or price <= 0: reject.
                        A reduce-shaped order needs only the positions (to confirm it reduces).
                        For opening orders also: equity <= 0, or day_start_equity unknown.
 3b. exposure_unvalued  an opening order while part of the user's exposure (a position or an
                        order in flight, listed in ``Snapshot.unvalued``) has no figure to value
                        it at: refused, since counting it as zero could pass a cap.
 4. quantity            quantity must be > 0.
 5. limit_price         a LIMIT order needs a limit price > 0.
 6. reduce_only / reduce_only_no_position / reduce_only_flip
                        A reduce-shaped order acts on the leg (account, symbol, position_side).
                        If it closes part or all of that leg (quantity <= filled size) it is
                        allowed at once with ``reduces_only=True``; rules 7-18 do not apply.
                        No leg, or an opening-shaped order marked reduce_only (same direction
                        as the leg) -> reduce_only_no_position; more than the leg -> flip.
                        Reservations are not reducible: an unfilled order is not a position.
 7. symbol_not_allowed  symbol not in allowed_symbols (an empty set allows none).
 8. leverage            1 <= leverage <= min(max_leverage, venue_max_leverage).
 9. min_notional        quantity * (limit price for LIMIT, else mark) must be
                        >= max(min_notional_usd, venue_min_notional).
10. daily_loss          loss_today = max(0, day_start_equity - equity); reject with
                        ``trip_kill_switch=True`` when loss_today > 0 and
                        loss_today >= daily_loss_limit_percent * day_start_equity.
                        realized/unrealized PnL are reported in details, not used: equity
                        already contains both. Transfers must be folded into day_start_equity
                        by the caller, or a withdrawal reads as a loss (which fails safe).
11. loss_cooldown       now - last_losing_close_at < loss_cooldown_seconds -> reject
                        (0 disables; a close time in the future counts as inside).
12. order_rate_minute   orders_last_minute >= max_orders_per_minute -> reject.
13. order_rate_hour     orders_last_hour >= max_orders_per_hour -> reject.
14. max_open_positions  legs open after the order (positions + reservations + this leg,
                        distinct (account, symbol, side)) > max_open_positions -> reject.
                        Opening a new leg at the max is rejected; adding to an existing leg
                        is too while the book is already above the max (e.g. after the
                        limit was lowered), which keeps the rule monotone in reservations.
15. position_notional_abs  notional on (account, symbol) after the order > max_position_notional_usd.
16. position_notional_pct  the same notional > max_position_percent * equity.
17. exchange_exposure   notional on the intent's venue, all the user's accounts, after the
                        order > max_exchange_exposure_percent * equity.
18. total_exposure      notional on all venues after the order > max_total_exposure_percent * equity.
Otherwise ``rule="all"`` with the headroom in the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from alpha_platform.common.money import ZERO as D0

# The inputs and the answer live in risk.inputs; imported from here by the callers.
from risk.inputs import Limits, OrderIntent, PositionView, Snapshot, Verdict

__all__ = [
    "Limits", "OrderIntent", "PositionView", "Snapshot", "Verdict",
    "check_pre_trade", "position_after", "exposure", "RULES",
]

RULES = (
    "global_halt", "user_halted", "data_unavailable", "exposure_unvalued", "quantity", "limit_price",
    "reduce_only", "reduce_only_no_position", "reduce_only_flip", "symbol_not_allowed",
    "leverage", "min_notional", "daily_loss", "loss_cooldown", "order_rate_minute",
    "order_rate_hour", "max_open_positions", "position_notional_abs", "position_notional_pct",
    "exchange_exposure", "total_exposure", "all",
)


# -- helpers the service and benchmarks reuse -----------------------------------------

def _leg_size(positions: Iterable[PositionView], account_id: int, symbol: str, side: str) -> Decimal:
    return sum((p.size for p in positions
                if p.account_id == account_id and p.symbol == symbol and p.side == side), D0)


def position_after(intent: OrderIntent, positions: Iterable[PositionView]) -> Decimal:
    """Size (base units) of the leg (account, symbol, position_side) once the order fills.

    Opening-shaped orders add, closing-shaped orders subtract; a negative result means the
    order is larger than the leg (it would flip). ``reduce_only`` is not applied here: the
    policy rejects a reduce_only order that this shows would not reduce.
    """
    size = _leg_size(positions, intent.account_id, intent.symbol, intent.position_side)
    return size + intent.quantity if intent.is_opening else size - intent.quantity


def exposure(positions: Iterable[PositionView], venue: str | None = None) -> Decimal:
    """Gross notional at mark, ``sum(|size * mark_price|)``, optionally on one venue only."""
    return sum((p.notional for p in positions if venue is None or p.venue == venue), D0)


# -- formatting: people read these sentences --------------------------------------------

def daily_loss(day_start_equity: Decimal, equity: Decimal, limit_percent: Decimal) -> tuple[Decimal, Decimal, bool]:
    """(loss today, the loss limit in USD, whether the limit is reached). Rule 10; also
    used by the periodic watch, so a loss trips the kill switch without an order."""
    loss = max(D0, day_start_equity - equity)
    loss_limit = limit_percent * day_start_equity
    return loss, loss_limit, loss > 0 and loss >= loss_limit


def _usd(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pct(fraction: Decimal) -> str:
    return f"{fraction * 100:,.1f}%"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _share(amount: Decimal, equity: Decimal) -> Decimal:
    return amount / equity if equity > 0 else D0


def _num(value: Any) -> str:
    """A detail as text: Decimals to at most 8 places, without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value.quantize(Decimal("0.00000001")).normalize(), "f") if value.is_finite() else str(value)
        return "0" if text in ("-0", "") else text
    return str(value)


def _reject(rule: str, message: str, trip: bool = False, **details: Any) -> Verdict:
    return Verdict(allowed=False, rule=rule, message=message,
                   details={k: _num(v) for k, v in details.items()}, trip_kill_switch=trip)


# -- the decision -----------------------------------------------------------------------

def check_pre_trade(limits: Limits, intent: OrderIntent, snap: Snapshot) -> Verdict:
    """Decide one order. Rules and conventions: see the module docstring."""
    sym, venue, qty = intent.symbol, intent.venue, intent.quantity
    what = f"{intent.side} {_qty(qty)} {sym} {intent.position_side} on {venue}"

    if snap.global_halt:
        return _reject("global_halt", "Trading is halted on the whole platform; no orders are accepted.")

    if snap.user_halted and not intent.is_reduce_shaped:
        return _reject("user_halted", "Your kill switch is on: only orders that reduce an existing "
                       f"position are accepted, and {what} would open or increase one.")

    # A reduction needs only the position it reduces: the kill switch must be able to
    # flatten while a price or balance read is failing. Anything else needs all three.
    needed = (("positions", snap.positions),) if intent.is_reduce_shaped else (
        ("price", snap.price), ("equity", snap.equity), ("positions", snap.positions))
    missing = [name for name, value in needed if value is None]
    if missing:
        labels = {"price": f"the mark price of {sym} on {venue}", "equity": "your equity (account balances)",
                  "positions": "your open positions"}
        return _reject("data_unavailable", f"Could not read {' or '.join(labels[m] for m in missing)}; the "
                       "order is refused until the data is available again.", missing=",".join(missing))
    price, equity, positions = snap.price, snap.equity, snap.positions
    assert positions is not None
    if price is not None and price <= 0:
        return _reject("data_unavailable", f"The mark price of {sym} on {venue} reads {price}, "
                       "which cannot be right; the order is refused.", price=price)
    if not intent.is_reduce_shaped:
        assert price is not None and equity is not None
        if equity <= 0:
            return _reject("data_unavailable", f"Your equity is {_usd(equity)} USD; no position can "
                           "be opened or increased without margin.", equity=equity)
        if snap.day_start_equity is None:
            return _reject("data_unavailable", "Your equity at the start of the day is unknown, so the "
                           "daily loss limit cannot be checked; the order is refused.",
                           missing="day_start_equity")
        if snap.unvalued:
            return _reject("exposure_unvalued", "Part of your exposure cannot be valued (no price is known for "
                           f"{'; '.join(snap.unvalued[:3])}{' and more' if len(snap.unvalued) > 3 else ''}), "
                           "so your limits cannot be checked; the order is refused.",
                           unvalued=len(snap.unvalued))

    if qty <= 0:
        return _reject("quantity", f"The quantity must be above zero; it is {_qty(qty)}.", quantity=qty)
    if intent.order_type == "LIMIT" and (intent.price is None or intent.price <= 0):
        given = "none was given" if intent.price is None else f"it is {intent.price}"
        return _reject("limit_price", f"A limit order needs a limit price above zero; {given}.",
                       price=intent.price)

    if intent.is_reduce_shaped:
        leg = _leg_size(positions, intent.account_id, sym, intent.position_side)
        if intent.is_opening:
            return _reject("reduce_only_no_position", f"The order is reduce-only, but {what} would "
                           f"increase the {intent.position_side} position, not reduce it.",
                           position_size=leg, quantity=qty)
        if leg <= 0:
            return _reject("reduce_only_no_position", f"There is no {intent.position_side} position in "
                           f"{sym} on this {venue} account to reduce.", position_size=leg, quantity=qty)
        if qty > leg:
            return _reject("reduce_only_flip", f"Closing {_qty(qty)} {sym} is more than your "
                           f"{intent.position_side} position of {_qty(leg)}; it would flip the position. "
                           f"Close at most {_qty(leg)}.", position_size=leg, quantity=qty)
        left = leg - qty
        return Verdict(allowed=True, rule="reduce_only", reduces_only=True,
                       message=f"Allowed: reduces your {sym} {intent.position_side} position on {venue} "
                               f"from {_qty(leg)} to {_qty(left)}.",
                       details={"position_size": _num(leg), "quantity": _num(qty), "size_after": _num(left)})

    # From here on the order opens or increases a position.
    if sym not in limits.allowed_symbols:
        allowed = ", ".join(sorted(limits.allowed_symbols)) or "none"
        return _reject("symbol_not_allowed", f"{sym} is not among your allowed symbols ({allowed}).",
                       symbol=sym, allowed_symbols=",".join(sorted(limits.allowed_symbols)))

    lev = intent.leverage
    if lev < 1:
        return _reject("leverage", f"Leverage must be at least 1x; it is {lev}x.", leverage=lev)
    if lev > limits.max_leverage:
        return _reject("leverage", f"Leverage {lev}x is above your limit of {limits.max_leverage}x.",
                       leverage=lev, max_leverage=limits.max_leverage)
    if lev > snap.venue_max_leverage:
        return _reject("leverage", f"Leverage {lev}x is above {venue}'s maximum of "
                       f"{snap.venue_max_leverage}x for {sym}.", leverage=lev,
                       venue_max_leverage=snap.venue_max_leverage)

    order_price = intent.price if intent.order_type == "LIMIT" and intent.price is not None else price
    order_notional = qty * order_price
    floor = max(limits.min_notional_usd, snap.venue_min_notional)
    if order_notional < floor:
        source = "your minimum" if floor == limits.min_notional_usd else f"{venue}'s minimum"
        return _reject("min_notional", f"The order is worth {_usd(order_notional)} USD, below {source} of "
                       f"{_usd(floor)} USD per order.", notional=order_notional, min_notional=floor)

    day_start = snap.day_start_equity
    assert day_start is not None
    loss, loss_limit, breached = daily_loss(day_start, equity, limits.daily_loss_limit_percent)
    if breached:
        return _reject("daily_loss", f"Your loss today is {_usd(loss)} USD ({_pct(_share(loss, day_start))} of "
                       f"{_usd(day_start)} USD at the start of the day), which reaches your daily limit of "
                       f"{_pct(limits.daily_loss_limit_percent)} ({_usd(loss_limit)} USD); no new positions, and "
                       "your kill switch trips.", trip=True,
                       loss_today=loss, loss_limit=loss_limit, day_start_equity=day_start, equity=equity,
                       realized_pnl_today=snap.realized_pnl_today, unrealized_pnl=snap.unrealized_pnl)

    cooldown = limits.loss_cooldown_seconds
    if cooldown > 0 and snap.last_losing_close_at is not None:
        elapsed = snap.now - snap.last_losing_close_at
        if elapsed < timedelta(seconds=cooldown):
            secs = int(elapsed.total_seconds())
            return _reject("loss_cooldown", f"Your last losing close was {secs} s ago; new positions wait "
                           f"{cooldown} s after a loss ({cooldown - secs} s left).",
                           seconds_since_loss=secs, cooldown_seconds=cooldown)

    if snap.orders_last_minute >= limits.max_orders_per_minute:
        return _reject("order_rate_minute", f"You have placed {snap.orders_last_minute} orders in the last "
                       f"minute; your limit is {limits.max_orders_per_minute} per minute.",
                       orders=snap.orders_last_minute, limit=limits.max_orders_per_minute)
    if snap.orders_last_hour >= limits.max_orders_per_hour:
        return _reject("order_rate_hour", f"You have placed {snap.orders_last_hour} orders in the last "
                       f"hour; your limit is {limits.max_orders_per_hour} per hour.",
                       orders=snap.orders_last_hour, limit=limits.max_orders_per_hour)

    book = positions + snap.reserved
    legs = {(p.account_id, p.symbol, p.side) for p in book if p.size > 0}
    this_leg = (intent.account_id, sym, intent.position_side)
    legs_after = legs | {this_leg}
    if len(legs_after) > limits.max_open_positions:
        new = this_leg not in legs
        return _reject("max_open_positions", f"You have {len(legs)} open positions (including orders in "
                       f"flight); your limit is {limits.max_open_positions}"
                       + (f", so a new {sym} {intent.position_side} position cannot be opened."
                          if new else f", already above it, so {sym} cannot be increased."),
                       open_positions=len(legs), limit=limits.max_open_positions)

    # Exposure is valued at the mark, whatever the order's limit price.
    added = qty * price
    pos_after = sum((p.notional for p in book if p.account_id == intent.account_id and p.symbol == sym),
                    D0) + added
    if pos_after > limits.max_position_notional_usd:
        return _reject("position_notional_abs", f"Position in {sym} would be {_usd(pos_after)} USD, above your "
                       f"limit of {_usd(limits.max_position_notional_usd)} USD per symbol.",
                       position_notional=pos_after, limit=limits.max_position_notional_usd)
    pos_cap = limits.max_position_percent * equity
    if pos_after > pos_cap:
        return _reject("position_notional_pct", f"Position in {sym} would be {_usd(pos_after)} USD "
                       f"({_pct(_share(pos_after, equity))} of your equity of {_usd(equity)} USD), above your "
                       f"limit of {_pct(limits.max_position_percent)} ({_usd(pos_cap)} USD) per symbol.",
                       position_notional=pos_after, limit=pos_cap, equity=equity)

    venue_after = exposure(book, venue) + added
    venue_cap = limits.max_exchange_exposure_percent * equity
    if venue_after > venue_cap:
        return _reject("exchange_exposure", f"Exposure on {venue} would be {_usd(venue_after)} USD "
                       f"({_pct(_share(venue_after, equity))} of your equity of {_usd(equity)} USD), above "
                       f"your limit of {_pct(limits.max_exchange_exposure_percent)} ({_usd(venue_cap)} USD) "
                       "per exchange.", exposure=venue_after, limit=venue_cap, equity=equity)

    total_after = exposure(book) + added
    total_cap = limits.max_total_exposure_percent * equity
    if total_after > total_cap:
        return _reject("total_exposure", f"Total exposure would be {_usd(total_after)} USD "
                       f"({_pct(_share(total_after, equity))} of your equity of {_usd(equity)} USD), above "
                       f"your limit of {_pct(limits.max_total_exposure_percent)} ({_usd(total_cap)} USD).",
                       exposure=total_after, limit=total_cap, equity=equity)

    pos_limit = min(limits.max_position_notional_usd, pos_cap)
    return Verdict(
        allowed=True, rule="all",
        message=(f"Allowed: {sym} position {_usd(pos_after)} of {_usd(pos_limit)} USD; "
                 f"{venue} exposure {_pct(_share(venue_after, equity))} of "
                 f"{_pct(limits.max_exchange_exposure_percent)}; total exposure "
                 f"{_pct(_share(total_after, equity))} of {_pct(limits.max_total_exposure_percent)}."),
        details={"order_notional": _num(order_notional), "position_notional": _num(pos_after),
                 "position_limit": _num(pos_limit), "exchange_exposure": _num(venue_after),
                 "exchange_limit": _num(venue_cap), "total_exposure": _num(total_after),
                 "total_limit": _num(total_cap), "equity": _num(equity),
                 "open_positions": str(len(legs_after))},
    )
