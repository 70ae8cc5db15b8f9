"""The circuit breaker: opening, half-open, closing, and its state shared through Redis (also
with another process)."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from typing import Any

import pytest
import redis

from exchanges.adapters.errors import (
    CircuitOpenError,
)
from exchanges.adapters.resilience import (
    CircuitBreaker,
    RedisStore,
)
from tests.exchanges.resilience.support import (
    breaker,
    redis_client,
)


# --------------------------------------------------------------------------- circuit breaker
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
    a = breaker(clock, store=RedisStore(redis_client(), prefix=redis_prefix), key=key, threshold=3, cooldown=30)
    b = breaker(clock, store=RedisStore(redis_client(), prefix=redis_prefix), key=key, threshold=3, cooldown=30)
    other = breaker(clock, store=RedisStore(redis_client(), prefix=redis_prefix), key=key + "-other", threshold=3)

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
    here = CircuitBreaker(store=RedisStore(redis_client(), prefix=redis_prefix), key=key, threshold=2, cooldown=120)
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
