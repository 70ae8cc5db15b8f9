"""The Hyperliquid adapter against a local fake of the venue that the real SDK talks to.

No database. Each test gets its own fake server, a main account funded with 10,000 USDC and
an agent wallet approved for it, and a runtime on a fake clock whose ``sleep`` only moves
the clock (backoff and rate-limit waits cost no time).
"""

from __future__ import annotations

import copy
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest
from eth_account import Account

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
from exchanges.adapters.hyperliquid import HyperliquidTrader, cloid_for, round_price
from exchanges.adapters.registry import create_trader
from exchanges.adapters.resilience import AdapterRuntime, MemoryStore
from tests.fakes.hyperliquid_server import HyperliquidFakeServer

TIMEOUT_MS = 250  # the configured request timeout, small so timeout faults are quick


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server():
    with HyperliquidFakeServer() as fake:
        yield fake


@pytest.fixture
def main_wallet():
    return Account.create()


@pytest.fixture
def agent(server, main_wallet):
    wallet = Account.create()
    server.fund(main_wallet.address, "10000")
    server.approve_agent(main_wallet.address, wallet.address)
    return wallet


@pytest.fixture
def clock():
    return FakeClock()


def make_runtime(clock: FakeClock, **kw) -> AdapterRuntime:
    return AdapterRuntime(store=MemoryStore(clock=clock), clock=clock, sleep=clock.sleep, **kw)


def make_spec(server: HyperliquidFakeServer, **parameters) -> VenueSpec:
    cfg = load_config("config/exchanges.yaml", environment="testing",
                      environ={"HYPERLIQUID_API_URL": server.url})
    config = copy.deepcopy(cfg.venue_block("hyperliquid"))
    config["network"]["rest_api"]["timeout"] = TIMEOUT_MS
    config["parameters"].update(parameters)
    return VenueSpec(venue="hyperliquid", config=config, symbol_map=cfg.symbol_map("hyperliquid"),
                     testnet=False, account_ref="t1")


def make_trader(server, key: str, account: str, clock: FakeClock, *, runtime=None, **parameters):
    return HyperliquidTrader(spec=make_spec(server, **parameters),
                             credentials=Credentials({"private_key": key, "account_address": account}),
                             runtime=runtime or make_runtime(clock))


@pytest.fixture
def trader(server, agent, main_wallet, clock):
    t = make_trader(server, agent.key.hex(), main_wallet.address, clock)
    yield t
    t.close()


def order_wires(server) -> list[dict]:
    return [w for r in server.exchange_requests("order") for w in r["body"]["action"]["orders"]]


# ------------------------------------------------------------------------------- scenario
def test_full_scenario_open_read_protect_close_balance(server, trader, main_wallet):
    assert isinstance(trader, ExchangeTrader)
    opened = trader.open_long("BTC/USDT", Decimal("0.5"), client_order_id="dec-1-open", leverage=5)

    assert opened.status == OrderStatus.FILLED
    assert opened.executed_quantity == Decimal("0.5") and opened.executed_price == Decimal("65000")
    assert opened.fees == Decimal("14.625")  # 0.5 * 65000 * 0.045% taker, from the venue's fills
    assert opened.fee_currency == "USDC" and opened.timestamp.tzinfo is not None
    assert server.position(main_wallet.address, "BTC") == {"szi": Decimal("0.5"), "entry": Decimal("65000")}
    assert server.account(main_wallet.address).leverage["BTC"] == (5, True)
    # leverage was set before the order was sent
    kinds = [r["kind"] for r in server.exchange_requests()]
    assert kinds == ["updateLeverage", "order"]

    server.set_mark("BTC", "66000")
    [position] = trader.get_positions()
    assert (position.symbol, position.side, position.size) == ("BTC/USDT", PositionSide.LONG, Decimal("0.5"))
    assert position.entry_price == Decimal("65000") and position.mark_price == Decimal("66000")
    assert position.unrealized_pnl == Decimal("500") and position.leverage == Decimal("5")
    assert position.margin == Decimal("6600") and position.margin_type == "cross"
    state = server.clearinghouse(main_wallet.address)["assetPositions"][0]["position"]
    assert position.liquidation_price == Decimal(state["liquidationPx"]) > 0
    assert position.percentage_pnl == Decimal(state["returnOnEquity"]) * 100
    assert trader.get_positions(["ETH/USDT"]) == []

    stop = trader.place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.SELL, position_side=PositionSide.LONG,
        order_type=OrderType.STOP_MARKET, quantity=Decimal("0.5"), client_order_id="dec-1-sl",
        stop_price=Decimal("63000.4"), reduce_only=True))
    assert stop.status == OrderStatus.NEW and stop.stop_price == Decimal("63000")
    venue_stop = server.order_by_cloid(main_wallet.address, cloid_for("dec-1-sl"))
    assert venue_stop.status == "open" and venue_stop.tpsl == "sl" and venue_stop.is_market
    assert venue_stop.trigger_px == Decimal("63000") and venue_stop.reduce_only
    assert [o.client_order_id for o in trader.get_open_orders("BTC/USDT")] == ["dec-1-sl"]

    closed = trader.close_long("BTC/USDT", Decimal("0.5"), client_order_id="dec-2-close")
    assert closed.status == OrderStatus.FILLED and closed.reduce_only
    assert closed.fills[0].realized_pnl == Decimal("500")
    assert server.position(main_wallet.address, "BTC") is None
    # the venue cancels a reduce-only stop once there is nothing left to reduce
    assert trader.get_order("BTC/USDT", client_order_id="dec-1-sl").status == OrderStatus.CANCELLED
    assert trader.get_positions() == [] and trader.get_open_orders() == []

    balance = trader.get_balance()
    venue = server.clearinghouse(main_wallet.address)
    assert balance.margin_balance == Decimal(venue["marginSummary"]["accountValue"])
    assert balance.available_balance == Decimal(venue["withdrawable"])
    assert balance.total_balance == Decimal("10000") + Decimal("500") - opened.fees - closed.fees
    assert balance.unrealized_pnl == 0 and balance.currency == "USDC"
    # one order action per order, nothing sent twice
    assert len(server.exchange_requests("order")) == 3


def test_attached_stop_loss_and_take_profit_are_grouped_with_the_entry(server, trader, main_wallet):
    result = trader.open_short("ETH/USDT", Decimal("1"), client_order_id="dec-7",
                               stop_loss=Decimal("3300"), take_profit=Decimal("3000"))
    [action] = server.exchange_requests("order")
    assert action["body"]["action"]["grouping"] == "normalTpsl"
    sl, tp = result.attached
    assert (sl.client_order_id, sl.order_type, sl.side) == ("dec-7:sl", OrderType.STOP_MARKET, OrderSide.BUY)
    assert (tp.client_order_id, tp.order_type, tp.stop_price) == ("dec-7:tp", OrderType.TAKE_PROFIT_MARKET,
                                                                  Decimal("3000"))
    assert sl.status == tp.status == OrderStatus.NEW and sl.order_id and tp.order_id and sl.reduce_only
    wires = action["body"]["action"]["orders"]
    assert [w["t"]["trigger"]["tpsl"] for w in wires[1:]] == ["sl", "tp"]
    assert all(w["t"]["trigger"]["isMarket"] and w["r"] for w in wires[1:])

    server.set_mark("ETH", "3310")  # the stop fires, the target is cancelled with the position gone
    assert server.position(main_wallet.address, "ETH") is None
    assert trader.get_order("ETH/USDT", order_id=sl.order_id).status == OrderStatus.FILLED
    assert trader.get_order("ETH/USDT", client_order_id="dec-7:tp").status == OrderStatus.CANCELLED


def test_brackets_on_a_resting_limit_wait_for_its_fill(server, trader, main_wallet):
    result = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-8", order_type="LIMIT",
                              price=Decimal("140"), stop_loss=Decimal("130"))
    assert result.status == OrderStatus.NEW
    [sl] = result.attached
    assert sl.status == OrderStatus.NEW and sl.order_id == "" and sl.raw_data["status"] == "waitingForFill"
    server.set_mark("SOL", "139")
    assert trader.get_order("SOL/USDT", client_order_id="dec-8").status == OrderStatus.FILLED
    assert trader.get_order("SOL/USDT", client_order_id="dec-8:sl").status == OrderStatus.NEW


def test_bracket_on_the_wrong_side_is_refused_before_sending(server, trader):
    with pytest.raises(InvalidOrderError, match="wrong side"):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="x", stop_loss=Decimal("66000"))
    assert server.exchange_requests() == []


# ------------------------------------------------------------------------------- pricing
@pytest.mark.parametrize(("price", "sz_decimals", "rounding", "expected"), [
    (Decimal("65012.345"), 5, ROUND_DOWN, Decimal("65012")),
    (Decimal("123456.7"), 5, ROUND_UP, Decimal("123457")),  # integers always allowed
    (Decimal("3107.83872"), 4, ROUND_UP, Decimal("3107.9")),
    (Decimal("149.2549"), 2, ROUND_DOWN, Decimal("149.25")),
    (Decimal("0.000123456"), 0, ROUND_DOWN, Decimal("0.000123")),  # 6 - szDecimals decimals
    (Decimal("1.234567"), 3, ROUND_DOWN, Decimal("1.234")),
])
def test_round_price_follows_the_venue_rule(price, sz_decimals, rounding, expected):
    assert round_price(price, sz_decimals, rounding) == expected


def test_market_order_is_an_ioc_limit_within_slippage(server, trader):
    server.set_mark("ETH", "3123.4", mid="3123.456")
    result = trader.open_short("ETH/USDT", Decimal("0.12345"), client_order_id="dec-3")
    [wire] = order_wires(server)
    assert wire["t"] == {"limit": {"tif": "Ioc"}} and wire["b"] is False and wire["r"] is False
    assert wire["s"] == "0.1234"  # szDecimals 4, rounded down
    # 3123.456 * (1 - 0.005) = 3107.83872 -> 5 significant figures, towards the mid
    assert wire["p"] == "3107.9"
    mid = Decimal("3123.456")
    assert (mid - Decimal(wire["p"])) / mid <= Decimal("0.005")
    assert result.status == OrderStatus.FILLED and result.executed_price == Decimal("3123.4")

    server.set_mark("BTC", "65000", mid="65000.7")
    trader.open_long("BTC/USDT", Decimal("0.001"), client_order_id="dec-4")
    wire = order_wires(server)[-1]
    assert wire["p"] == "65325" and wire["b"] is True  # 65325.7035 rounded down to 5 sig figs


def test_limit_time_in_force_mapping_and_cancel(server, trader, main_wallet):
    gtc = trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-1", order_type="LIMIT",
                           price=Decimal("60000.55"))
    alo = trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-2", order_type="LIMIT",
                           price=Decimal("59000"), time_in_force="ALO")
    assert [w["t"]["limit"]["tif"] for w in order_wires(server)] == ["Gtc", "Alo"]
    assert order_wires(server)[0]["p"] == "60000"  # a buy's price is never rounded up
    assert gtc.status == alo.status == OrderStatus.NEW and gtc.price == Decimal("60000")
    assert {o.client_order_id for o in trader.get_open_orders()} == {"lim-1", "lim-2"}

    cancelled = trader.cancel_order("BTC/USDT", client_order_id="lim-1")
    assert cancelled.status == OrderStatus.CANCELLED
    assert trader.cancel_order("BTC/USDT", client_order_id="lim-1").status == OrderStatus.CANCELLED
    assert trader.cancel_order("BTC/USDT", order_id=alo.order_id).status == OrderStatus.CANCELLED
    assert [r["kind"] for r in server.exchange_requests()] == ["order", "order", "cancelByCloid",
                                                                "cancelByCloid", "cancel"]
    nonces = [r["body"]["nonce"] for r in server.exchange_requests()]  # actions in quick succession
    assert len(set(nonces)) == len(nonces)
    with pytest.raises(OrderNotFound):
        trader.cancel_order("BTC/USDT", client_order_id="never-sent")
    with pytest.raises(InvalidOrderError):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-3", order_type="LIMIT",
                         price=Decimal("60000"), time_in_force="FOK")


# ------------------------------------------------------------------------------- cloid
def test_cloid_is_derived_from_the_client_order_id(server, trader, main_wallet):
    cloid = cloid_for("dec-42")
    assert cloid == cloid_for("dec-42") and cloid != cloid_for("dec-43")
    assert cloid.startswith("0x") and len(cloid) == 34 and int(cloid, 16) >= 0

    result = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-42")
    [wire] = order_wires(server)
    assert wire["c"] == cloid and result.raw_data["cloid"] == cloid
    assert result.client_order_id == "dec-42"
    assert server.order_by_cloid(main_wallet.address, cloid).oid == int(result.order_id)

    found = trader.get_order("SOL/USDT", client_order_id="dec-42")
    assert (found.order_id, found.status, found.client_order_id) == (result.order_id, OrderStatus.FILLED, "dec-42")
    assert found.executed_price == Decimal("150") and found.fees > 0
    by_oid = trader.get_order("SOL/USDT", order_id=result.order_id)
    assert by_oid.client_order_id == "dec-42"  # this trader sent it (a display nicety only)
    assert result.venue_client_order_id == found.venue_client_order_id == by_oid.venue_client_order_id == cloid
    # a trader that never saw the order (another process) finds it by the same cloid
    other = make_trader(server, trader.credentials.reveal("private_key"), main_wallet.address, FakeClock())
    assert other.get_order("SOL/USDT", client_order_id="dec-42").order_id == result.order_id

    with pytest.raises(OrderNotFound):
        trader.get_order("SOL/USDT", client_order_id="dec-unknown")


def test_duplicate_client_order_id_returns_the_existing_order(server, trader):
    first = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-9")
    second = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-9")
    assert second.order_id == first.order_id and second.status == OrderStatus.FILLED
    assert len(server.placed_orders()) == 1


# ------------------------------------------------------------------------------- leverage
def test_leverage_and_margin_mode_through_the_sdk(server, agent, main_wallet, clock, trader):
    trader.set_leverage("ETH/USDT", 7)
    [req] = server.exchange_requests("updateLeverage")
    assert req["body"]["action"] == {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 7}
    assert server.account(main_wallet.address).leverage["ETH"] == (7, True)
    with pytest.raises(InvalidOrderError):  # above the venue's (and config's) cap: not sent
        trader.set_leverage("ETH/USDT", 26)
    with pytest.raises(InvalidOrderError, match="cross-margin only"):
        trader.set_margin_mode("ETH/USDT", MarginMode.ISOLATED)
    assert trader.symbol_rules("BTC/USDT").max_leverage == 20  # config per_symbol cap under the venue's 40

    isolated_ok = make_trader(server, agent.key.hex(), main_wallet.address, clock, cross_margin_only=False)
    isolated_ok.set_margin_mode("ETH/USDT", MarginMode.ISOLATED)
    assert server.account(main_wallet.address).leverage["ETH"] == (7, False)
    isolated_ok.set_leverage("ETH/USDT", 3)
    assert server.account(main_wallet.address).leverage["ETH"] == (3, False)


# ------------------------------------------------------------------------------- auth
def test_unapproved_agent_key_is_an_authentication_error(server, main_wallet, clock):
    stranger = Account.create()
    key = stranger.key.hex()
    trader = make_trader(server, key, main_wallet.address, clock)
    with pytest.raises(AuthenticationError) as caught:
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="a-1")
    text = str(caught.value) + repr(caught.value.args) + repr(trader)
    assert key.removeprefix("0x") not in text.lower() and "approve" in text
    assert server.placed_orders() == []


def test_revoked_agent_is_refused_by_the_venue_signature_check(server, trader, agent, main_wallet):
    trader.open_long("SOL/USDT", Decimal("1"), client_order_id="r-1")  # verified and signed
    server.revoke_agent(agent.address)
    with pytest.raises(AuthenticationError) as caught:
        trader.open_long("SOL/USDT", Decimal("1"), client_order_id="r-2")
    # the fake recovered the agent from the signature and found it approved for nobody
    last = server.exchange_requests("order")[-1]
    assert last["answer"] == {"status": "err",
                              "response": f"User or API Wallet {agent.address.lower()} does not exist."}
    message = str(caught.value)
    assert "does not exist" in message
    assert agent.key.hex().removeprefix("0x") not in message.lower()
    assert last["body"]["signature"]["r"].removeprefix("0x") not in message.lower()
    assert len(server.placed_orders()) == 1


def test_agent_of_another_account_is_refused_before_signing(server, agent, clock):
    other_account = Account.create()
    trader = make_trader(server, agent.key.hex(), other_account.address, clock)
    with pytest.raises(AuthenticationError, match="another account"):
        trader.set_leverage("BTC/USDT", 2)
    assert server.exchange_requests() == []


def test_malformed_credentials_never_echo_the_key(server, main_wallet, clock):
    bad = "0x" + "ab" * 31 + "zz"
    with pytest.raises(AuthenticationError) as caught:
        make_trader(server, bad, main_wallet.address, clock)
    assert "ab" * 31 not in str(caught.value)


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


# ------------------------------------------------------------------------------- fresh adapters
def test_a_fresh_adapter_reports_each_orders_cloid(server, agent, main_wallet, clock):
    """Reconciliation and flattening may run in another process than the one that placed
    an order: every result carries the venue's cloid, which the trading layer maps to ours
    (Order.venue_client_order_id), with no memory of what was sent."""
    def fresh():
        return make_trader(server, agent.key.hex(), main_wallet.address, clock)

    placed = fresh().open_long("BTC/USDT", Decimal("0.01"), client_order_id="rest-1", order_type="LIMIT",
                               price=Decimal("60000"))
    assert (placed.client_order_id, placed.venue_client_order_id) == ("rest-1", cloid_for("rest-1"))
    fresh().open_long("ETH/USDT", Decimal("0.1"), client_order_id="rest-2", order_type="LIMIT",
                      price=Decimal("3000"), stop_loss=Decimal("2800"))

    listed = fresh().get_open_orders()
    assert sorted(o.venue_client_order_id for o in listed) == sorted(
        cloid_for(c) for c in ("rest-1", "rest-2"))  # the bracket waits for its entry's fill
    assert all(o.client_order_id == o.venue_client_order_id for o in listed)  # ours is not known here
    [btc] = fresh().get_open_orders("BTC/USDT")
    assert btc.order_id == placed.order_id and btc.venue_client_order_id == cloid_for("rest-1")

    by_cid = fresh().get_order("BTC/USDT", client_order_id="rest-1")
    assert (by_cid.client_order_id, by_cid.venue_client_order_id) == ("rest-1", cloid_for("rest-1"))
    by_oid = fresh().get_order("BTC/USDT", order_id=placed.order_id)
    assert by_oid.venue_client_order_id == cloid_for("rest-1")
    cancelled = fresh().cancel_order("BTC/USDT", order_id=placed.order_id)
    assert cancelled.status == OrderStatus.CANCELLED and cancelled.venue_client_order_id == cloid_for("rest-1")


def test_the_nonce_clock_is_the_signers_across_trader_instances(server, agent, main_wallet, clock, monkeypatch):
    """Two instances signing for one agent key at once (two callers, or an old and a new
    pooled trader) never send the same nonce, which the venue would refuse. The clock the
    nonces come from ticks every 100 ms here, so instances that did not share the signer's
    nonce clock would collide within a tick."""
    import threading
    import time as real_time
    import types

    import hyperliquid.exchange as sdk_exchange

    import exchanges.adapters.hyperliquid.trader as adapter_module

    def coarse() -> float:
        return (int(real_time.time() * 10)) / 10.0

    monkeypatch.setattr(sdk_exchange, "get_timestamp_ms", lambda: int(coarse() * 1000))
    monkeypatch.setattr(adapter_module, "time", types.SimpleNamespace(time=coarse, sleep=real_time.sleep))
    traders = [make_trader(server, agent.key.hex(), main_wallet.address, clock) for _ in range(2)]
    for trader in traders:
        trader.get_market_price("SOL/USDT")  # clients built before the race
    barrier, errors = threading.Barrier(2), []

    def place(index):
        try:
            barrier.wait()
            for i in range(8):
                traders[index].open_long("SOL/USDT", Decimal("1"), client_order_id=f"n{index}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    nonces = [r["body"]["nonce"] for r in server.exchange_requests("order")]
    assert len(nonces) == len(set(nonces)) == 16
    assert len(server.placed_orders(main_wallet.address)) == 16
