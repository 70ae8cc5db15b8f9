"""exchanges/adapters/resilience.py: rate limits, the circuit breaker and the Guard.

No database. Time is a fake clock whose sleep advances it, except where real processes
share the embedded Redis (REDIS_URL, started by the root conftest).
"""

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
    AuthenticationError,
    CircuitOpenError,
    ExchangeUnavailable,
    InsufficientFunds,
    NetworkError,
    OrderNotFound,
    OrderStatusUnknown,
    RateLimited,
)
from exchanges.adapters.resilience import (
    AdapterRuntime,
    CircuitBreaker,
    Guard,
    MemoryStore,
    RateLimiter,
    RedisStore,
)
from tests.fakes.scripted import Script


class FakeClock:
    """time.time and time.sleep in one: sleeping advances the clock and is recorded."""

    def __init__(self, start: float = 1_000_000.25) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


@pytest.fixture
def redis_prefix():
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    client = _redis()
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def limiter(clock: FakeClock, limits: dict[str, dict[str, int]], *, store: Any = None, scope: str = "venue:acct",
            max_wait: float = 5.0) -> RateLimiter:
    return RateLimiter(store=store or MemoryStore(clock), limits=limits, scope=scope, max_wait=max_wait,
                       clock=clock, sleep=clock.sleep)


# --------------------------------------------------------------------------- stores
def test_redis_store_counts_with_a_ttl_set_once(redis_prefix):
    client = _redis()
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


# --------------------------------------------------------------------------- circuit breaker
def breaker(clock: FakeClock, *, store: Any = None, key: str = "venue:acct", changes: list | None = None,
            threshold: int = 3, cooldown: float = 60.0) -> CircuitBreaker:
    return CircuitBreaker(store=store or MemoryStore(clock), key=key, threshold=threshold, cooldown=cooldown,
                          clock=clock,
                          on_change=(lambda state, reason: changes.append(state)) if changes is not None else None)


def test_breaker_opens_after_threshold_consecutive_failures(clock):
    changes: list[str] = []
    cb = breaker(clock, changes=changes)
    cb.record_failure("NetworkError: timeout")
    cb.record_failure("NetworkError: timeout")
    assert cb.state() == "closed"
    cb.before_call()
    cb.record_failure("ExchangeUnavailable: 503")
    assert cb.state() == "open"
    assert cb.reason() == "ExchangeUnavailable: 503"
    assert changes == ["open"]
    with pytest.raises(CircuitOpenError) as caught:
        cb.before_call()
    assert caught.value.reopens_in == pytest.approx(60.0)
    assert "ExchangeUnavailable: 503" in caught.value.message


def test_a_success_resets_the_consecutive_count(clock):
    cb = breaker(clock)
    cb.record_failure("x")
    cb.record_failure("x")
    cb.record_success()
    cb.record_failure("x")
    cb.record_failure("x")
    assert cb.state() == "closed"


def test_half_open_after_cooldown_then_a_success_closes(clock):
    changes: list[str] = []
    cb = breaker(clock, changes=changes)
    for _ in range(3):
        cb.record_failure("x")
    clock.advance(59.9)
    assert cb.state() == "open"
    clock.advance(0.2)
    assert cb.state() == "half_open"
    cb.before_call()  # the probe may go
    cb.record_success()
    assert cb.state() == "closed"
    assert changes == ["open", "closed"]
    cb.before_call()


def test_a_failure_while_half_open_reopens_at_once(clock):
    changes: list[str] = []
    cb = breaker(clock, changes=changes, threshold=5)
    for _ in range(5):
        cb.record_failure("x")
    clock.advance(61)
    assert cb.state() == "half_open"
    cb.record_failure("still down")  # one failure suffices, not five
    assert cb.state() == "open"
    assert cb.reason() == "still down"
    assert changes == ["open", "open"]
    with pytest.raises(CircuitOpenError):
        cb.before_call()


def test_breaker_state_is_shared_through_redis(clock, redis_prefix):
    key = f"binance_futures:{uuid.uuid4().hex}"
    a = breaker(clock, store=RedisStore(_redis(), prefix=redis_prefix), key=key, threshold=3, cooldown=30)
    b = breaker(clock, store=RedisStore(_redis(), prefix=redis_prefix), key=key, threshold=3, cooldown=30)
    other = breaker(clock, store=RedisStore(_redis(), prefix=redis_prefix), key=key + "-other", threshold=3)

    a.record_failure("x")
    b.record_failure("x")
    assert a.state() == b.state() == "closed"
    a.record_failure("ExchangeUnavailable: 502")  # the third, counted across both
    assert b.state() == "open"
    assert b.reason() == "ExchangeUnavailable: 502"
    with pytest.raises(CircuitOpenError):
        b.before_call()
    other.before_call()  # another account's breaker is untouched
    assert other.state() == "closed"

    clock.advance(31)
    assert a.state() == b.state() == "half_open"
    b.before_call()
    b.record_success()
    assert a.state() == "closed"
    a.before_call()


def _open_in_a_process(redis_url: str, prefix: str, key: str, results: Any) -> None:
    cb = CircuitBreaker(store=RedisStore(redis.Redis.from_url(redis_url), prefix=prefix), key=key,
                        threshold=2, cooldown=120)
    cb.record_failure("NetworkError: timeout")
    cb.record_failure("ExchangeUnavailable: 503")
    results.put(cb.state())


def test_a_breaker_opened_in_another_process_refuses_calls_here(redis_prefix):
    """Breakers are shared across worker processes: one opened by another process (its
    own interpreter, its own Redis connection) is open here, with its reason."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    key = f"binance_futures:{uuid.uuid4().hex}"
    here = CircuitBreaker(store=RedisStore(_redis(), prefix=redis_prefix), key=key, threshold=2, cooldown=120)
    here.before_call()
    proc = ctx.Process(target=_open_in_a_process, args=(os.environ["REDIS_URL"], redis_prefix, key, results))
    proc.start()
    try:
        assert results.get(timeout=120) == "open"
    finally:
        proc.join(timeout=30)
    assert proc.exitcode == 0
    assert here.state() == "open"
    assert here.reason() == "ExchangeUnavailable: 503"
    with pytest.raises(CircuitOpenError) as caught:
        here.before_call()
    assert 0 < caught.value.reopens_in <= 120


# --------------------------------------------------------------------------- the Guard
VENUE_CONFIG = {
    "rate_limits": {"orders": {"per_second": 100, "per_minute": 1000},
                    "requests": {"per_second": 100, "per_minute": 1000}},
    "circuit_breaker": {"failure_threshold": 5, "cooldown_seconds": 60},
}


def guard(clock: FakeClock, *, config: dict | None = None, **runtime_kw: Any) -> Guard:
    runtime = AdapterRuntime(store=MemoryStore(clock), sleep=clock.sleep, clock=clock, **runtime_kw)
    return Guard(runtime, venue="binance_futures", account_ref="acct-1", venue_config=config or VENUE_CONFIG)


def test_runtime_builds_breaker_and_limiter_from_the_venue_config(clock):
    g = guard(clock, config={**VENUE_CONFIG, "circuit_breaker": {"failure_threshold": 2, "cooldown_seconds": 15}})
    assert (g.breaker.key, g.breaker.threshold, g.breaker.cooldown) == ("binance_futures:acct-1", 2, 15.0)
    assert g.limiter.scope == "binance_futures:acct-1"
    assert g.limiter.limits == VENUE_CONFIG["rate_limits"]


def test_read_returns_at_once_on_success(clock):
    g = guard(clock)
    fn = Script("balance")
    assert g.read(fn) == "balance"
    assert fn.calls == 1
    assert clock.sleeps == []


def test_read_retries_temporary_errors_with_exponential_backoff(clock):
    g = guard(clock)
    fn = Script(NetworkError("timeout"), ExchangeUnavailable("503"), "positions")
    assert g.read(fn) == "positions"
    assert fn.calls == 3
    assert clock.sleeps == [0.2, 0.4]
    assert g.breaker.state() == "closed"


def test_read_gives_up_after_read_retries(clock):
    g = guard(clock)
    last = NetworkError("still timing out")
    fn = Script(NetworkError("timeout"), NetworkError("timeout"), NetworkError("timeout"), last)
    with pytest.raises(NetworkError) as caught:
        g.read(fn)
    assert caught.value is last
    assert fn.calls == 4  # the first call and three retries
    assert clock.sleeps == [0.2, 0.4, 0.8]


def test_read_backoff_is_capped(clock):
    g = guard(clock, read_retries=4, backoff_base=1.0, backoff_max=3.0)
    with pytest.raises(ExchangeUnavailable):
        g.read(Script(ExchangeUnavailable("503")))
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0]


def test_read_honours_retry_after_up_to_the_cap(clock):
    g = guard(clock)
    fn = Script(RateLimited("429", retry_after=2.5), RateLimited("429", retry_after=30), "ok")
    assert g.read(fn) == "ok"
    assert clock.sleeps == [2.5, 5.0]


def test_read_does_not_retry_other_errors(clock):
    g = guard(clock, breaker_threshold=1)
    refused = Script(InsufficientFunds("margin"))
    with pytest.raises(InsufficientFunds):
        g.read(refused)
    assert refused.calls == 1
    assert g.breaker.state() == "closed"  # a refusal says nothing about the venue's health

    auth = Script(AuthenticationError("bad key"))
    with pytest.raises(AuthenticationError):
        g.read(auth)
    assert auth.calls == 1
    assert g.breaker.state() == "open"  # an operational error does count
    assert clock.sleeps == []


def test_read_stops_retrying_when_the_breaker_opens(clock):
    g = guard(clock, breaker_threshold=2)
    fn = Script(NetworkError("timeout"))
    with pytest.raises(CircuitOpenError):
        g.read(fn)
    assert fn.calls == 2  # the second failure opened it: the third attempt is refused
    assert clock.sleeps == [0.2, 0.4]


def test_submit_success_sends_once_and_never_looks_up(clock):
    g = guard(clock)
    send, lookup = Script("order-1"), Script("unused")
    assert g.submit(send, lookup) == "order-1"
    assert (send.calls, lookup.calls) == (1, 0)


def test_submit_lost_response_is_settled_by_a_lookup(clock):
    g = guard(clock)
    send, lookup = Script(NetworkError("read timeout")), Script("order-1 (found)")
    assert g.submit(send, lookup) == "order-1 (found)"
    assert (send.calls, lookup.calls) == (1, 1)
    assert clock.sleeps == [0.2]


def test_submit_lookup_retries_temporary_errors(clock):
    g = guard(clock)
    send = Script(ExchangeUnavailable("502"))
    lookup = Script(NetworkError("timeout"), "order-1 (found)")
    assert g.submit(send, lookup) == "order-1 (found)"
    assert (send.calls, lookup.calls) == (1, 2)
    assert clock.sleeps == [0.2, 0.4]


def test_submit_order_not_found_after_a_lost_answer_is_pending_confirmation(clock):
    # A venue may take the request after the client gave up, or list it late: "not found"
    # right after a lost answer proves nothing, so the fate stays unknown (never "not placed").
    g = guard(clock)
    original = NetworkError("connection reset")
    send, lookup = Script(original), Script(OrderNotFound("unknown order"))
    with pytest.raises(OrderStatusUnknown) as caught:
        g.submit(send, lookup)
    assert caught.value.__cause__ is original
    assert "pending confirmation" in caught.value.message
    assert (send.calls, lookup.calls) == (1, 3)


def test_submit_failing_lookups_end_in_order_status_unknown(clock):
    g = guard(clock)
    original = NetworkError("read timeout")
    send, lookup = Script(original), Script(ExchangeUnavailable("503"))
    with pytest.raises(OrderStatusUnknown) as caught:
        g.submit(send, lookup)
    assert caught.value.__cause__ is original
    assert caught.value.venue == "binance_futures"
    assert (send.calls, lookup.calls) == (1, 3)
    assert clock.sleeps == [0.2, 0.4, 0.8]


def test_submit_a_lookup_refused_for_credentials_is_still_unknown(clock):
    # The order may be live: it must be kept for reconciliation, not reported as an auth
    # failure that a caller would read as "not placed".
    g = guard(clock, lookup_attempts=2)
    send, lookup = Script(NetworkError("timeout")), Script(AuthenticationError("key revoked"))
    with pytest.raises(OrderStatusUnknown):
        g.submit(send, lookup)
    assert (send.calls, lookup.calls) == (1, 2)


def test_submit_invalid_order_is_raised_and_not_counted_by_the_breaker(clock):
    g = guard(clock, breaker_threshold=1)
    send, lookup = Script(InsufficientFunds("margin is insufficient")), Script("unused")
    with pytest.raises(InsufficientFunds):
        g.submit(send, lookup)
    assert (send.calls, lookup.calls) == (1, 0)
    assert g.breaker.state() == "closed"
    g.breaker.before_call()


def test_submit_rate_limited_send_is_not_looked_up(clock):
    g = guard(clock)
    send, lookup = Script(RateLimited("429", retry_after=1)), Script("unused")
    with pytest.raises(RateLimited):
        g.submit(send, lookup)
    assert (send.calls, lookup.calls) == (1, 0)
    assert clock.sleeps == []


def test_submit_refused_while_the_breaker_is_open(clock):
    g = guard(clock, breaker_threshold=1)
    with pytest.raises(OrderStatusUnknown):
        g.submit(Script(NetworkError("timeout")), Script(NetworkError("timeout")))
    assert g.breaker.state() == "open"
    send = Script("order-2")
    with pytest.raises(CircuitOpenError):
        g.submit(send, Script("unused"))
    assert send.calls == 0


def test_submit_waits_for_the_orders_rate_limit(clock):
    config = {**VENUE_CONFIG, "rate_limits": {"orders": {"per_second": 1, "per_minute": 100}}}
    g = guard(clock, config=config)
    g.submit(Script("a"), Script("unused"))
    g.submit(Script("b"), Script("unused"))
    assert clock.sleeps == [0.75]
