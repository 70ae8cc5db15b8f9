"""Long-lived traders: one per account and credentials in each process.

Through ``trader_for_account`` (an ExchangeAccount with encrypted credentials) against the
fake Binance and Hyperliquid servers that ccxt and the SDK really talk to; the fakes'
request logs show what was fetched and sent. A venue needs its metadata once, and leverage
and margin mode once per symbol and value; building a trader per call fetched and sent
them again for every order.
"""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from eth_account import Account

from exchanges.adapters.errors import AuthenticationError
from exchanges.adapters.hyperliquid import cloid_for
from exchanges.adapters.pool import TraderPool
from exchanges.models import ExchangeAccount
from exchanges.services import (
    exchange_account_delete,
    exchange_account_set_credentials,
    trader_for_account,
    trader_pool,
)
from tests.factories import make_account

API_KEY, API_SECRET = "A1" * 32, "S2" * 32
N = 4


@pytest.fixture
def binance(venues):
    return venues[0]


@pytest.fixture
def hl(venues):
    return venues[1]


def binance_account(user, secret=API_SECRET, name=None):
    return make_account(user, venue="binance_futures", name=name,
                        credentials={"api_key": API_KEY, "api_secret": secret})


def hl_account(user, hl):
    main, agent = Account.create(), Account.create()
    hl.fund(main.address, "100000")
    hl.approve_agent(main.address, agent.address)
    creds = {"private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address}
    return make_account(user, venue="hyperliquid", credentials=creds), main


def place_opening_orders(account, prefix, n=N):
    """What the platform does per order: get the account's trader, use it, close it."""
    results = []
    for i in range(n):
        trader = trader_for_account(account)
        try:
            results.append(trader.open_long("BTC/USDT", D("0.002"), client_order_id=f"{prefix}-{i}", leverage=2))
        finally:
            trader.close()
    return results


# --------------------------------------------------------------------------- reuse
@pytest.mark.django_db
def test_binance_metadata_and_settings_are_fetched_once_across_orders(user, binance):
    account = binance_account(user)
    results = place_opening_orders(account, "bn")
    assert [r.client_order_id for r in results] == [f"bn-{i}" for i in range(N)]
    assert all(r.executed_quantity == D("0.002") for r in results)
    assert binance.count("POST", "/fapi/v1/order") == N
    assert binance.count("GET", "/fapi/v1/exchangeInfo") == 1
    assert binance.count("POST", "/fapi/v1/leverage") == 1  # per call: once per order
    assert binance.count("POST", "/fapi/v1/marginType") == 1
    assert binance.leverage["BTCUSDT"] == 2

    trader = trader_for_account(account)
    trader.close()
    trader.close()  # callers' finally blocks: harmless, repeatedly
    assert trader_for_account(account) is trader
    assert trader.get_positions()[0].size == D("0.002") * N  # still usable after close()

    # a change of leverage is sent; the same value again is not
    trader.open_long("BTC/USDT", D("0.002"), client_order_id="bn-5x", leverage=5)
    trader.open_long("BTC/USDT", D("0.002"), client_order_id="bn-5y", leverage=5)
    assert binance.count("POST", "/fapi/v1/leverage") == 2 and binance.leverage["BTCUSDT"] == 5


@pytest.mark.django_db
def test_hyperliquid_meta_signer_and_leverage_are_fetched_once_across_orders(user, hl):
    account, main = hl_account(user, hl)
    results = place_opening_orders(account, "hl")
    assert [r.client_order_id for r in results] == [f"hl-{i}" for i in range(N)]
    assert [r.venue_client_order_id for r in results] == [cloid_for(f"hl-{i}") for i in range(N)]
    assert len(hl.exchange_requests("order")) == N
    assert len(hl.info_requests("meta")) == 1
    assert len(hl.info_requests("spotMeta")) == 1
    assert len(hl.info_requests("userRole")) == 1
    assert len(hl.exchange_requests("updateLeverage")) == 1
    assert hl.position(main.address, "BTC")["szi"] == D("0.002") * N


@pytest.mark.django_db
def test_paper_traders_are_not_pooled_by_config(user, market):
    account = make_account(user, venue="paper")
    assert trader_for_account(account) is not trader_for_account(account)
    assert len(trader_pool()) == 0


# --------------------------------------------------------------------------- replacement
@pytest.mark.django_db
def test_a_pooled_trader_is_replaced_when_the_credentials_change(user, binance):
    account = binance_account(user)
    first = trader_for_account(account)
    assert first.get_balance().total_balance == D("10000")
    first.close()

    wrong = "W9" * 32
    exchange_account_set_credentials(account=account, credentials={"api_key": API_KEY, "api_secret": wrong})
    second = trader_for_account(account)
    assert second is not first
    assert first._built == []  # the old one was shut down (nobody held it)
    with pytest.raises(AuthenticationError):
        second.get_balance()  # signs with the new secret

    # Replaced from another process: this one sees a new ciphertext on its next read.
    exchange_account_set_credentials(account=account, credentials={"api_key": API_KEY, "api_secret": API_SECRET})
    reloaded = ExchangeAccount.objects.get(pk=account.pk)
    third = trader_for_account(reloaded)
    assert third is not second
    assert third.get_balance().total_balance == D("10000")


@pytest.mark.django_db
def test_a_held_trader_is_shut_down_only_when_released(user, binance):
    account = binance_account(user)
    held = trader_for_account(account)
    held.get_market_price("BTC/USDT")
    exchange_account_set_credentials(account=account, credentials={"api_key": API_KEY, "api_secret": "X" * 64})
    replacement = trader_for_account(account)
    assert replacement is not held
    assert held._built  # a caller still holds it: not closed under its feet
    assert held.get_market_price("BTC/USDT") == D("65000")
    held.close()
    assert held._built == []


@pytest.mark.django_db(transaction=True)
def test_deleting_or_disabling_an_account_evicts_its_trader(user, binance):
    account = binance_account(user)
    trader = trader_for_account(account)
    trader.close()
    account.status = ExchangeAccount.Status.DISABLED
    assert trader_for_account(account) is not trader  # a disabled account gets no pooled trader
    assert trader._built == [] and len(trader_pool()) == 0

    other = binance_account(user, name="second")
    pooled = trader_for_account(other)
    pooled.close()
    exchange_account_delete(account=other)
    assert pooled._built == [] and len(trader_pool()) == 0


# --------------------------------------------------------------------------- threads
def run_in_threads(count, target):
    barrier = threading.Barrier(count)
    results, errors = {}, []

    def worker(index):
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.django_db
def test_two_threads_place_orders_through_one_pooled_binance_trader(user, binance):
    account = binance_account(user)
    trader = trader_for_account(account)  # the database is read here, not in the threads

    def place(thread):
        return [trader.open_long("BTC/USDT", D("0.002"), client_order_id=f"th{thread}-{i}", leverage=3)
                for i in range(N)]

    results = run_in_threads(2, place)
    for thread, placed in results.items():
        assert [r.client_order_id for r in placed] == [f"th{thread}-{i}" for i in range(N)]
        for r in placed:
            venue = binance.order_by_client_id("BTCUSDT", r.client_order_id)
            assert str(venue["orderId"]) == r.order_id and r.executed_quantity == D("0.002")
    order_ids = [r.order_id for placed in results.values() for r in placed]
    assert len(set(order_ids)) == 2 * N == len(binance.orders)
    assert binance.count("POST", "/fapi/v1/leverage") == 1
    assert binance.count("POST", "/fapi/v1/marginType") == 1
    assert binance.count("GET", "/fapi/v1/exchangeInfo") == 1
    assert binance.position("BTCUSDT").amount == D("0.002") * 2 * N


@pytest.mark.django_db
def test_two_threads_place_orders_through_one_pooled_hyperliquid_trader(user, hl):
    account, main = hl_account(user, hl)
    trader = trader_for_account(account)

    def place(thread):
        return [trader.open_long("ETH/USDT", D("0.1"), client_order_id=f"th{thread}-{i}", leverage=3)
                for i in range(N)]

    results = run_in_threads(2, place)
    for thread, placed in results.items():
        assert [r.client_order_id for r in placed] == [f"th{thread}-{i}" for i in range(N)]
        for r in placed:
            assert hl.order_by_cloid(main.address, cloid_for(r.client_order_id)).oid == int(r.order_id)
    assert len({r.order_id for placed in results.values() for r in placed}) == 2 * N
    nonces = [r["body"]["nonce"] for r in hl.exchange_requests()]
    assert len(nonces) == len(set(nonces)) == 2 * N + 1  # the orders and one updateLeverage
    assert len(hl.info_requests("meta")) == len(hl.info_requests("userRole")) == 1
    assert hl.position(main.address, "ETH")["szi"] == D("0.1") * 2 * N


# --------------------------------------------------------------------------- the pool itself
class Dummy:
    def __init__(self, name):
        self.name, self.pooled, self.shut = name, False, 0

    def shutdown(self):
        self.shut += 1

    def close(self):
        self._pool_release(self)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_pool_builds_once_per_key_and_retires_on_a_new_version():
    pool = TraderPool(idle_ttl=60)
    built = []

    def build(name):
        def make():
            built.append(Dummy(name))
            return built[-1]
        return make

    first = pool.get(1, "v1", build("a"))
    assert pool.get(1, "v1", build("b")) is first and len(built) == 1 and first.pooled
    first.close()
    first.close()
    second = pool.get(1, "v2", build("c"))
    assert second is not first and first.shut == 1 and second.shut == 0
    pool.close_all()
    assert second.shut == 1 and len(pool) == 0


def test_pool_shuts_idle_traders_down_after_the_ttl():
    clock = Clock()
    pool = TraderPool(idle_ttl=60, clock=clock)
    idle = pool.get(1, "v", lambda: Dummy("idle"))
    idle.close()
    clock.now = 30
    busy = pool.get(2, "v", lambda: Dummy("busy"))
    clock.now = 61
    pool.get(2, "v", lambda: Dummy("never"))
    assert idle.shut == 1 and busy.shut == 0 and len(pool) == 1


def test_concurrent_first_use_builds_one_trader():
    pool = TraderPool()
    gate = threading.Event()
    builds = []

    def build():
        gate.wait(5)
        builds.append(Dummy("x"))
        return builds[-1]

    results = []
    threads = [threading.Thread(target=lambda: results.append(pool.get(7, "v", build))) for _ in range(4)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(builds) == 1 and len(results) == 4 and all(r is builds[0] for r in results)
