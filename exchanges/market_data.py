"""Market data shared through Redis: fetched once per venue, network, symbol and interval
however many agents (in however many processes) read it.

Keys are bucketed by time, so a value is reused only within the interval it belongs
to. A short single-flight lock makes concurrent readers of a missing key wait for the
first one's fetch instead of all calling the venue.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache

from exchanges.adapters.base import Candle, ExchangeTrader, Ticker

logger = logging.getLogger(__name__)
T = TypeVar("T")

TIMEFRAME_SECONDS = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}
TICKER_TTL = 5.0  # seconds a ticker is shared
LOCK_WAIT = 5.0

# Counters for benchmarks and tests: venue fetches versus cache hits, this process.
stats = {"fetches": 0, "hits": 0}


def _network(venue: str, testnet: bool) -> str:
    return f"{venue}:{'test' if testnet else 'main'}"


def _single_flight(key: str, ttl: float, fetch: Callable[[], T]) -> T:
    found = cache.get(key)
    if found is not None:
        stats["hits"] += 1
        return pickle.loads(found)
    lock = f"{key}:lock"
    deadline = time.monotonic() + LOCK_WAIT
    while not cache.add(lock, "1", timeout=LOCK_WAIT):
        time.sleep(0.02)
        found = cache.get(key)
        if found is not None:
            stats["hits"] += 1
            return pickle.loads(found)
        if time.monotonic() > deadline:
            break  # the holder died; fetch ourselves
    try:
        # The previous holder may have stored the value and released the lock between our
        # first look and taking the lock: look again before calling the venue.
        found = cache.get(key)
        if found is not None:
            stats["hits"] += 1
            return pickle.loads(found)
        value = fetch()
        stats["fetches"] += 1
        cache.set(key, pickle.dumps(value), timeout=max(1, int(ttl)))
        return value
    finally:
        cache.delete(lock)


def candles(*, trader: ExchangeTrader, venue: str, testnet: bool, symbol: str, timeframe: str = "1m",
            limit: int = 50, now: float | None = None) -> list[Candle]:
    seconds = TIMEFRAME_SECONDS.get(timeframe, 60)
    bucket = int((now or time.time()) // seconds)
    key = f"md:candles:{_network(venue, testnet)}:{symbol}:{timeframe}:{limit}:{bucket}"
    return _single_flight(key, seconds, lambda: trader.get_candles(symbol, timeframe, limit))


def ticker(*, trader: ExchangeTrader, venue: str, testnet: bool, symbol: str, now: float | None = None) -> Ticker:
    bucket = int((now or time.time()) // TICKER_TTL)
    key = f"md:ticker:{_network(venue, testnet)}:{symbol}:{bucket}"
    return _single_flight(key, TICKER_TTL, lambda: trader.get_ticker(symbol))


def reset_stats() -> dict[str, Any]:
    snapshot = dict(stats)
    stats.update(fetches=0, hits=0)
    return snapshot
