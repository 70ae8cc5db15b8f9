"""The ccxt Binance USD-M adapter against a local fake Binance futures server.

ccxt really talks HTTP to ``tests.fakes.binance_server``; nothing leaves 127.0.0.1 and no
database is used. The runtime gets a fake clock whose ``sleep`` advances it, so backoff,
rate limits and the circuit breaker's cool-down cost no wall time.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from decimal import Decimal as D

import pytest

from alpha_platform.common.config import load_config
from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    ExchangeTrader,
    MarginMode,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    VenueSpec,
)
from exchanges.adapters.ccxt import BinanceUsdmTrader, CcxtTrader
from exchanges.adapters.errors import (
    AuthenticationError,
    BadPrecision,
    CircuitOpenError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrderError,
    NetworkError,
    OrderNotFound,
    OrderStatusUnknown,
    RateLimited,
    UnknownSymbol,
)
from exchanges.adapters.registry import create_trader
from exchanges.adapters.resilience import AdapterRuntime, MemoryStore
from tests.fakes.binance_server import FakeBinanceFutures

ORDER = ("POST", "/fapi/v1/order")
DEAD_URL = "http://127.0.0.1:9"  # nothing listens there: using it would fail loudly


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _fresh_market_cache():
    CcxtTrader.clear_market_cache()
    yield
    CcxtTrader.clear_market_cache()


@pytest.fixture
def fake():
    with FakeBinanceFutures(timeout_delay=1.3) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_runtime(clock: FakeClock, **kw) -> AdapterRuntime:
    return AdapterRuntime(store=MemoryStore(clock=clock), clock=clock, sleep=clock.sleep, **kw)


def make_spec(fake: FakeBinanceFutures, *, timeout_ms: int = 5000, testnet: bool = False,
              symbol_map: dict[str, str] | None = None, extra: dict | None = None) -> VenueSpec:
    environ = {"BINANCE_FAPI_URL": DEAD_URL if testnet else fake.url,
               "BINANCE_FAPI_TESTNET_URL": fake.url if testnet else DEAD_URL}
    cfg = load_config("config/exchanges.yaml", environment="testing", environ=environ)
    venue = copy.deepcopy(cfg.venue_block("binance_futures"))
    venue["network"]["rest_api"]["timeout"] = timeout_ms
    # ccxt's own pacing (50 ms x endpoint cost) is for the real venue; it stays enabled,
    # shortened so the suite stays quick. The Guard's rate limiter applies unchanged.
    venue["ccxt_options"] = {"rateLimit": 5}
    venue.update(extra or {})
    return VenueSpec(venue="binance_futures", config=venue,
                     symbol_map=symbol_map or cfg.symbol_map("binance_futures"), testnet=testnet,
                     account_ref="t1")


@pytest.fixture
def make_trader(fake, clock):
    made: list[BinanceUsdmTrader] = []

    def build(*, secret: str | None = None, key: str | None = None, runtime: AdapterRuntime | None = None,
              **spec_kw) -> BinanceUsdmTrader:
        creds = Credentials({"api_key": key or fake.api_key, "api_secret": secret or fake.api_secret})
        trader = BinanceUsdmTrader(spec=make_spec(fake, **spec_kw), credentials=creds,
                            runtime=runtime or make_runtime(clock))
        made.append(trader)
        return trader

    yield build
    for trader in made:
        trader.close()


@pytest.fixture
def trader(make_trader) -> BinanceUsdmTrader:
    return make_trader()


# --------------------------------------------------------------------------- the scenario
def test_full_scenario_open_read_protect_close_balance(fake, trader):
    opened = trader.open_long("BTC/USDT", D("0.0105"), client_order_id="dec-42-open", leverage=5)

    assert opened.status == OrderStatus.FILLED
    assert opened.client_order_id == "dec-42-open"
    assert opened.quantity == opened.executed_quantity == D("0.010")  # rounded down to the step
    assert opened.executed_price == D("65000.00")
    assert opened.fees == D("0.26") and opened.fee_currency == "USDT"  # 650 * 0.0004
    assert fake.requests_to(*ORDER)[0].params["newClientOrderId"] == "dec-42-open"
    assert fake.requests_to(*ORDER)[0].params["quantity"] == "0.01"
    assert fake.position("BTCUSDT").amount == D("0.010")

    fake.set_mark_price("BTCUSDT", "66000")
    [position] = trader.get_positions()
    assert position.symbol == "BTC/USDT" and position.side == PositionSide.LONG
    assert position.size == D("0.010")
    assert position.entry_price == D("65000") and position.mark_price == D("66000")
    assert position.unrealized_pnl == D("10") == fake.unrealized_pnl()
    assert position.leverage == D("5") and position.margin == D("132")  # 660 / 5
    assert position.percentage_pnl == D("7.58")
    assert position.margin_type == "cross"

    stop = trader.place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.SELL, position_side=PositionSide.LONG,
        order_type=OrderType.STOP_MARKET, quantity=D("0.010"), client_order_id="dec-42-stop",
        stop_price=D("63000.04"), reduce_only=True))
    assert stop.status == OrderStatus.NEW and stop.order_type == OrderType.STOP_MARKET
    assert stop.stop_price == D("63000.00") and stop.reduce_only
    assert fake.order_by_client_id("BTCUSDT", "dec-42-stop")["algoStatus"] == "NEW"
    assert {o.client_order_id for o in trader.get_open_orders("BTC/USDT")} == {"dec-42-stop"}

    closed = trader.close_long("BTC/USDT", D("0.010"), client_order_id="dec-43-close")
    assert closed.status == OrderStatus.FILLED and closed.reduce_only
    assert closed.fills[0].realized_pnl == D("10")
    assert fake.requests_to(*ORDER)[-1].params["reduceOnly"] == "true"
    assert trader.get_positions() == []

    cancelled = trader.cancel_order("BTC/USDT", client_order_id="dec-42-stop")
    assert cancelled.status == OrderStatus.CANCELLED
    assert trader.get_open_orders("BTC/USDT") == []

    balance = trader.get_balance()
    expected = D("10000") - D("0.26") - D("0.264") + D("10")
    assert balance.total_balance == expected == fake.wallet_balance
    assert balance.available_balance == expected and balance.unrealized_pnl == 0
    assert balance.currency == "USDT" and balance.timestamp.tzinfo is not None
    assert opened.fees + closed.fees == fake.fees_paid


def test_leverage_and_margin_mode_are_set_before_opening_once(fake, trader):
    trader.open_long("ETH/USDT", D("0.01"), client_order_id="lev-1", leverage=3)
    trader.open_long("ETH/USDT", D("0.01"), client_order_id="lev-2", leverage=3)
    paths = [(r.method, r.path) for r in fake.requests if r.method == "POST"]
    assert paths[:3] == [("POST", "/fapi/v1/marginType"), ("POST", "/fapi/v1/leverage"), ORDER]
    assert paths.count(("POST", "/fapi/v1/leverage")) == 1  # cached per instance
    assert fake.leverage["ETHUSDT"] == 3 and fake.margin_type["ETHUSDT"] == "CROSSED"
    trader.close_long("ETH/USDT", D("0.02"), client_order_id="lev-3")  # closing sets nothing
    assert fake.count("POST", "/fapi/v1/leverage") == 1


def test_margin_mode_already_set_is_success_and_leverage_is_capped(fake, trader):
    trader.set_margin_mode("SOL/USDT", MarginMode.CROSS)  # Binance answers -4046: not an error
    assert fake.requests_to("POST", "/fapi/v1/marginType")[-1].status == 400
    trader.set_margin_mode("SOL/USDT", MarginMode.ISOLATED)
    assert fake.margin_type["SOLUSDT"] == "ISOLATED"
    with pytest.raises(InvalidOrderError):
        trader.set_leverage("BTC/USDT", 11)  # config caps BTCUSDT at 10
    assert fake.count("POST", "/fapi/v1/leverage") == 0


def test_attached_stop_loss_and_take_profit_then_stop_triggers(fake, trader):
    cid = "agent7-decision-0001"
    entry = trader.open_short("BTC/USDT", D("0.002"), client_order_id=cid, leverage=2,
                              stop_loss=D("66000"), take_profit=D("60000.06"))
    assert entry.status == OrderStatus.FILLED
    sl, tp = entry.attached
    assert (sl.client_order_id, tp.client_order_id) == (f"{cid}-sl", f"{cid}-tp")
    assert (sl.order_type, tp.order_type) == (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
    assert sl.side == tp.side == OrderSide.BUY and sl.reduce_only and tp.reduce_only
    assert sl.quantity == tp.quantity == D("0.002")
    assert (sl.stop_price, tp.stop_price) == (D("66000.0"), D("60000.1"))
    assert fake.order_by_client_id("BTCUSDT", f"{cid}-tp")["orderType"] == "TAKE_PROFIT_MARKET"

    fake.set_mark_price("BTCUSDT", "66500")  # through the stop
    assert fake.position("BTCUSDT").amount == 0
    triggered = trader.get_order("BTC/USDT", client_order_id=f"{cid}-sl")
    assert triggered.status == OrderStatus.FILLED and triggered.executed_quantity == D("0.002")
    # Its execution is the regular order the algo order became: that order's trade, with its
    # id, price, fee and realized PnL, is the stop's fill (not an aggregate without a price).
    [algo] = [o for o in fake.algo_orders.values() if o["clientAlgoId"] == f"{cid}-sl"]
    [trade] = [t for t in fake.trades if str(t["orderId"]) == algo["actualOrderId"]]
    [fill] = triggered.fills
    assert (fill.trade_id, fill.quantity, fill.price) == (str(trade["id"]), D("0.002"), D(trade["price"]))
    assert fill.realized_pnl == D(trade["realizedPnl"]) < 0  # a short stopped out above its entry
    assert triggered.executed_price == D(trade["price"])
    assert trader.get_order("BTC/USDT", order_id=tp.order_id).status == OrderStatus.NEW


def test_protective_order_refused_is_reported_beside_the_entry(fake, trader):
    entry = trader.open_long("BTC/USDT", D("0.002"), client_order_id="prot-1", stop_loss=D("65500"))
    assert entry.status == OrderStatus.FILLED  # the entry is real and is returned
    [sl] = entry.attached
    assert sl.status == OrderStatus.REJECTED and "-2021" in sl.raw_data["error"]


def test_long_client_ids_are_shortened_stably(fake, trader):
    long_cid = "decision-" + "x" * 40  # 49 characters: over Binance's 36
    venue_cid = trader.venue_client_order_id(long_cid)
    assert len(venue_cid) <= 36 and venue_cid == trader.venue_client_order_id(long_cid)
    derived = {trader.derived_client_order_id("d" * 34, s) for s in ("sl", "tp")}
    assert len(derived) == 2 and all(len(c) <= 36 for c in derived)
    placed = trader.open_long("BTC/USDT", D("0.002"), client_order_id=long_cid)
    # ours on the result of what we placed, the venue's form beside it (the trading layer
    # records it on the Order and matches the venue's listings by it)
    assert (placed.client_order_id, placed.venue_client_order_id) == (long_cid, venue_cid)
    assert fake.requests_to(*ORDER)[0].params["newClientOrderId"] == venue_cid
    assert trader.get_order("BTC/USDT", client_order_id=long_cid).order_id == placed.order_id


# --------------------------------------------------------------------------- symbols and precision
def test_symbol_rules_and_precision(fake, trader):
    btc, sol = trader.symbol_rules("BTC/USDT"), trader.symbol_rules("SOL/USDT")
    assert (btc.quantity_step, btc.price_tick, btc.min_quantity, btc.min_notional) == (
        D("0.001"), D("0.10"), D("0.001"), D("100"))
    assert btc.max_leverage == 10  # config per_symbol cap
    assert (sol.quantity_step, sol.price_tick, sol.min_quantity, sol.min_notional) == (
        D("1"), D("0.0100"), D("1"), D("5"))
    assert trader.format_quantity("BTC/USDT", D("0.01299")) == D("0.012")
    assert trader.format_quantity("SOL/USDT", D("2.7")) == D("2")
    assert trader.format_price("BTC/USDT", D("65000.06")) == D("65000.10")
    assert trader.format_price("SOL/USDT", D("150.12345")) == D("150.1200")
    with pytest.raises(BadPrecision):
        trader.format_quantity("BTC/USDT", D("0.0009"))
    with pytest.raises(BadPrecision):
        trader.open_long("SOL/USDT", D("0.5"), client_order_id="too-small")
    assert fake.count(*ORDER) == 0
    limit = trader.open_long("SOL/USDT", D("3.9"), client_order_id="sol-limit", order_type="LIMIT",
                             price=D("140.004"))
    assert fake.requests_to(*ORDER)[0].params["quantity"] == "3"
    assert fake.requests_to(*ORDER)[0].params["price"] == "140"
    assert limit.status == OrderStatus.NEW and limit.price == D("140")
    assert trader.cancel_order("SOL/USDT", order_id=limit.order_id).status == OrderStatus.CANCELLED


def test_symbol_mapping(fake, make_trader):
    trader = make_trader(symbol_map={"BTC/USDT": "BTCUSDT", "XRP/USDT": "XRPUSDT"})
    assert trader.normalize_symbol("BTC/USDT") == "BTCUSDT"
    assert trader.denormalize_symbol("BTCUSDT") == "BTC/USDT"
    assert trader.validate_symbol("BTC/USDT") is True
    assert trader.validate_symbol("XRP/USDT") is False  # mapped, but not listed at the venue
    assert trader.validate_symbol("DOGE/USDT") is False  # not mapped
    with pytest.raises(UnknownSymbol):
        trader.get_ticker("DOGE/USDT")
    trader.open_short("BTC/USDT", D("0.002"), client_order_id="map-1")
    assert [p.symbol for p in trader.get_positions(["BTC/USDT"])] == ["BTC/USDT"]
    assert trader.get_order("BTC/USDT", client_order_id="map-1").symbol == "BTC/USDT"


def test_market_data(fake, trader):
    ticker = trader.get_ticker("ETH/USDT")
    assert ticker.last == D("3200.00") and ticker.mark == D("3200")
    assert (ticker.bid, ticker.ask) == (D("3199.99"), D("3200.01"))
    assert ticker.funding_rate == D("0.0001") and ticker.change_24h_percent == D("2.041")
    assert ticker.timestamp.tzinfo is not None
    fake.set_mark_price("ETHUSDT", "3210.55")
    assert trader.get_market_price("ETH/USDT") == D("3210.55")
    candles = trader.get_candles("BTC/USDT", "5m", 7)
    assert len(candles) == 7 and candles[-1].close == D("65000")
    assert all(isinstance(c.open, D) and c.high >= c.low and c.timestamp.tzinfo for c in candles)
    assert candles[1].timestamp > candles[0].timestamp
    with pytest.raises(InvalidOrderError):
        trader.get_candles("BTC/USDT", "7m")


def test_testnet_switch_and_urls_point_only_at_the_configured_base(fake, make_trader):
    trader = make_trader(testnet=True)
    assert trader.base_url == fake.url
    assert trader.get_market_price("BTC/USDT") == D("65000")
    assert set(trader._exchange.urls["api"]) == set(BinanceUsdmTrader.API_URL_PATHS)
    assert all(url.startswith(fake.url) for url in trader._exchange.urls["api"].values())


def test_registry_builds_it_from_the_config(fake, clock):
    creds = Credentials({"api_key": fake.api_key, "api_secret": fake.api_secret})
    trader = create_trader(make_spec(fake), credentials=creds, runtime=make_runtime(clock))
    try:
        assert isinstance(trader, BinanceUsdmTrader) and isinstance(trader, ExchangeTrader)
        assert trader.ccxt_id == "binanceusdm" and trader._exchange.timeout == 5000
        # One throttle per call path: the Guard's shared limiter, not ccxt's per-instance one too.
        assert trader._exchange.enableRateLimit is False
    finally:
        trader.close()


def test_markets_loaded_once_across_instances(fake, make_trader):
    first, second = make_trader(), make_trader()
    first.symbol_rules("BTC/USDT")
    second.symbol_rules("ETH/USDT")
    second.get_ticker("SOL/USDT")
    assert fake.count("GET", "/fapi/v1/exchangeInfo") == 1


def test_markets_are_reloaded_after_their_ttl(fake, make_trader):
    trader = make_trader(extra={"markets_ttl_seconds": 0.05})
    trader.symbol_rules("BTC/USDT")
    time.sleep(0.1)
    make_trader(extra={"markets_ttl_seconds": 0.05}).symbol_rules("BTC/USDT")
    trader.symbol_rules("BTC/USDT")  # picks up the entry the other instance refreshed
    assert fake.count("GET", "/fapi/v1/exchangeInfo") == 2


# --------------------------------------------------------------------------- faults on reads
@pytest.mark.parametrize(("fault", "error"), [
    ("timeout", NetworkError), ("drop", NetworkError), ("500", ExchangeUnavailable),
    ("502", ExchangeUnavailable), ("503", ExchangeUnavailable), ("429", RateLimited),
    ("malformed_json", ExchangeUnavailable),
])
def test_read_faults_map_to_error_classes(fake, make_trader, clock, fault, error):
    trader = make_trader(runtime=make_runtime(clock, read_retries=0), timeout_ms=1000)
    trader.symbol_rules("BTC/USDT")  # markets loaded before the fault
    fake.inject("/fapi/v1/premiumIndex", fault, retry_after=7)
    with pytest.raises(error) as caught:
        trader.get_market_price("BTC/USDT")
    assert type(caught.value) is error
    assert "/fapi/v1/premiumIndex" in caught.value.message
    assert "127.0.0.1" not in caught.value.message and "?" not in caught.value.message
    if fault == "429":
        assert caught.value.retry_after == 7.0
    assert trader.get_market_price("BTC/USDT") == D("65000")  # the fault was one-off


@pytest.mark.parametrize("fault", ["503", "429", "malformed_json", "timeout"])
def test_transient_read_faults_are_retried_with_backoff(fake, make_trader, clock, fault):
    trader = make_trader(timeout_ms=1000)
    trader.symbol_rules("BTC/USDT")
    fake.inject("GET /fapi/v3/account", fault, times=2 if fault != "timeout" else 1, retry_after=1)
    balance = trader.get_balance()
    assert balance.total_balance == D("10000")
    attempts = 3 if fault != "timeout" else 2
    assert fake.count("GET", "/fapi/v3/account") == attempts
    assert clock.sleeps == ([1.0, 1.0] if fault == "429" else [0.2, 0.4][:attempts - 1])


def test_market_loading_is_retried_too(fake, trader):
    fake.inject("/fapi/v1/exchangeInfo", "502", times=1)
    assert trader.validate_symbol("BTC/USDT") is True
    assert fake.count("GET", "/fapi/v1/exchangeInfo") == 2


# --------------------------------------------------------------------------- orders and lost answers
@pytest.mark.parametrize("fault", ["accept_then_drop", "accept_then_500", "accept_then_timeout"])
def test_lost_order_answer_yields_exactly_one_order(fake, make_trader, fault):
    trader = make_trader(timeout_ms=1000)  # the fake holds a lost answer for 1.3 s
    trader.symbol_rules("BTC/USDT")
    fake.inject("POST /fapi/v1/order", fault)
    result = trader.open_long("BTC/USDT", D("0.003"), client_order_id="lost-1")
    assert result.client_order_id == "lost-1" and result.status == OrderStatus.FILLED
    assert result.executed_quantity == D("0.003")
    assert fake.count(*ORDER) == 1
    assert len(fake.orders) == 1 and fake.position("BTCUSDT").amount == D("0.003")
    assert fake.requests_to("GET", "/fapi/v1/order")[0].params["origClientOrderId"] == "lost-1"
    assert result.order_id == str(next(iter(fake.orders)))


def test_lost_answer_for_a_conditional_order_is_looked_up_in_its_own_book(fake, trader):
    trader.open_long("BTC/USDT", D("0.002"), client_order_id="c-1")
    fake.inject("POST /fapi/v1/algoOrder", "accept_then_drop")
    stop = trader.place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.SELL, position_side=PositionSide.LONG,
        order_type=OrderType.STOP_MARKET, quantity=D("0.002"), client_order_id="c-1-stop",
        stop_price=D("60000"), reduce_only=True))
    assert stop.status == OrderStatus.NEW and stop.client_order_id == "c-1-stop"
    assert fake.count("POST", "/fapi/v1/algoOrder") == 1 and len(fake.algo_orders) == 1


def test_lost_answer_with_failing_lookups_is_status_unknown(fake, trader):
    trader.symbol_rules("BTC/USDT")
    fake.inject("POST /fapi/v1/order", "accept_then_drop")
    fake.inject("GET /fapi/v1/order", "503", times=None)
    with pytest.raises(OrderStatusUnknown):
        trader.open_long("BTC/USDT", D("0.003"), client_order_id="unknown-1")
    assert fake.count(*ORDER) == 1 and len(fake.orders) == 1  # placed once, never re-sent
    assert fake.count("GET", "/fapi/v1/order") == 3  # runtime.lookup_attempts


def test_order_refused_before_acceptance_is_not_resent(fake, trader):
    trader.symbol_rules("BTC/USDT")
    fake.inject("POST /fapi/v1/order", "drop")  # connection lost before the venue took it
    # The client cannot tell this from a late acceptance: "Order does not exist" just after
    # a lost answer is no proof, the fate stays unknown for reconciliation.
    with pytest.raises(OrderStatusUnknown):
        trader.open_long("BTC/USDT", D("0.003"), client_order_id="gone-1")
    assert fake.count(*ORDER) == 1 and fake.orders == {}
    assert fake.count("GET", "/fapi/v1/order") == 3  # runtime.lookup_attempts, never a re-send


def test_resubmitting_a_client_order_id_returns_the_existing_order(fake, make_trader):
    first = make_trader().open_long("BTC/USDT", D("0.002"), client_order_id="idem-1")
    again = make_trader().open_long("BTC/USDT", D("0.002"), client_order_id="idem-1")
    assert again.order_id == first.order_id and again.status == OrderStatus.FILLED
    assert len(fake.orders) == 1 and fake.position("BTCUSDT").amount == D("0.002")


def test_venue_refusals_map_to_invalid_order_errors(fake, trader):
    with pytest.raises(InsufficientFunds):
        trader.open_long("BTC/USDT", D("100"), client_order_id="big-1", leverage=1)
    with pytest.raises(InvalidOrderError) as notional:
        trader.open_long("BTC/USDT", D("0.001"), client_order_id="tiny-1")  # 65 USDT < 100
    assert notional.value.code == "-4164"
    with pytest.raises(OrderNotFound):
        trader.get_order("BTC/USDT", order_id="123")
    with pytest.raises(OrderNotFound):
        trader.cancel_order("BTC/USDT", client_order_id="never-placed")
    assert trader._guard.breaker.state() == "closed"


# --------------------------------------------------------------------------- credentials
def test_bad_secret_is_an_authentication_error_without_secrets(fake, make_trader, caplog):
    caplog.set_level(logging.DEBUG)
    trader = make_trader(secret="not-the-secret-at-all")
    with pytest.raises(AuthenticationError) as caught:
        trader.get_balance()
    err = caught.value
    text = f"{err} {err!r} {err.args}"
    assert err.code == "-1022" and "/fapi/v3/account" in err.message
    for secret in (fake.api_key, "not-the-secret-at-all", "signature", "timestamp="):
        assert secret not in text
    assert not re.search(r"[0-9a-f]{64}", text)  # no HMAC signature
    assert err.__cause__ is None and err.__context__ is None  # ccxt's signed URL not chained
    assert fake.api_key not in caplog.text and "signature=" not in caplog.text
    assert "not-the-secret" not in repr(trader) and fake.api_key not in repr(trader)

    with pytest.raises(AuthenticationError) as wrong_key:
        make_trader(key="someone-elses-key").get_positions()
    assert wrong_key.value.code == "-2015" and "someone-elses-key" not in str(wrong_key.value)


# --------------------------------------------------------------------------- circuit breaker
def test_circuit_breaker_opens_refuses_and_closes_after_cooldown(fake, make_trader, clock):
    runtime = make_runtime(clock, read_retries=0, breaker_threshold=3, breaker_cooldown=30)
    trader = make_trader(runtime=runtime)
    trader.symbol_rules("BTC/USDT")
    fake.inject("/fapi/v1/premiumIndex", "503", times=None)
    for _ in range(3):
        with pytest.raises(ExchangeUnavailable):
            trader.get_market_price("BTC/USDT")
    with pytest.raises(CircuitOpenError) as refused:
        trader.get_market_price("BTC/USDT")
    assert refused.value.reopens_in == pytest.approx(30)
    with pytest.raises(CircuitOpenError):  # orders are refused too, before reaching the venue
        trader.open_long("BTC/USDT", D("0.002"), client_order_id="cb-1")
    assert fake.count("GET", "/fapi/v1/premiumIndex") == 3 and fake.count(*ORDER) == 0

    fake.clear_faults()
    clock.now += 31
    assert trader.get_market_price("BTC/USDT") == D("65000")  # the half-open probe succeeds
    assert trader._guard.breaker.state() == "closed"
