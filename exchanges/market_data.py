"""Market data shared through Redis: fetched once per venue, network, symbol and interval
however many agents (in however many processes) read it.

Keys are bucketed by time, so a value is reused only within the interval it belongs
to. A short single-flight lock (redis-py's Lock) makes concurrent readers of a missing
key wait for the first one's fetch instead of all calling the venue.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache
from redis.exceptions import LockError

from exchanges.adapters.base import Candle, ExchangeTrader, Ticker

logger = logging.getLogger(__name__)
T = TypeVar("T")

TIMEFRAME_SECONDS = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}
TICKER_TTL = 5.0  # seconds a ticker is shared
LOCK_WAIT = 5.0  # seconds the lock lives and a reader waits for it
LOCK_POLL = 0.02  # how often a waiting reader tries the lock

# Counters for benchmarks and tests: venue fetches versus cache hits, this process.
stats = {"fetches": 0, "hits": 0}


def _network(venue: str, testnet: bool) -> str:
    return f"{venue}:{'test' if testnet else 'main'}"


def _cached(key: str) -> Any:
    found = cache.get(key)
    if found is None:
        return _MISSING
    stats["hits"] += 1
    return pickle.loads(found)


_MISSING = object()


def _single_flight(key: str, ttl: float, fetch: Callable[[], T]) -> T:
    found = _cached(key)
    if found is not _MISSING:
        return found
    # redis-py's Lock (through django-redis): it expires after LOCK_WAIT, so a holder that
    # died frees it; a reader waits for it at most LOCK_WAIT, then fetches itself.
    lock = cache.lock(f"{key}:lock", timeout=LOCK_WAIT, sleep=LOCK_POLL, blocking_timeout=LOCK_WAIT)
    held = lock.acquire()
    try:
        # The holder stored the value before releasing the lock (or between our first look
        # and taking it): look again before calling the venue.
        found = _cached(key)
        if found is not _MISSING:
            return found
        value = fetch()
        stats["fetches"] += 1
        cache.set(key, pickle.dumps(value), timeout=max(1, int(ttl)))
        return value
    finally:
        if held:
            try:
                lock.release()
            except LockError:  # held past LOCK_WAIT: expired, maybe taken by another reader
                logger.info("market data lock %s expired before its release", key)


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
