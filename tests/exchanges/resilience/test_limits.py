"""The counter stores and the rate limiter (per second and per minute, shared across processes
through Redis). Time is a fake clock whose sleep advances it, except where real processes share
the embedded Redis."""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import redis

from exchanges.adapters.errors import (
    RateLimited,
)
from exchanges.adapters.resilience import (
    MemoryStore,
    RateLimiter,
    RedisStore,
)
from tests.exchanges.resilience.support import (
    limiter,
    redis_client,
)


# --------------------------------------------------------------------------- stores
def test_redis_store_counts_with_a_ttl_set_once(redis_prefix):
    client = redis_client()
    store = RedisStore(client, prefix=redis_prefix)
    assert store.incr("c", ttl=10) == 1
    first_ttl = client.pttl(redis_prefix + "c")
    assert 0 < first_ttl <= 10_000
    assert store.incr("c", ttl=1000) == 2  # a later increment does not extend the window
    assert client.pttl(redis_prefix + "c") <= first_ttl
    assert store.get("c") == "2"

    store.set("s", "open", ttl=5)
    assert store.get("s") == "open"
    assert 0 < client.pttl(redis_prefix + "s") <= 5000
    store.set("forever", "x")
    assert client.pttl(redis_prefix + "forever") == -1
    store.delete("s")
    assert store.get("s") is None


def test_memory_store_expires_counters(clock):
    store = MemoryStore(clock)
    assert store.incr("k", ttl=2) == 1
    clock.advance(1)
    assert store.incr("k", ttl=2) == 2  # keeps the first expiry
    clock.advance(1)
    assert store.get("k") is None
    assert store.incr("k", ttl=2) == 1


# --------------------------------------------------------------------------- rate limits
def test_per_second_window_waits_for_the_next_second(clock):
    rl = limiter(clock, {"orders": {"per_second": 3, "per_minute": 100}})
    for _ in range(3):
        rl.acquire("orders")
    assert clock.sleeps == []
    rl.acquire("orders")  # the fourth waits until the next whole second
    assert clock.sleeps == [0.75]
    assert clock.now == 1_000_001.0


def test_a_full_minute_beyond_max_wait_raises_rate_limited_without_sleeping(clock):
    clock.now = 60 * 1000 + 40.0  # 20 s before the minute ends
    rl = limiter(clock, {"orders": {"per_second": 10, "per_minute": 5}})
    for _ in range(5):
        rl.acquire("orders")
    with pytest.raises(RateLimited) as caught:
        rl.acquire("orders")
    assert caught.value.retry_after == pytest.approx(20.0)
    assert clock.sleeps == []


def test_a_full_minute_within_max_wait_sleeps_in_steps_of_at_most_a_second(clock):
    clock.now = 60 * 1000 + 57.5  # 2.5 s before the minute ends
    rl = limiter(clock, {"orders": {"per_second": 10, "per_minute": 2}})
    rl.acquire("orders")
    rl.acquire("orders")
    rl.acquire("orders")
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert clock.now == 60 * 1001


def test_refused_attempts_do_not_spend_the_per_minute_budget(clock):
    # Each of these three waits for a new second; only three calls are made in the minute,
    # so all three must get through (retries refused by the per-second window used to be
    # counted against the minute as well).
    clock.now = 60 * 1000 + 0.5
    rl = limiter(clock, {"orders": {"per_second": 1, "per_minute": 3}})
    for _ in range(3):
        rl.acquire("orders")
    assert clock.sleeps == [0.5, 1.0]
    with pytest.raises(RateLimited):
        rl.acquire("orders")  # now the minute really is full


def test_kinds_and_scopes_are_counted_apart(clock):
    store = MemoryStore(clock)
    limits = {"orders": {"per_second": 1, "per_minute": 10}, "requests": {"per_second": 2, "per_minute": 10}}
    a = limiter(clock, limits, store=store, scope="venue:a", max_wait=0.1)
    b = limiter(clock, limits, store=store, scope="venue:b", max_wait=0.1)
    a.acquire("orders")
    a.acquire("requests")
    a.acquire("requests")
    b.acquire("orders")
    with pytest.raises(RateLimited):
        a.acquire("orders")
    for _ in range(50):  # a kind without limits is not limited
        a.acquire("websocket")
    assert clock.sleeps == []


def _acquire_in_a_process(redis_url: str, prefix: str, scope: str, limits: dict, n: int, barrier: Any,
                          results: Any) -> None:
    seen: list[float] = []

    def clock() -> float:
        # acquire() returns right after reading the clock for the window it was admitted in.
        seen.append(time.time())
        return seen[-1]

    client = redis.Redis.from_url(redis_url)
    rl = RateLimiter(store=RedisStore(client, prefix=prefix), limits=limits, scope=scope, max_wait=10,
                     clock=clock)
    barrier.wait(timeout=60)  # generous: a loaded CI machine forks slowly
    admitted = []
    for _ in range(n):
        rl.acquire("orders")
        admitted.append(int(seen[-1]))
    results.put((os.getpid(), admitted))


def test_processes_sharing_redis_together_stay_within_the_per_second_limit(redis_prefix):
    ctx = multiprocessing.get_context("spawn")  # fork from a threaded test process can deadlock
    barrier, results = ctx.Barrier(2), ctx.Queue()
    limits = {"orders": {"per_second": 4, "per_minute": 1000}}
    scope = f"binance_futures:{uuid.uuid4().hex}"
    procs = [ctx.Process(target=_acquire_in_a_process,
                         args=(os.environ["REDIS_URL"], redis_prefix, scope, limits, 5, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]

    per_second = Counter(second for _, admitted in outcomes for second in admitted)
    assert sum(per_second.values()) == 10
    assert max(per_second.values()) <= 4, per_second
    assert len(per_second) >= 3  # ten calls at four a second need three seconds' windows
    assert len({pid for pid, _ in outcomes}) == 2
