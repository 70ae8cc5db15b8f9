"""The pre-trade risk policy's inputs (risk/inputs.py): frozen, built from a profile by
duck typing, converting what is safe to convert and raising on the rest. No database."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal as D
from enum import StrEnum
from types import SimpleNamespace

import pytest

from risk.policy import Limits, Snapshot
from tests.risk.policy_builders import (
    NOW,
    make_intent,
    make_limits,
    make_snap,
    pos,
)


def test_inputs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_intent().quantity = D("1")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_limits().max_leverage = 100  # type: ignore[misc]


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
