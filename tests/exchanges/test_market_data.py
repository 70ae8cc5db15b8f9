"""The shared market-data cache: one venue fetch per venue, symbol and interval however
many readers, in however many threads."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from exchanges import market_data
from exchanges.services import trader_for_account
from tests.factories import make_account

pytestmark = pytest.mark.django_db


class Counting:
    def __init__(self, inner, delay=0.0):
        self.inner, self.delay = inner, delay
        self.calls = {"get_candles": 0, "get_ticker": 0}
        self.lock = threading.Lock()

    def get_candles(self, *a, **k):
        with self.lock:
            self.calls["get_candles"] += 1
        time.sleep(self.delay)
        return self.inner.get_candles(*a, **k)

    def get_ticker(self, *a, **k):
        with self.lock:
            self.calls["get_ticker"] += 1
        time.sleep(self.delay)
        return self.inner.get_ticker(*a, **k)


def test_many_readers_one_fetch_per_interval(user, market):
    trader = Counting(trader_for_account(make_account(user)), delay=0.2)
    kw = dict(trader=trader, venue="paper", testnet=False, symbol="BTC/USDT")
    now = 1_800_000_000.0  # fixed: all readers are in the same bucket
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: market_data.candles(**kw, timeframe="1m", limit=50, now=now), range(40)))
        tickers = list(pool.map(lambda _: market_data.ticker(**kw, now=now), range(40)))
    assert trader.calls == {"get_candles": 1, "get_ticker": 1}  # single flight, shared through Redis
    assert all(r == results[0] for r in results) and len(results[0]) == 50
    assert all(t == tickers[0] for t in tickers)
    # The next interval fetches again, once.
    market_data.candles(**kw, timeframe="1m", limit=50, now=now + 60)
    assert trader.calls["get_candles"] == 2


def test_a_reader_that_missed_the_value_looks_again_after_taking_the_lock(monkeypatch):
    """The race behind a flaky double fetch: a reader misses the value, then the holder
    stores it and releases the lock before the reader takes the lock."""
    from django.core.cache import cache

    class MissFirst:
        def __init__(self):
            self.misses = 1

        def get(self, key):
            if self.misses:
                self.misses -= 1
                return None  # the first look came just before the holder stored the value
            return cache.get(key)

        def __getattr__(self, name):
            return getattr(cache, name)

    cache.set("md:test:key", market_data.pickle.dumps("stored"), timeout=60)
    monkeypatch.setattr(market_data, "cache", MissFirst())
    fetches = []
    assert market_data._single_flight("md:test:key", 60, lambda: fetches.append(1) or "fetched") == "stored"
    assert fetches == []


def test_keys_separate_venue_network_symbol_and_interval(user, market):
    trader = Counting(trader_for_account(make_account(user)))
    now = 1_800_000_000.0
    for venue, testnet, symbol, timeframe in [("paper", False, "BTC/USDT", "1m"), ("paper", True, "BTC/USDT", "1m"),
                                              ("paper", False, "ETH/USDT", "1m"), ("paper", False, "BTC/USDT", "5m")]:
        market_data.candles(trader=trader, venue=venue, testnet=testnet, symbol=symbol, timeframe=timeframe,
                            limit=10, now=now)
    assert trader.calls["get_candles"] == 4


def test_agents_on_the_same_symbols_share_market_data(user, market):
    """Ten agents ticking on the same symbols: the venue is asked once per symbol."""
    from agents.services import agent_decision_run
    from tests.factories import make_agent

    account = make_account(user)
    agents = [make_agent(user, account, name=f"a{i}", symbols=["BTC/USDT", "ETH/USDT"]) for i in range(10)]
    market_data.reset_stats()
    for agent in agents:
        agent_decision_run(agent=agent)
    stats = market_data.reset_stats()
    # candles + ticker per symbol, unless a tick crossed into a new interval mid-run
    assert stats["fetches"] <= 2 * 2 * 2
    assert stats["hits"] >= 10 * 2 * 2 - stats["fetches"]


def test_a_reader_fetches_itself_when_the_lock_holder_never_lets_go(monkeypatch):
    """A holder that died (or hangs) keeps readers waiting at most LOCK_WAIT."""
    from django.core.cache import cache

    monkeypatch.setattr(market_data, "LOCK_WAIT", 0.3)
    stuck = cache.lock("md:test:stuck:lock", timeout=30)
    assert stuck.acquire(blocking=False)
    try:
        started = time.monotonic()
        assert market_data._single_flight("md:test:stuck", 60, lambda: "fetched") == "fetched"
        assert 0.25 <= time.monotonic() - started < 3
    finally:
        stuck.release()
        cache.delete("md:test:stuck")
