"""The simulated market: a deterministic function of time, realistic volatility, candles
that agree with the price, path extremes, and a trader that follows the clock."""

from __future__ import annotations

import math
import statistics
from datetime import timedelta
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    VenueSpec,
)
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader, SimulatedMarket
from exchanges.adapters.paper.market import TIMEFRAMES
from exchanges.adapters.paper.trader import build_market
from exchanges.adapters.resilience import AdapterRuntime
from tests.exchanges.paper.support import (
    BTC,
    CONFIG,
    ETH,
    PAPER,
    T0,
)

# --------------------------------------------------------------------------- the simulated market
SIM_SYMBOLS = PAPER["parameters"]["market_data"]["symbols"]
SEED = PAPER["parameters"]["market_data"]["seed"]


def test_simulated_market_is_a_deterministic_function_of_time():
    a, b = SimulatedMarket(SEED, SIM_SYMBOLS), SimulatedMarket(SEED, SIM_SYMBOLS)
    other = SimulatedMarket(SEED + 1, SIM_SYMBOLS)
    moments = [T0 + timedelta(seconds=s * 7919.37) for s in range(-40, 40)]
    for symbol in SIM_SYMBOLS:
        assert [a.price(symbol, t) for t in moments] == [b.price(symbol, t) for t in moments]
        assert a.candles(symbol, "15m", 50, end=T0) == b.candles(symbol, "15m", 50, end=T0)
        assert [a.price(symbol, t) for t in moments] != [other.price(symbol, t) for t in moments]
    assert a.price(BTC, a.epoch) == D("65000.00")  # the start price is the price at the epoch
    assert a.price(BTC, T0).as_tuple().exponent == -2  # rounded to the venue's tick


@pytest.mark.parametrize("symbol", list(SIM_SYMBOLS))
def test_simulated_volatility_is_realistic(symbol):
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    configured = SIM_SYMBOLS[symbol]["annual_volatility"]
    prices = [float(market.price(symbol, T0 + timedelta(minutes=i))) for i in range(7 * 1440 + 1)]
    returns = [math.log(b / a) for a, b in zip(prices, prices[1:])]
    annualised = statistics.pstdev(returns) * math.sqrt(365.25 * 1440)
    assert configured / 2 < annualised < configured * 2
    assert abs(annualised / configured - 1) < 0.15  # in fact it is close to exact


def test_candles_agree_with_price():
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    end = T0 + timedelta(seconds=1234.5)
    for timeframe in ("1m", "1h", "1d"):
        candles = market.candles(ETH, timeframe, 30, end=end)
        seconds = TIMEFRAMES[timeframe]
        assert len(candles) == 30
        for candle, after in zip(candles, candles[1:]):
            assert after.timestamp - candle.timestamp == timedelta(seconds=seconds)
            assert candle.open == market.price(ETH, candle.timestamp)
            assert candle.close == market.price(ETH, candle.timestamp + timedelta(seconds=seconds)) == after.open
            assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
            assert candle.volume > 0
        assert candles[-1].timestamp <= end < candles[-1].timestamp + timedelta(seconds=seconds)
        assert candles[-1].close == market.price(ETH, end)


def test_path_extremes_bound_every_price_in_the_window():
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    start = T0 + timedelta(seconds=0.25)
    low, high = market.path_extremes(BTC, start, start + timedelta(seconds=200))
    inside = [market.price(BTC, start + timedelta(seconds=s / 4)) for s in range(801)]
    assert low == min(inside) and high == max(inside)  # linear within a second: exact


def test_trader_on_the_simulated_source_follows_the_clock(clock):
    spec = VenueSpec(venue="paper", config=PAPER, symbol_map=CONFIG.symbol_map("paper"), account_ref="sim")
    trader = PaperTrader(spec=spec, credentials=None,
                         runtime=AdapterRuntime(paper_store=MemoryPaperStore(), extra={"now": clock}))
    reference = build_market(PAPER, symbol_map=CONFIG.symbol_map("paper"))  # the configured walk, epoch included
    assert trader.get_market_price(BTC) == reference.price(BTC, clock.now)
    ticker = trader.get_ticker(BTC)
    assert ticker.bid < ticker.last < ticker.ask and ticker.change_24h_percent is not None
    trader.open_long(BTC, D("0.05"), client_order_id="sim-1", leverage=5,
                     stop_loss=reference.price(BTC, clock.now) * D("0.5"))
    clock.advance(3600)
    [position] = trader.get_positions()
    assert position.mark_price == reference.price(BTC, clock.now)
    candles = trader.get_candles(BTC, "5m", 24)
    assert len(candles) == 24 and candles[-1].close == position.mark_price
