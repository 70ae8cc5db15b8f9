"""Properties of the pre-trade risk policy over random books (hypothesis): verdicts are
well formed, missing data is never allowed, a halted user can only reduce, reservations and
more quantity never turn a rejection into an allow, and opening orders match an
independent oracle. No database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk import policy
from risk.policy import (
    OrderIntent,
    PositionView,
    Snapshot,
    check_pre_trade,
)
from tests.risk.policy_builders import (
    EXPOSURE_RULES,
    NOW,
    assert_allowed,
    make_limits,
    make_snap,
)

# -- properties -------------------------------------------------------------------------

ACCOUNTS = {1: "binance", 2: "hyperliquid", 3: "binance"}
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"]
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Two flavours of input: "wild" ranges reach the edges (None reads, negative equity, zero
# limits, halts), "realistic" ones keep enough orders alive to reach the exposure rules.
qtys = st.decimals(min_value=D("0.001"), max_value=3, places=3)
marks = st.decimals(min_value=1, max_value=5000, places=2)
fractions = st.decimals(0, 1, places=2)


@st.composite
def views(draw):
    acct = draw(st.sampled_from(sorted(ACCOUNTS)))
    return PositionView(account_id=acct, venue=ACCOUNTS[acct], symbol=draw(st.sampled_from(SYMBOLS)),
                        side=draw(st.sampled_from(["LONG", "SHORT"])), size=draw(qtys), mark_price=draw(marks))


books = st.lists(views(), max_size=6).map(tuple)


@st.composite
def intents(draw, opening=None, wild=True):
    acct = draw(st.sampled_from(sorted(ACCOUNTS)))
    side = draw(st.sampled_from(["BUY", "SELL"]))
    if opening is None:
        position_side = draw(st.sampled_from(["LONG", "SHORT"]))
    else:
        position_side = "LONG" if (side == "BUY") == opening else "SHORT"
    order_type = draw(st.sampled_from(["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"]))
    price = draw(marks) if order_type == "LIMIT" else draw(st.none() | marks)
    symbol = draw(st.sampled_from(SYMBOLS if wild else SYMBOLS[:3]))
    return OrderIntent(account_id=acct, venue=ACCOUNTS[acct], symbol=symbol,
                       side=side, position_side=position_side, quantity=draw(qtys), order_type=order_type,
                       price=price, leverage=draw(st.integers(0, 25) if wild else st.integers(1, 8)),
                       reduce_only=draw(st.booleans()))


@st.composite
def limits_st(draw, wild=True):
    if wild:
        symbols = draw(st.sets(st.sampled_from(SYMBOLS)))
        return make_limits(
            max_leverage=draw(st.integers(1, 20)),
            max_position_notional_usd=draw(st.decimals(0, 200000, places=2)),
            max_position_percent=draw(fractions), max_total_exposure_percent=draw(fractions),
            max_exchange_exposure_percent=draw(fractions), daily_loss_limit_percent=draw(fractions),
            min_notional_usd=draw(st.decimals(0, 50, places=2)), allowed_symbols=frozenset(symbols),
            max_open_positions=draw(st.integers(0, 8)), max_orders_per_minute=draw(st.integers(0, 12)),
            max_orders_per_hour=draw(st.integers(0, 150)), loss_cooldown_seconds=draw(st.integers(0, 600)),
        )
    share = st.decimals(D("0.05"), 1, places=2)
    return make_limits(
        max_leverage=draw(st.integers(3, 20)),
        max_position_notional_usd=draw(st.decimals(500, 50000, places=2)),
        max_position_percent=draw(share), max_total_exposure_percent=draw(share),
        max_exchange_exposure_percent=draw(share),
        daily_loss_limit_percent=draw(st.decimals(D("0.05"), D("0.5"), places=2)),
        min_notional_usd=draw(st.decimals(0, 1, places=2)),
        allowed_symbols=frozenset(SYMBOLS[:3]), max_open_positions=draw(st.integers(4, 12)),
        max_orders_per_minute=10, max_orders_per_hour=120,
        loss_cooldown_seconds=draw(st.integers(0, 600)),
    )


@st.composite
def snaps(draw, *, complete=False, halts=True, wild=True):
    if not wild:
        equity = draw(st.decimals(1000, 60000, places=2))
        return make_snap(
            equity=equity, positions=draw(books), price=draw(marks), reserved=draw(books),
            day_start_equity=(equity * draw(st.decimals(D("0.9"), D("1.3"), places=3))).quantize(D("0.01")),
            orders_last_minute=draw(st.integers(0, 9)), orders_last_hour=draw(st.integers(0, 100)),
            last_losing_close_at=draw(st.sampled_from([None] * 9 + [NOW - timedelta(seconds=30)])),
            venue_min_notional=D("0"), venue_max_leverage=draw(st.sampled_from([5, 10, 20, 50, 125])),
        )
    rare = st.sampled_from([False] * 9 + [True])  # halts would hide every later rule
    maybe = (lambda s: s) if complete else (lambda s: st.none() | s)
    return Snapshot(
        now=NOW,
        equity=draw(maybe(st.decimals(-1000, 200000, places=2))),
        positions=draw(maybe(books)),
        price=draw(maybe(marks)),
        reserved=draw(books),
        day_start_equity=draw(maybe(st.decimals(0, 200000, places=2))),
        realized_pnl_today=draw(st.decimals(-5000, 5000, places=2)),
        unrealized_pnl=draw(st.decimals(-5000, 5000, places=2)),
        orders_last_minute=draw(st.integers(0, 15)),
        orders_last_hour=draw(st.integers(0, 150)),
        last_losing_close_at=draw(st.none() | st.integers(0, 900).map(lambda s: NOW - timedelta(seconds=s))),
        venue_min_notional=draw(st.decimals(0, 20, places=2)),
        venue_max_leverage=draw(st.integers(1, 125)),
        user_halted=draw(rare) if halts else False,
        global_halt=draw(rare) if halts else False,
    )


cases = (st.tuples(limits_st(), intents(), snaps())
         | st.tuples(limits_st(wild=False), intents(wild=False), snaps(wild=False)))


@PROPS
@given(cases)
def test_verdicts_are_well_formed(case):
    limits, intent, snap = case
    v = check_pre_trade(limits, intent, snap)
    assert v.rule in policy.RULES
    assert v.message and all(isinstance(x, str) for x in v.details.values())
    assert v.allowed == (v.rule in ("all", "reduce_only"))
    assert v.trip_kill_switch == (v.rule == "daily_loss")
    assert v.reduces_only == (v.rule == "reduce_only")


@PROPS
@given(cases, st.sampled_from(["price", "equity", "positions"]))
def test_missing_data_is_never_allowed(case, field):
    # A missing position read always rejects; a missing price or equity rejects anything
    # but a confirmed pure reduction (which needs only the positions).
    limits, intent, snap = case
    v = check_pre_trade(limits, intent, dataclasses.replace(snap, **{field: None}))
    assert not v.allowed or (field != "positions" and v.reduces_only)


@PROPS
@given(cases)
def test_a_halted_user_can_only_reduce(case):
    limits, intent, snap = case
    v = check_pre_trade(limits, intent, dataclasses.replace(snap, user_halted=True))
    assert not v.allowed or v.reduces_only


@PROPS
@given(limits_st() | limits_st(wild=False), intents(opening=False),
       snaps(complete=True, halts=False) | snaps(wild=False), st.data())
def test_a_pure_reduction_is_never_rejected_by_later_rules(limits, intent, snap, data):
    # Give the book a leg for this intent at least as big as the order.
    size = intent.quantity + data.draw(st.decimals(0, 2, places=3))
    leg = PositionView(account_id=intent.account_id, venue=intent.venue, symbol=intent.symbol,
                       side=intent.position_side, size=size, mark_price=data.draw(marks))
    snap = dataclasses.replace(snap, positions=snap.positions + (leg,),
                               user_halted=data.draw(st.booleans()))
    v = check_pre_trade(limits, intent, snap)
    assert_allowed(v, "reduce_only")
    assert v.reduces_only


@PROPS
@given(cases, books)
def test_reservations_never_turn_a_rejection_into_an_allow(case, extra):
    limits, intent, snap = case
    before = check_pre_trade(limits, intent, snap)
    after = check_pre_trade(limits, intent, dataclasses.replace(snap, reserved=snap.reserved + extra))
    if not before.allowed:
        assert not after.allowed, (before, after)


@PROPS
@given(limits_st(wild=False), intents(opening=True, wild=False), snaps(wild=False), qtys)
def test_more_quantity_never_turns_an_exposure_rejection_into_an_allow(limits, intent, snap, more):
    intent = dataclasses.replace(intent, reduce_only=False)
    before = check_pre_trade(limits, intent, snap)
    if before.rule in EXPOSURE_RULES:
        after = check_pre_trade(limits, dataclasses.replace(intent, quantity=intent.quantity + more), snap)
        assert not after.allowed and after.rule in EXPOSURE_RULES, (before, after)


@PROPS
@given(limits_st(wild=False), intents(opening=True, wild=False), snaps(wild=False))
def test_opening_orders_match_an_independent_oracle(limits, intent, snap):
    """Recompute every limit from scratch: allowed exactly when all of them hold."""
    intent = dataclasses.replace(intent, reduce_only=False)
    v = check_pre_trade(limits, intent, snap)
    book = snap.positions + snap.reserved
    added = intent.quantity * snap.price
    same = sum((p.size * p.mark_price for p in book
                if p.account_id == intent.account_id and p.symbol == intent.symbol), D(0)) + added
    venue = sum((p.size * p.mark_price for p in book if p.venue == intent.venue), D(0)) + added
    total = sum((p.size * p.mark_price for p in book), D(0)) + added
    legs = {(p.account_id, p.symbol, p.side) for p in book} | {(intent.account_id, intent.symbol,
                                                                 intent.position_side)}
    order_price = intent.price if intent.order_type == "LIMIT" else snap.price
    loss = max(D(0), snap.day_start_equity - snap.equity)
    cooling = (snap.last_losing_close_at is not None and limits.loss_cooldown_seconds > 0
               and (snap.now - snap.last_losing_close_at).total_seconds() < limits.loss_cooldown_seconds)
    conditions = {
        "symbol": intent.symbol in limits.allowed_symbols,
        "leverage": 1 <= intent.leverage <= min(limits.max_leverage, snap.venue_max_leverage),
        "min_notional": intent.quantity * order_price >= max(limits.min_notional_usd, snap.venue_min_notional),
        "daily_loss": loss == 0 or loss < limits.daily_loss_limit_percent * snap.day_start_equity,
        "cooldown": not cooling,
        "rate": snap.orders_last_minute < limits.max_orders_per_minute
        and snap.orders_last_hour < limits.max_orders_per_hour,
        "count": len(legs) <= limits.max_open_positions,
        "position_abs": same <= limits.max_position_notional_usd,
        "position_pct": same <= limits.max_position_percent * snap.equity,
        "venue": venue <= limits.max_exchange_exposure_percent * snap.equity,
        "total": total <= limits.max_total_exposure_percent * snap.equity,
    }
    assert v.allowed == all(conditions.values()), (v, conditions)
    if v.allowed:
        assert v.rule == "all" and D(v.details["total_exposure"]) == total
