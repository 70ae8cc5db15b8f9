"""Builders and checks shared by the risk policy's tests (tests/risk/test_policy*.py): a
baseline of limits, intent and snapshot that passes every rule, each overridable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from risk.policy import (
    Limits,
    OrderIntent,
    PositionView,
    Snapshot,
    Verdict,
    check_pre_trade,
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
