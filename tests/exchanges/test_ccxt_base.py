"""The ccxt base: ccxt's own error tables at the URLs we configure, ccxt's unified
structures read for any ccxt id, capabilities from config.

The venue tests run ccxt against the local fake Binance futures server; the unified
structure tests feed the base what ccxt documents for its unified order, position and
balance (https://docs.ccxt.com/#/README?id=order-structure), with no venue fields at all.
"""

from __future__ import annotations

import copy
import os
import time
import uuid
from decimal import Decimal as D

import ccxt
import pytest

from alpha_platform.common.config import load_config
from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import OrderSide, OrderStatus, OrderType, PositionSide, VenueSpec
from exchanges.adapters.ccxt import BinanceUsdmTrader, CcxtTrader
from exchanges.adapters.ccxt.wire import _exchange_class, _Markets
from exchanges.adapters.errors import AuthenticationError, InsufficientFunds, OrderNotFound, UnknownSymbol
from exchanges.adapters.registry import adapter_class, create_trader
from exchanges.adapters.resilience import AdapterRuntime, MemoryStore, RedisStore
from tests.fakes.binance_server import FakeBinanceFutures

DEAD_URL = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _fresh_market_cache():
    CcxtTrader.clear_market_cache()
    yield
    CcxtTrader.clear_market_cache()


@pytest.fixture
def fake():
    with FakeBinanceFutures() as server:
        yield server


def runtime() -> AdapterRuntime:
    return AdapterRuntime(store=MemoryStore(), read_retries=0, sleep=lambda s: None)


def binance_spec(fake, *, testnet: bool, capabilities: dict | None = None) -> VenueSpec:
    environ = {"BINANCE_FAPI_URL": DEAD_URL if testnet else fake.url,
               "BINANCE_FAPI_TESTNET_URL": fake.url if testnet else DEAD_URL}
    cfg = load_config("config/exchanges.yaml", environment="testing", environ=environ)
    venue = copy.deepcopy(cfg.venue_block("binance_futures"))
    venue["ccxt_options"] = {"rateLimit": 5}
    if capabilities:
        venue["capabilities"] = {**venue.get("capabilities", {}), **capabilities}
    return VenueSpec(venue="binance_futures", config=venue, symbol_map=cfg.symbol_map("binance_futures"),
                     testnet=testnet, account_ref="b1")


# --------------------------------------------------------------------------- ccxt's error tables
@pytest.mark.parametrize("testnet", [False, True])
def test_ccxts_own_error_tables_apply_at_the_configured_url(fake, testnet):
    """ccxt's binance chooses its USD-M table by the production host name in the URL, so
    at any other URL only its common table applied; -2019 is only in the USD-M table."""
    assert ccxt.binanceusdm().exceptions["linear"]["exact"]["-2019"] is ccxt.InsufficientFunds
    assert "-2019" not in ccxt.binanceusdm().exceptions["exact"]
    assert not hasattr(BinanceUsdmTrader, "ERROR_CODES")  # no copied table

    creds = Credentials({"api_key": fake.api_key, "api_secret": fake.api_secret})
    trader = create_trader(binance_spec(fake, testnet=testnet), credentials=creds, runtime=runtime())
    try:
        with pytest.raises(InsufficientFunds) as funds:  # -2019 "Margin is insufficient."
            trader.open_long("BTC/USDT", D("100"), client_order_id="big-1", leverage=1)
        assert funds.value.code == "-2019"
        with pytest.raises(OrderNotFound):  # -2013, ccxt's common table
            trader.get_order("BTC/USDT", order_id="42")
    finally:
        trader.close()
    wrong = create_trader(binance_spec(fake, testnet=testnet), runtime=runtime(),
                          credentials=Credentials({"api_key": "someone-else", "api_secret": "x" * 16}))
    with pytest.raises(AuthenticationError):  # -2015
        wrong.get_balance()
    wrong.close()


def test_the_url_table_choice_covers_only_our_configured_paths():
    exchange = _exchange_class("binanceusdm")({})
    exchange.alpha_exception_urls = {"http://127.0.0.1:1234/fapi/": "linear"}
    linear = exchange.exceptions["linear"]["exact"]
    assert exchange.get_exceptions_by_url("http://127.0.0.1:1234/fapi/v1/order", "exact") == linear
    assert exchange.get_exceptions_by_url("http://127.0.0.1:1234/sapi/v1/x", "exact") == {}
    assert exchange.get_exceptions_by_url("http://elsewhere.example/fapi/v1/order", "exact") == {}
    # the production host keeps ccxt's own choice
    assert exchange.get_exceptions_by_url("https://fapi.binance.com/fapi/v1/order", "exact") == linear


# --------------------------------------------------------------------------- capabilities
def test_capabilities_come_from_config_over_the_class(fake):
    creds = Credentials({"api_key": fake.api_key, "api_secret": fake.api_secret})
    plain = create_trader(binance_spec(fake, testnet=False), credentials=creds, runtime=runtime())
    assert plain.capabilities["conditional_endpoint"] and plain.capabilities["book_ticker"]
    assert plain.capabilities["has_user_stream"] and not plain.capabilities["supports_attached_tp_sl"]
    plain.get_ticker("ETH/USDT")
    assert fake.count("GET", "/fapi/v1/ticker/bookTicker") == 1  # the 24h ticker has no bid/ask

    no_book = create_trader(binance_spec(fake, testnet=False, capabilities={"book_ticker": False}),
                            credentials=creds, runtime=runtime())
    ticker = no_book.get_ticker("ETH/USDT")
    assert (ticker.bid, ticker.ask) == (None, None) and ticker.last == D("3200")
    assert fake.count("GET", "/fapi/v1/ticker/bookTicker") == 1  # not asked again


def test_the_registry_picks_the_venue_class_by_ccxt_id():
    assert adapter_class({"exchange_type": "ccxt", "ccxt_id": "binanceusdm"}) is BinanceUsdmTrader
    assert adapter_class({"exchange_type": "ccxt", "ccxt_id": "bybit"}) is CcxtTrader


# --------------------------------------------------------------------------- unified structures
@pytest.fixture
def generic():
    """The base alone, for a ccxt id with no venue class, its markets already loaded."""
    spec = VenueSpec(venue="somevenue", symbol_map={"BTC/USDT": "BTCUSDT"}, account_ref="g1", config={
        "exchange_type": "ccxt", "ccxt_id": "bybit",
        "network": {"rest_api": {"production": DEAD_URL}},
        "trading": {"leverage": {"maximum": 20}}, "rate_limits": {},
    })
    market = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "contract": True, "linear": True,
              "precision": {"amount": 0.001, "price": 0.1},
              "limits": {"amount": {"min": 0.001}, "cost": {"min": 5}, "leverage": {"max": 100}}}
    CcxtTrader._market_cache[("bybit", DEAD_URL)] = _Markets(
        {"markets": {market["symbol"]: market}, "markets_by_id": {"BTCUSDT": [market]}}, time.monotonic())
    trader = create_trader(spec, credentials=Credentials({}), runtime=runtime())
    assert type(trader) is CcxtTrader
    yield trader
    trader.close()


def test_orders_are_read_from_the_unified_structure(generic):
    partial = generic._order_result({
        "id": "77", "clientOrderId": "ours-1", "symbol": "BTC/USDT:USDT", "type": "limit", "side": "buy",
        "status": "open", "amount": 0.5, "filled": 0.2, "price": 60000.5, "average": 60000.5,
        "reduceOnly": False, "fee": {"cost": 1.25, "currency": "USDT"}, "timestamp": 1_700_000_000_000,
        "info": {}})
    assert (partial.symbol, partial.order_id, partial.client_order_id) == ("BTC/USDT", "77", "ours-1")
    assert partial.status == OrderStatus.PARTIALLY_FILLED and partial.order_type == OrderType.LIMIT
    assert (partial.quantity, partial.executed_quantity) == (D("0.5"), D("0.2"))
    assert partial.price == partial.executed_price == D("60000.5") and partial.fees == D("1.25")
    assert partial.position_side == PositionSide.LONG and partial.timestamp.year == 2023

    stop = generic._order_result({
        "id": "78", "clientOrderId": "ours-2", "symbol": "BTC/USDT:USDT", "type": "market", "side": "sell",
        "status": "closed", "amount": 0.5, "filled": 0.0, "triggerPrice": 58000, "reduceOnly": True,
        "info": {}})
    assert stop.order_type == OrderType.STOP_MARKET and stop.stop_price == D("58000")
    assert stop.status == OrderStatus.FILLED and stop.executed_quantity == D("0.5")
    assert stop.side == OrderSide.SELL and stop.position_side == PositionSide.LONG and stop.price is None

    target = generic._order_result({
        "id": "79", "symbol": "BTC/USDT:USDT", "type": "market", "side": "buy", "status": "canceled",
        "amount": 1, "filled": 0, "triggerPrice": 50000, "takeProfitPrice": 50000, "reduceOnly": True,
        "info": {}})
    assert target.order_type == OrderType.TAKE_PROFIT_MARKET and target.status == OrderStatus.CANCELLED
    assert target.position_side == PositionSide.SHORT


def test_positions_and_balances_are_read_from_the_unified_structures(generic):
    position = generic._position({
        "symbol": "BTC/USDT:USDT", "contracts": 0.3, "contractSize": 1, "side": "short",
        "entryPrice": 61000, "markPrice": 60000, "unrealizedPnl": 300, "liquidationPrice": 70000,
        "marginMode": "isolated", "collateral": 1830, "initialMargin": 1800, "leverage": 10,
        "notional": 18000, "timestamp": 1_700_000_000_000, "info": {}})
    assert (position.symbol, position.side, position.size) == ("BTC/USDT", PositionSide.SHORT, D("0.3"))
    assert (position.entry_price, position.mark_price, position.unrealized_pnl) == (D(61000), D(60000), D(300))
    assert position.liquidation_price == D(70000) and position.margin_type == "isolated"
    assert position.margin == D(1830) and position.leverage == D(10)
    assert generic._position({"symbol": "BTC/USDT:USDT", "contracts": 0, "info": {}}) is None

    balance = generic._balance({"USDT": {"free": 900.5, "used": 99.5, "total": 1000}, "info": {}})
    assert (balance.margin_balance, balance.available_balance, balance.margin_used) == (D(1000), D("900.5"),
                                                                                         D("99.5"))
    assert balance.total_balance == D(1000) and balance.currency == "USDT"


def test_the_generic_base_refuses_what_its_markets_do_not_list(generic):
    rules = generic.symbol_rules("BTC/USDT")
    assert (rules.quantity_step, rules.price_tick, rules.min_notional, rules.max_leverage) == (
        D("0.001"), D("0.1"), D(5), 20)
    with pytest.raises(UnknownSymbol):
        generic.symbol_rules("ETH/USDT")


# --------------------------------------------------------------------------- one throttle per call path
def test_ccxts_own_throttle_is_off_even_when_config_asks_for_it(fake):
    """The Guard's shared limiter governs every call; ccxt's per-instance throttle is not
    stacked on it: at rateLimit 1500 ms, ccxt alone would make these calls take seconds."""
    spec = binance_spec(fake, testnet=False)
    spec.config["ccxt_options"] = {"rateLimit": 1500, "enableRateLimit": True}
    creds = Credentials({"api_key": fake.api_key, "api_secret": fake.api_secret})
    trader = create_trader(spec, credentials=creds, runtime=runtime())
    try:
        trader.get_balance()  # the markets, then the balance
        before, started = fake.count(), time.monotonic()
        for _ in range(3):
            trader.get_balance()
        assert time.monotonic() - started < 1.5
        assert fake.count() - before == 3
    finally:
        trader.close()


def test_two_traders_on_one_redis_share_the_venue_keys_rate_limit(fake):
    """Two traders of one account, as in two worker processes (each its own Redis client):
    the second's call waits for the next second's slot the first one used up."""
    import redis

    now = [1_000_000.25]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    prefix = f"test:{uuid.uuid4().hex}:"

    def trader(store):
        spec = binance_spec(fake, testnet=False)
        spec.config["rate_limits"] = {"requests": {"per_second": 2, "per_minute": 1000}}
        rt = AdapterRuntime(store=store, read_retries=0, sleep=sleep, clock=lambda: now[0])
        return create_trader(spec, runtime=rt,
                             credentials=Credentials({"api_key": fake.api_key, "api_secret": fake.api_secret}))

    clients = [redis.Redis.from_url(os.environ["REDIS_URL"]) for _ in range(2)]
    first, second = trader(RedisStore(clients[0], prefix=prefix)), trader(RedisStore(clients[1], prefix=prefix))
    alone = trader(MemoryStore(clock=lambda: now[0]))
    try:
        first.get_balance()  # the markets and the balance: this second's two requests
        assert slept == []
        alone.get_balance()  # a limiter of its own would not know of them
        assert slept == []
        second.get_balance()
        assert slept == [0.75]  # to the next second: the limit is the key's, not the process's
    finally:
        for t in (first, second, alone):
            t.close()
        keys = list(clients[0].scan_iter(match=prefix + "*"))
        if keys:
            clients[0].delete(*keys)
        for c in clients:
            c.close()
