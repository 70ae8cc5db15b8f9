"""The pre-trade risk policy (risk/policy.py): every rule at its boundaries, fail-closed
paths, reduce-only behaviour, halts, and properties over random books. No database."""

from __future__ import annotations

import ast
import dataclasses
import pathlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from enum import StrEnum
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk import inputs, policy
from risk.policy import (
    Limits,
    OrderIntent,
    PositionView,
    Snapshot,
    Verdict,
    check_pre_trade,
    exposure,
    position_after,
)

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
BTC = "BTC/USDT"
EXPOSURE_RULES = {"max_open_positions", "position_notional_abs", "position_notional_pct",
                  "exchange_exposure", "total_exposure"}


def make_limits(**kw) -> Limits:
    values = dict(
        max_leverage=5, max_position_notional_usd=D("10000"), max_position_percent=D("0.2"),
        max_total_exposure_percent=D("0.5"), max_exchange_exposure_percent=D("0.3"),
        daily_loss_limit_percent=D("0.15"), min_notional_usd=D("5"),
        allowed_symbols=frozenset({"BTC/USDT", "ETH/USDT", "SOL/USDT"}), max_open_positions=5,
        max_orders_per_minute=10, max_orders_per_hour=120, loss_cooldown_seconds=300,
    )
    values.update(kw)
    return Limits(**values)


def make_intent(**kw) -> OrderIntent:
    """Default: market BUY 0.1 BTC LONG on binance at 50,000 = 5,000.00 USD."""
    values = dict(account_id=1, venue="binance", symbol=BTC, side="BUY", position_side="LONG",
                  quantity=D("0.1"), order_type="MARKET", price=None, leverage=3, reduce_only=False)
    values.update(kw)
    return OrderIntent(**values)


def close_long(qty, **kw) -> OrderIntent:
    return make_intent(side="SELL", position_side="LONG", quantity=D(qty), **kw)


def pos(symbol=BTC, size="0.1", mark="50000", *, account_id=1, venue="binance", side="LONG") -> PositionView:
    return PositionView(account_id=account_id, venue=venue, symbol=symbol, side=side,
                        size=D(size), mark_price=D(mark))


def make_snap(**kw) -> Snapshot:
    """Default: 100,000 USD equity (also at day start), no positions, BTC at 50,000."""
    values = dict(now=NOW, equity=D("100000"), positions=(), price=D("50000"), day_start_equity=D("100000"),
                  realized_pnl_today=D("0"), unrealized_pnl=D("0"), orders_last_minute=0, orders_last_hour=0,
                  last_losing_close_at=None, venue_min_notional=D("5"), venue_max_leverage=20,
                  user_halted=False, global_halt=False)
    values.update(kw)
    return Snapshot(**values)


def check(limits=None, intent=None, snap=None) -> Verdict:
    return check_pre_trade(limits or make_limits(), intent or make_intent(), snap or make_snap())


def assert_allowed(v: Verdict, rule="all"):
    assert v.allowed, v
    assert v.rule == rule, v


def assert_rejected(v: Verdict, rule: str):
    assert not v.allowed, v
    assert v.rule == rule, v
    assert all(isinstance(x, str) for x in v.details.values()), v.details


# -- the module itself ------------------------------------------------------------------

def test_policy_imports_only_the_standard_library():
    # The policy and its inputs (risk/inputs.py): the standard library, and each other only.
    modules = set()
    for module in (policy, inputs):
        tree = ast.parse(pathlib.Path(module.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module != "risk.inputs":
                modules.add((node.module or "").split(".")[0])
    assert modules <= {"__future__", "collections", "dataclasses", "datetime", "decimal", "typing"}


def test_inputs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_intent().quantity = D("1")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_limits().max_leverage = 100  # type: ignore[misc]


def test_baseline_is_allowed():
    v = check()
    assert_allowed(v)
    assert D(v.details["order_notional"]) == D("5000")


def test_allowed_message_summarises_headroom():
    v = check(snap=make_snap(positions=(pos("ETH/USDT", "5", "3000", venue="hyperliquid", account_id=2),
                                        pos(BTC, "0.02", "50000"))))
    assert_allowed(v)
    # BTC 1,000 + 5,000; binance 6,000 = 6.0%; total 21,000 = 21.0%.
    assert v.message == ("Allowed: BTC/USDT position 6,000.00 of 10,000.00 USD; binance exposure 6.0% of "
                         "30.0%; total exposure 21.0% of 50.0%.")
    assert D(v.details["position_notional"]) == D("6000")
    assert D(v.details["total_exposure"]) == D("21000")
    assert v.trip_kill_switch is False and v.reduces_only is False


# -- halts ------------------------------------------------------------------------------

def test_global_halt_rejects_everything_even_reductions():
    snap = make_snap(global_halt=True, positions=(pos(),))
    assert_rejected(check(snap=snap), "global_halt")
    assert_rejected(check(intent=close_long("0.1"), snap=snap), "global_halt")


def test_user_halt_rejects_opening_orders():
    v = check(snap=make_snap(user_halted=True))
    assert_rejected(v, "user_halted")
    assert "kill switch" in v.message


def test_user_halt_allows_pure_reduction_so_the_kill_switch_can_flatten():
    snap = make_snap(user_halted=True, positions=(pos(size="0.5"),))
    v = check(intent=close_long("0.5"), snap=snap)
    assert_allowed(v, "reduce_only")
    assert v.reduces_only is True
    short_snap = make_snap(user_halted=True, positions=(pos(size="2", side="SHORT"),))
    assert_allowed(check(intent=make_intent(side="BUY", position_side="SHORT", quantity=D("2")),
                         snap=short_snap), "reduce_only")


def test_user_halt_rejects_a_closing_order_that_would_flip_or_has_nothing_to_close():
    snap = make_snap(user_halted=True, positions=(pos(size="0.5"),))
    assert_rejected(check(intent=close_long("0.6"), snap=snap), "reduce_only_flip")
    assert_rejected(check(intent=close_long("0.1"), snap=make_snap(user_halted=True)),
                    "reduce_only_no_position")
    # reduce_only on an opening-shaped order is not a reduction either
    assert_rejected(check(intent=make_intent(reduce_only=True), snap=snap), "reduce_only_no_position")


def test_global_halt_comes_before_user_halt():
    assert_rejected(check(snap=make_snap(user_halted=True, global_halt=True)), "global_halt")


# -- data unavailable (fail closed) -----------------------------------------------------

@pytest.mark.parametrize("missing", ["price", "equity", "positions"])
def test_missing_data_rejects(missing):
    snap = dataclasses.replace(make_snap(positions=(pos(size="1"),)), **{missing: None})
    v = check(intent=make_intent(), snap=snap)
    assert_rejected(v, "data_unavailable")
    assert missing in v.message and v.details["missing"] == missing


def test_a_reduction_needs_only_the_positions():
    """The kill switch must flatten while a price or balance read fails; the position read
    alone proves the order reduces."""
    base = make_snap(positions=(pos(size="1"),))
    for missing in ("price", "equity"):
        v = check(intent=close_long("0.5"), snap=dataclasses.replace(base, **{missing: None}))
        assert v.allowed and v.rule == "reduce_only"
    v = check(intent=close_long("0.5"), snap=dataclasses.replace(base, positions=None))
    assert_rejected(v, "data_unavailable")


def test_all_missing_fields_are_named():
    v = check(snap=make_snap(price=None, equity=None, positions=None))
    assert v.details["missing"] == "price,equity,positions"


@pytest.mark.parametrize("price", ["0", "-1"])
def test_non_positive_mark_price_rejects(price):
    assert_rejected(check(snap=make_snap(price=D(price))), "data_unavailable")
    assert_rejected(check(intent=close_long("0.1"), snap=make_snap(price=D(price), positions=(pos(),))),
                    "data_unavailable")


@pytest.mark.parametrize("equity", ["0", "-250.5"])
def test_non_positive_equity_rejects_opening_but_not_reduction(equity):
    v = check(snap=make_snap(equity=D(equity)))
    assert_rejected(v, "data_unavailable")
    assert "equity" in v.message
    assert_allowed(check(intent=close_long("0.1"), snap=make_snap(equity=D(equity), positions=(pos(),))),
                   "reduce_only")


def test_equity_just_above_zero_passes_the_data_rule():
    v = check(snap=make_snap(equity=D("0.01"), day_start_equity=D("0.01")))
    assert v.rule != "data_unavailable"


def test_unknown_day_start_equity_rejects_opening_but_not_reduction():
    assert_rejected(check(snap=make_snap(day_start_equity=None)), "data_unavailable")
    assert_allowed(check(intent=close_long("0.1"), snap=make_snap(day_start_equity=None, positions=(pos(),))),
                   "reduce_only")


# -- quantity and limit price -----------------------------------------------------------

@pytest.mark.parametrize("qty,ok", [("-0.001", False), ("0", False), ("0.00000001", True)])
def test_quantity_must_be_positive(qty, ok):
    v = check(intent=make_intent(quantity=D(qty)))
    if ok:
        assert v.rule != "quantity"
    else:
        assert_rejected(v, "quantity")


def test_zero_quantity_close_is_a_quantity_error_not_a_reduction():
    assert_rejected(check(intent=close_long("0"), snap=make_snap(positions=(pos(),))), "quantity")


@pytest.mark.parametrize("price", [None, D("0"), D("-1")])
def test_limit_order_needs_a_positive_price(price):
    assert_rejected(check(intent=make_intent(order_type="LIMIT", price=price)), "limit_price")


# -- reduce-only ------------------------------------------------------------------------

@pytest.mark.parametrize("qty,rule", [("0.4999", "reduce_only"), ("0.5", "reduce_only"),
                                      ("0.5001", "reduce_only_flip")])
def test_closing_at_the_position_size_boundary(qty, rule):
    v = check(intent=close_long(qty), snap=make_snap(positions=(pos(size="0.5"),)))
    assert v.rule == rule
    assert v.allowed is (rule == "reduce_only")
    assert v.reduces_only is (rule == "reduce_only")


def test_flip_message_has_the_numbers():
    v = check(intent=close_long("0.7"), snap=make_snap(positions=(pos(size="0.5"),)))
    assert "0.7" in v.message and "0.5" in v.message
    assert v.details == {"position_size": "0.5", "quantity": "0.7"}


def test_reduce_only_flag_with_closing_shape_behaves_the_same():
    snap = make_snap(positions=(pos(size="0.5"),))
    assert_allowed(check(intent=close_long("0.5", reduce_only=True), snap=snap), "reduce_only")
    assert_rejected(check(intent=close_long("0.6", reduce_only=True), snap=snap), "reduce_only_flip")


def test_reduce_only_in_the_same_direction_is_rejected():
    snap = make_snap(positions=(pos(size="0.5"),))
    v = check(intent=make_intent(reduce_only=True, quantity=D("0.1")), snap=snap)
    assert_rejected(v, "reduce_only_no_position")
    assert "increase" in v.message


@pytest.mark.parametrize("positions", [
    (),
    (pos(size="1", account_id=2),),                     # another account
    (pos("ETH/USDT", size="1"),),                       # another symbol
    (pos(size="1", side="SHORT"),),                     # the other leg (hedge mode)
])
def test_closing_without_that_leg_is_rejected(positions):
    v = check(intent=close_long("0.1"), snap=make_snap(positions=positions))
    assert_rejected(v, "reduce_only_no_position")


def test_reservations_cannot_be_reduced():
    snap = make_snap(positions=(), reserved=(pos(size="1"),))
    assert_rejected(check(intent=close_long("0.1"), snap=snap), "reduce_only_no_position")


def test_split_rows_of_one_leg_add_up():
    snap = make_snap(positions=(pos(size="0.3"), pos(size="0.2")))
    assert_allowed(check(intent=close_long("0.5"), snap=snap), "reduce_only")
    assert_rejected(check(intent=close_long("0.51"), snap=snap), "reduce_only_flip")


def test_a_reduction_skips_every_later_rule():
    limits = make_limits(allowed_symbols=frozenset(), max_leverage=1, min_notional_usd=D("1000000"),
                         max_open_positions=0, max_orders_per_minute=0, max_orders_per_hour=0,
                         max_position_notional_usd=D("0"), max_position_percent=D("0"),
                         max_exchange_exposure_percent=D("0"), max_total_exposure_percent=D("0"),
                         daily_loss_limit_percent=D("0.01"))
    snap = make_snap(positions=(pos(size="3"),), equity=D("50000"), day_start_equity=D("100000"),
                     last_losing_close_at=NOW, orders_last_minute=99, orders_last_hour=999,
                     venue_max_leverage=1, venue_min_notional=D("1000000"), reserved=(pos(size="9"),))
    v = check(limits, close_long("0.001", leverage=50), snap)
    assert_allowed(v, "reduce_only")
    assert v.reduces_only and not v.trip_kill_switch
    assert "3" in v.message and "2.999" in v.message


# -- symbol -----------------------------------------------------------------------------

def test_symbol_not_allowed():
    v = check(intent=make_intent(symbol="DOGE/USDT"))
    assert_rejected(v, "symbol_not_allowed")
    assert "DOGE/USDT" in v.message and "BTC/USDT" in v.message


def test_empty_allowed_symbols_allows_none():
    v = check(limits=make_limits(allowed_symbols=frozenset()))
    assert_rejected(v, "symbol_not_allowed")
    assert "none" in v.message


# -- leverage ---------------------------------------------------------------------------

@pytest.mark.parametrize("lev,ok", [(0, False), (-1, False), (1, True), (4, True), (5, True), (6, False)])
def test_leverage_against_the_users_limit(lev, ok):
    v = check(intent=make_intent(leverage=lev))
    assert v.allowed is ok and (ok or v.rule == "leverage"), v


@pytest.mark.parametrize("lev,ok", [(2, True), (3, False)])
def test_leverage_against_the_venue_maximum(lev, ok):
    v = check(intent=make_intent(leverage=lev), snap=make_snap(venue_max_leverage=2))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "leverage")
        assert "binance" in v.message and "2x" in v.message


def test_leverage_message_has_the_numbers():
    v = check(intent=make_intent(leverage=10))
    assert v.message == "Leverage 10x is above your limit of 5x."
    assert v.details == {"leverage": "10", "max_leverage": "5"}


# -- minimum notional -------------------------------------------------------------------

@pytest.mark.parametrize("qty,ok", [("0.00019998", False), ("0.0002", True), ("0.00020002", True)])
def test_min_notional_user_floor(qty, ok):
    # 0.0002 * 50,000 = 10.00 USD; the user floor is 10, the venue's 5.
    v = check(limits=make_limits(min_notional_usd=D("10")), intent=make_intent(quantity=D(qty)))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "min_notional")
        assert "your minimum of 10.00 USD" in v.message


@pytest.mark.parametrize("qty,ok", [("0.00199998", False), ("0.002", True)])
def test_min_notional_venue_floor_when_higher(qty, ok):
    v = check(intent=make_intent(quantity=D(qty)), snap=make_snap(venue_min_notional=D("100")))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "min_notional")
        assert "binance's minimum of 100.00 USD" in v.message


def test_min_notional_uses_the_limit_price_for_limit_orders():
    # 0.0002 at a limit of 40,000 is 8.00 USD even though the mark is 50,000.
    intent = make_intent(quantity=D("0.0002"), order_type="LIMIT", price=D("40000"))
    v = check(limits=make_limits(min_notional_usd=D("10")), intent=intent)
    assert_rejected(v, "min_notional")
    assert "8.00 USD" in v.message
    intent = make_intent(quantity=D("0.0002"), order_type="LIMIT", price=D("50000"))
    assert_allowed(check(limits=make_limits(min_notional_usd=D("10")), intent=intent))


def test_min_notional_uses_the_mark_for_stop_orders():
    intent = make_intent(quantity=D("0.0002"), order_type="STOP_MARKET", price=D("1"))
    assert_allowed(check(limits=make_limits(min_notional_usd=D("10")), intent=intent))


# -- daily loss -------------------------------------------------------------------------

@pytest.mark.parametrize("equity,ok", [("85000.01", True), ("85000", False), ("84999.99", False)])
def test_daily_loss_limit_is_reached_at_equality_and_trips(equity, ok):
    v = check(snap=make_snap(equity=D(equity), day_start_equity=D("100000")))
    if ok:
        assert v.rule != "daily_loss" and not v.trip_kill_switch
    else:
        assert_rejected(v, "daily_loss")
        assert v.trip_kill_switch is True


def test_daily_loss_message_and_details():
    snap = make_snap(equity=D("80000"), day_start_equity=D("100000"), realized_pnl_today=D("-12000"),
                     unrealized_pnl=D("-8000"))
    v = check(snap=snap)
    assert "20,000.00 USD" in v.message and "20.0%" in v.message and "15.0%" in v.message
    assert "15,000.00 USD" in v.message and "100,000.00 USD" in v.message
    assert v.details["loss_today"] == "20000" and D(v.details["loss_limit"]) == D("15000")
    assert v.details["realized_pnl_today"] == "-12000"


def test_a_gain_today_is_no_loss():
    assert_allowed(check(snap=make_snap(equity=D("150000"), day_start_equity=D("100000"))))


def test_zero_loss_limit_trips_on_any_loss_but_not_on_none():
    limits = make_limits(daily_loss_limit_percent=D("0"))
    assert_allowed(check(limits=limits))
    v = check(limits=limits, snap=make_snap(equity=D("99999.99")))
    assert_rejected(v, "daily_loss")
    assert v.trip_kill_switch


def test_only_daily_loss_sets_the_trip_flag():
    assert not check(intent=make_intent(leverage=50)).trip_kill_switch


# -- loss cooldown ----------------------------------------------------------------------

@pytest.mark.parametrize("ago,ok", [(timedelta(seconds=299, microseconds=999999), False),
                                    (timedelta(seconds=300), True), (timedelta(seconds=301), True),
                                    (timedelta(seconds=-5), False)])
def test_loss_cooldown_boundary(ago, ok):
    v = check(snap=make_snap(last_losing_close_at=NOW - ago))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "loss_cooldown")


def test_loss_cooldown_message_and_off_switch():
    v = check(snap=make_snap(last_losing_close_at=NOW - timedelta(seconds=120)))
    assert v.message == "Your last losing close was 120 s ago; new positions wait 300 s after a loss (180 s left)."
    assert_allowed(check(limits=make_limits(loss_cooldown_seconds=0), snap=make_snap(last_losing_close_at=NOW)))


def test_cooldown_compares_aware_datetimes_across_zones():
    tz = timezone(timedelta(hours=2))
    close = (NOW - timedelta(seconds=100)).astimezone(tz)
    assert_rejected(check(snap=make_snap(last_losing_close_at=close)), "loss_cooldown")


# -- order rates ------------------------------------------------------------------------

@pytest.mark.parametrize("count,ok", [(8, True), (9, True), (10, False), (11, False)])
def test_orders_per_minute_allows_the_10th_and_rejects_the_11th(count, ok):
    v = check(snap=make_snap(orders_last_minute=count))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "order_rate_minute")
        assert f"{count} orders in the last minute" in v.message and "10 per minute" in v.message


@pytest.mark.parametrize("count,ok", [(119, True), (120, False)])
def test_orders_per_hour(count, ok):
    v = check(snap=make_snap(orders_last_hour=count))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "order_rate_hour")


def test_rate_limit_zero_blocks_every_opening_order():
    assert_rejected(check(limits=make_limits(max_orders_per_minute=0)), "order_rate_minute")


# -- max open positions -----------------------------------------------------------------

def _others(n, **kw):
    return tuple(pos(f"X{i}/USDT", "0.01", "100", **kw) for i in range(n))


@pytest.mark.parametrize("n,ok", [(3, True), (4, True), (5, False)])
def test_new_position_against_the_count(n, ok):
    v = check(snap=make_snap(positions=_others(n)))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "max_open_positions")
        assert "5 open positions" in v.message and "limit is 5" in v.message


def test_adding_to_an_existing_position_at_the_max_is_allowed():
    assert_allowed(check(snap=make_snap(positions=_others(4) + (pos(size="0.01"),))))


def test_reservations_count_as_positions_on_distinct_legs():
    assert_rejected(check(snap=make_snap(positions=_others(3), reserved=_others(5)[3:])), "max_open_positions")
    # a reservation on a leg that is already open is not another position
    assert_allowed(check(snap=make_snap(positions=_others(4), reserved=_others(4))))
    # a reservation on this very leg makes the order an increase, not a new position
    assert_allowed(check(snap=make_snap(positions=_others(4), reserved=(pos(size="0.01"),))))


def test_legs_are_per_account_and_side():
    # The SHORT leg of BTC and a BTC position on account 2 are both other positions.
    positions = _others(3) + (pos(size="0.01", side="SHORT"), pos(size="0.01", account_id=2))
    assert_rejected(check(snap=make_snap(positions=positions)), "max_open_positions")


def test_above_the_max_even_an_existing_position_cannot_grow():
    v = check(snap=make_snap(positions=_others(5) + (pos(size="0.01"),)))
    assert_rejected(v, "max_open_positions")
    assert "already above it" in v.message


# -- position notional ------------------------------------------------------------------

@pytest.mark.parametrize("existing,ok", [("0.0999998", True), ("0.1", True), ("0.1000002", False)])
def test_position_notional_absolute(existing, ok):
    # existing * 50,000 + 5,000: 9,999.99 / 10,000.00 / 10,000.01
    v = check(snap=make_snap(positions=(pos(size=existing),)))
    assert v.allowed is ok
    if not ok:
        assert_rejected(v, "position_notional_abs")
        assert v.message == ("Position in BTC/USDT would be 10,000.01 USD, above your limit of "
                             "10,000.00 USD per symbol.")
        assert D(v.details["position_notional"]) == D("10000.01")


def test_position_notional_counts_reservations_but_not_other_accounts():
    assert_rejected(check(snap=make_snap(reserved=(pos(size="0.1000002"),))), "position_notional_abs")
    assert_allowed(check(snap=make_snap(positions=(pos(size="0.15", account_id=3),))))


def test_hedged_legs_add_up_in_the_position_notional():
    assert_rejected(check(snap=make_snap(positions=(pos(size="0.11", side="SHORT"),))), "position_notional_abs")


def test_exposure_is_valued_at_mark_not_at_a_lower_limit_price():
    # A limit buy at 1,000 still counts as 0.11 * 50,000 = 5,500 of exposure.
    intent = make_intent(quantity=D("0.11"), order_type="LIMIT", price=D("1000"))
    assert_rejected(check(intent=intent, snap=make_snap(positions=(pos(size="0.1"),))), "position_notional_abs")


@pytest.mark.parametrize("existing,ok", [("0.0599998", True), ("0.06", True), ("0.0600002", False)])
def test_position_notional_percent_of_equity(existing, ok):
    # equity 40,000 -> 20% = 8,000; existing * 50,000 + 5,000: 7,999.99 / 8,000.00 / 8,000.01
    snap = make_snap(equity=D("40000"), day_start_equity=D("40000"), positions=(pos(size=existing),))
    v = check(snap=snap)
    assert v.allowed is ok, v
    if not ok:
        assert_rejected(v, "position_notional_pct")
        assert "8,000.01 USD" in v.message and "20.0%" in v.message and "8,000.00 USD" in v.message
        assert "40,000.00 USD" in v.message


# -- exchange and total exposure --------------------------------------------------------

@pytest.mark.parametrize("existing,ok", [("24999.99", True), ("25000", True), ("25000.01", False)])
def test_exchange_exposure(existing, ok):
    # binance cap 30% of 100,000 = 30,000; existing + 5,000. Other venues do not count here.
    positions = (pos("ETH/USDT", "1", existing, account_id=3),
                 pos("SOL/USDT", "1", "10000", venue="hyperliquid", account_id=2))
    v = check(snap=make_snap(positions=positions))
    assert v.allowed is ok, v
    if not ok:
        assert_rejected(v, "exchange_exposure")
        assert v.message == ("Exposure on binance would be 30,000.01 USD (30.0% of your equity of "
                             "100,000.00 USD), above your limit of 30.0% (30,000.00 USD) per exchange.")


@pytest.mark.parametrize("existing,ok", [("44999.99", True), ("45000", True), ("45000.01", False)])
def test_total_exposure(existing, ok):
    # total cap 50% = 50,000; spread so that no venue passes 30,000.
    positions = (pos("ETH/USDT", "1", "20000", venue="binance", account_id=3),
                 pos("SOL/USDT", "1", str(D(existing) - D("20000")), venue="hyperliquid", account_id=2))
    v = check(snap=make_snap(positions=positions))
    assert v.allowed is ok, v
    if not ok:
        assert_rejected(v, "total_exposure")
        assert "50,000.01 USD" in v.message and "50.0%" in v.message


def test_reservations_count_in_venue_and_total_exposure():
    reserved = (pos("ETH/USDT", "1", "25000.01", account_id=3),)
    assert_rejected(check(snap=make_snap(reserved=reserved)), "exchange_exposure")
    reserved = (pos("ETH/USDT", "1", "25000", venue="hyperliquid", account_id=2),
                pos("SOL/USDT", "1", "20000.01", account_id=3))
    assert_rejected(check(snap=make_snap(reserved=reserved)), "total_exposure")


def test_short_positions_count_gross():
    positions = (pos("ETH/USDT", "1", "25000.01", side="SHORT"),)
    assert_rejected(check(snap=make_snap(positions=positions)), "exchange_exposure")


def test_sell_short_opening_is_checked_like_a_buy():
    intent = make_intent(side="SELL", position_side="SHORT", quantity=D("0.2000001"))
    assert_rejected(check(intent=intent), "position_notional_abs")
    assert_allowed(check(intent=make_intent(side="SELL", position_side="SHORT", quantity=D("0.2"))))


def test_rule_order_first_failure_decides():
    # Fails leverage, min notional, cooldown, rate and exposure at once: leverage comes first.
    snap = make_snap(last_losing_close_at=NOW, orders_last_minute=50, positions=(pos(size="1"),))
    assert check(intent=make_intent(leverage=9, quantity=D("0.00001")), snap=snap).rule == "leverage"
    assert check(intent=make_intent(quantity=D("0.00001")), snap=snap).rule == "min_notional"
    assert check(snap=snap).rule == "loss_cooldown"
    assert check(snap=dataclasses.replace(snap, last_losing_close_at=None)).rule == "order_rate_minute"


# -- helpers ----------------------------------------------------------------------------

def test_position_after():
    book = (pos(size="0.3"), pos(size="0.2"), pos(size="5", side="SHORT"), pos(size="9", account_id=2))
    assert position_after(make_intent(quantity=D("0.1")), book) == D("0.6")
    assert position_after(close_long("0.1"), book) == D("0.4")
    assert position_after(close_long("0.7"), book) == D("-0.2")
    assert position_after(make_intent(side="BUY", position_side="SHORT", quantity=D("1")), book) == D("4")
    assert position_after(make_intent(symbol="ETH/USDT"), book) == D("0.1")


def test_exposure_helper():
    book = (pos(size="0.1"), pos("ETH/USDT", "2", "3000", side="SHORT"),
            pos("SOL/USDT", "10", "150", venue="hyperliquid", account_id=2))
    assert exposure(book) == D("12500")
    assert exposure(book, "binance") == D("11000")
    assert exposure(book, "hyperliquid") == D("1500")
    assert exposure((), "binance") == D("0")


# -- construction -----------------------------------------------------------------------

def test_limits_from_profile_is_duck_typed_and_converts():
    profile = SimpleNamespace(max_leverage=5, max_position_notional_usd=D("10000"), max_position_percent=0.2,
                              max_total_exposure_percent="0.5", max_exchange_exposure_percent=D("0.3"),
                              daily_loss_limit_percent=0.15, min_notional_usd=5,
                              allowed_symbols=["BTC/USDT", "ETH/USDT"], max_open_positions=5,
                              max_orders_per_minute=10, max_orders_per_hour=120, loss_cooldown_seconds=300,
                              monthly_llm_budget_usd=D("50"))
    limits = Limits.from_profile(profile)
    assert limits == make_limits(allowed_symbols=frozenset({"BTC/USDT", "ETH/USDT"}))
    assert limits.max_position_percent == D("0.2") and isinstance(limits.min_notional_usd, D)
    assert Limits.from_profile(SimpleNamespace(**{**vars(profile), "allowed_symbols": None})).allowed_symbols \
        == frozenset()


def test_ints_become_decimals_and_str_enums_become_plain_strings():
    class Side(StrEnum):
        BUY = "BUY"

    intent = make_intent(quantity=2, side=Side.BUY)
    assert intent.quantity == D(2) and isinstance(intent.quantity, D)
    assert type(intent.side) is str
    assert isinstance(make_snap(equity=1000).equity, D)


@pytest.mark.parametrize("bad", [
    lambda: make_intent(quantity=0.1),
    lambda: make_intent(price=D("NaN"), order_type="LIMIT"),
    lambda: make_intent(side="buy"),
    lambda: make_intent(position_side="BOTH"),
    lambda: make_intent(order_type="STOP"),
    lambda: make_intent(leverage=3.0),
    lambda: make_snap(now=datetime(2025, 1, 1)),
    lambda: make_snap(last_losing_close_at=datetime(2025, 1, 1)),
    lambda: make_snap(equity=1.5),
    lambda: make_snap(positions=("BTC",)),
    lambda: make_limits(max_position_percent=0.2),
    lambda: make_limits(allowed_symbols="BTC/USDT"),
    lambda: pos(size="-1"),
])
def test_bad_inputs_raise(bad):
    with pytest.raises((TypeError, ValueError)):
        bad()


def test_snapshot_fields_are_required_and_keyword_only():
    with pytest.raises(TypeError):
        Snapshot(now=NOW, equity=D("1"), positions=(), price=D("1"), day_start_equity=D("1"))  # no halts
    with pytest.raises(TypeError):
        Snapshot(NOW, D("1"), (), D("1"))  # type: ignore[misc]


def test_lists_become_tuples():
    snap = make_snap(positions=[pos()], reserved=[pos()])
    assert isinstance(snap.positions, tuple) and isinstance(snap.reserved, tuple)


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
