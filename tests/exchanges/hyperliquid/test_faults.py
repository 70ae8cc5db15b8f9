"""Hyperliquid faults: read faults mapped to our errors after retries, lost order answers
settled by cloid, venue refusals by message, the registry, and the circuit breaker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    OrderStatus,
)
from exchanges.adapters.errors import (
    BadPrecision,
    CircuitOpenError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrderError,
    NetworkError,
    OrderStatusUnknown,
    RateLimited,
    UnknownSymbol,
)
from exchanges.adapters.hyperliquid import HyperliquidTrader, cloid_for
from exchanges.adapters.registry import create_trader
from tests.exchanges.hyperliquid.support import (
    make_runtime,
    make_spec,
    make_trader,
)


# ------------------------------------------------------------------------------- faults on reads
@pytest.mark.parametrize(("fault", "error"), [
    ("timeout", NetworkError),
    ("http500", ExchangeUnavailable),
    ("http429", RateLimited),
    ("malformed", ExchangeUnavailable),
])
def test_read_faults_map_to_our_errors_after_retries(server, trader, clock, fault, error):
    trader.get_balance()  # clients built
    server.inject(kind="info:clearinghouseState", fault=fault, times=4, delay=1.0)
    with pytest.raises(error) as caught:
        trader.get_balance()
    assert type(caught.value) is error
    # the first try and three retries, with backoff between them
    assert len(server.info_requests("clearinghouseState")) == 1 + 4
    assert len(clock.slept) >= 3


@pytest.mark.parametrize("fault", ["timeout", "http500", "http429", "malformed"])
def test_transient_read_faults_are_retried_then_succeed(server, trader, fault):
    server.inject(kind="info:allMids", fault=fault, times=2, delay=1.0)
    ticker = trader.get_ticker("BTC/USDT")
    assert ticker.last == Decimal("65000") and ticker.mark == Decimal("65000")
    assert ticker.change_24h_percent == Decimal("1.5625") and ticker.funding_rate == Decimal("0.0000125")
    assert ticker.bid < ticker.last < ticker.ask
    assert len(server.info_requests("allMids")) == 3


def test_faults_while_building_the_sdk_clients_are_retried(server, trader):
    server.inject(kind="info:meta", fault="http500")
    server.inject(kind="info:spotMeta", fault="malformed")
    assert trader.get_market_price("SOL/USDT") == Decimal("150")


def test_candles_are_decimal_and_utc(trader):
    candles = trader.get_candles("BTC/USDT", "1h", limit=5)
    assert len(candles) == 5
    assert all(c.timestamp.utcoffset().total_seconds() == 0 for c in candles)
    assert all(isinstance(c.close, Decimal) and c.low <= c.close <= c.high for c in candles)
    assert candles == sorted(candles, key=lambda c: c.timestamp)


# ------------------------------------------------------------------------------- lost answers
@pytest.mark.parametrize("fault", ["lost", "lost_500", "lost_timeout"])
def test_lost_order_answer_is_settled_by_cloid_without_resending(server, trader, main_wallet, fault):
    server.inject(kind="order", fault=fault, delay=1.0)
    result = trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="dec-5")

    assert len(server.exchange_requests("order")) == 1  # sent once
    [order] = server.placed_orders(main_wallet.address)
    assert result.order_id == str(order.oid) and result.client_order_id == "dec-5"
    assert result.status == OrderStatus.FILLED and result.executed_quantity == Decimal("0.01")
    assert result.executed_price == Decimal("65000") and result.fees > 0
    lookups = server.info_requests("orderStatus")
    assert lookups and lookups[0]["body"]["oid"] == cloid_for("dec-5")
    assert server.position(main_wallet.address, "BTC")["szi"] == Decimal("0.01")


def test_lost_answer_with_failing_lookups_is_order_status_unknown(server, trader, main_wallet):
    trader.get_market_price("BTC/USDT")
    server.inject(kind="order", fault="lost_500")
    server.inject(kind="info:orderStatus", fault="http500", times=3)
    with pytest.raises(OrderStatusUnknown):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="dec-6")
    assert len(server.exchange_requests("order")) == 1
    assert len(server.info_requests("orderStatus")) == 3  # the runtime's lookup_attempts, no more
    assert len(server.placed_orders(main_wallet.address)) == 1  # it exists, for reconciliation
    # later, reconciliation finds it by the same client order id
    assert trader.get_order("BTC/USDT", client_order_id="dec-6").status == OrderStatus.FILLED


def test_order_never_taken_raises_the_original_error(server, trader):
    trader.get_market_price("BTC/USDT")
    server.inject(kind="order", fault="timeout", delay=1.0)  # the venue never acted on it
    # ...which the client cannot know: a lost answer is "pending confirmation".
    with pytest.raises(OrderStatusUnknown):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="dec-10")
    assert len(server.exchange_requests("order")) == 1 and server.placed_orders() == []

    server.inject(kind="order", fault="http429")
    with pytest.raises(RateLimited):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="dec-11")
    assert len(server.exchange_requests("order")) == 2 and server.placed_orders() == []


# ------------------------------------------------------------------------------- venue refusals
def test_venue_refusals_map_by_message(server, trader, main_wallet):
    with pytest.raises(InsufficientFunds):
        trader.open_long("BTC/USDT", Decimal("2"), client_order_id="f-1", leverage=1)
    with pytest.raises(InvalidOrderError, match=r"minimum value of \$10"):
        trader.open_long("SOL/USDT", Decimal("0.01"), client_order_id="f-2")
    with pytest.raises(InvalidOrderError, match="Reduce only"):
        trader.close_short("SOL/USDT", Decimal("1"), client_order_id="f-3")
    with pytest.raises(BadPrecision):  # below the step: refused before sending
        trader.open_long("BTC/USDT", Decimal("0.000001"), client_order_id="f-4")
    with pytest.raises(UnknownSymbol):
        trader.open_long("DOGE/USDT", Decimal("10"), client_order_id="f-5")
    assert server.placed_orders() == []


def test_trader_comes_from_the_registry(server, agent, main_wallet, clock):
    trader = create_trader(make_spec(server), runtime=make_runtime(clock), credentials=Credentials(
        {"private_key": agent.key.hex(), "account_address": main_wallet.address}))
    assert isinstance(trader, HyperliquidTrader)
    assert trader.validate_symbol("ETH/USDT") and not trader.validate_symbol("XRP/USDT")
    assert trader.format_quantity("ETH/USDT", Decimal("1.23456")) == Decimal("1.2345")
    assert trader.format_price("BTC/USDT", Decimal("65012.5")) == Decimal("65012")


# ------------------------------------------------------------------------------- circuit breaker
def test_circuit_breaker_opens_after_failures_and_closes_after_cooldown(server, agent, main_wallet, clock):
    runtime = make_runtime(clock, read_retries=0, breaker_threshold=3, breaker_cooldown=30)
    trader = make_trader(server, agent.key.hex(), main_wallet.address, clock, runtime=runtime)
    trader.get_market_price("BTC/USDT")
    server.inject(kind="info:metaAndAssetCtxs", fault="http500", times=3)
    for _ in range(3):
        with pytest.raises(ExchangeUnavailable):
            trader.get_market_price("BTC/USDT")
    sent = len(server.requests)
    with pytest.raises(CircuitOpenError):
        trader.get_market_price("BTC/USDT")
    with pytest.raises(CircuitOpenError):  # orders are refused too, before anything is sent
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="cb-1")
    assert len(server.requests) == sent

    clock.advance(31)
    assert trader.get_market_price("BTC/USDT") == Decimal("65000")  # the half-open probe
    assert trader._guard.breaker.state() == "closed"
    assert trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="cb-2").status == OrderStatus.FILLED
