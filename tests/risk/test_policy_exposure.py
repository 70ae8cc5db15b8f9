"""The pre-trade risk policy's exposure rules at their boundaries: open legs, position
notional (absolute and share of equity), venue and total exposure, the rules' order, and
the exposure helpers the services reuse. No database."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest

from risk.policy import exposure, position_after
from tests.risk.policy_builders import (
    NOW,
    assert_allowed,
    assert_rejected,
    check,
    close_long,
    make_intent,
    make_snap,
    pos,
)

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
