"""Fixtures of the paper-engine tests: a clock at T0, BTC at 60000 and ETH at 3000, a trader."""

from __future__ import annotations

import pytest

from exchanges.adapters.paper import PaperTrader
from tests.exchanges.paper.support import (
    Clock,
    ScriptedMarket,
    make_trader,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def market(clock: Clock) -> ScriptedMarket:
    return ScriptedMarket(clock, BTC="60000", ETH="3000")


@pytest.fixture
def trader(market: ScriptedMarket, clock: Clock) -> PaperTrader:
    return make_trader(market, clock)
