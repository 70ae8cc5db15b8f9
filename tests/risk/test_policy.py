"""The pre-trade risk policy (risk/policy.py), rule by rule at its boundaries: the module
itself, halts, fail-closed paths on missing data, quantity and limit price, reduce-only
behaviour, symbols, leverage, minimum notional, daily loss, loss cooldown and order rates.
No database. The exposure rules, the inputs' own checks and the properties over random
books have their own modules (test_policy_exposure, test_policy_inputs, test_policy_properties)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pathlib
from datetime import timedelta, timezone
from decimal import Decimal as D

import pytest

from risk import inputs, policy
from tests.risk.policy_builders import (
    BTC,
    NOW,
    assert_allowed,
    assert_rejected,
    check,
    close_long,
    make_intent,
    make_limits,
    make_snap,
    pos,
)

# -- the module itself ------------------------------------------------------------------

GROUND = {"alpha_platform.common.money", "alpha_platform.common.vocabulary"}


def _imported(module) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(pathlib.Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "risk.inputs":
            modules.add(node.module or "")
    return {m if m in GROUND else m.split(".")[0] for m in modules}


def test_policy_imports_only_the_standard_library():
    # The policy and its inputs (risk/inputs.py): the standard library, each other, and the
    # ground's vocabulary and money modules, which import only the standard library.
    stdlib = {"__future__", "collections", "dataclasses", "datetime", "decimal", "enum", "typing"}
    assert _imported(policy) | _imported(inputs) <= stdlib | GROUND
    for name in GROUND:
        assert _imported(importlib.import_module(name)) <= stdlib, name


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
