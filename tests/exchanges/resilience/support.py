"""Shared pieces of the resilience tests: a fake clock and builders of limiters, breakers and
Guards over an in-memory or Redis store."""

from __future__ import annotations

import os
from typing import Any

import redis

from exchanges.adapters.resilience import (
    AdapterRuntime,
    CircuitBreaker,
    Guard,
    MemoryStore,
    RateLimiter,
)


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


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def limiter(clock: FakeClock, limits: dict[str, dict[str, int]], *, store: Any = None, scope: str = "venue:acct",
            max_wait: float = 5.0) -> RateLimiter:
    return RateLimiter(store=store or MemoryStore(clock), limits=limits, scope=scope, max_wait=max_wait,
                       clock=clock, sleep=clock.sleep)


def breaker(clock: FakeClock, *, store: Any = None, key: str = "venue:acct", changes: list | None = None,
            threshold: int = 3, cooldown: float = 60.0) -> CircuitBreaker:
    return CircuitBreaker(store=store or MemoryStore(clock), key=key, threshold=threshold, cooldown=cooldown,
                          clock=clock,
                          on_change=(lambda state, reason: changes.append(state)) if changes is not None else None)


VENUE_CONFIG = {
    "rate_limits": {"orders": {"per_second": 100, "per_minute": 1000},
                    "requests": {"per_second": 100, "per_minute": 1000}},
    "circuit_breaker": {"failure_threshold": 5, "cooldown_seconds": 60},
}


def guard(clock: FakeClock, *, config: dict | None = None, **runtime_kw: Any) -> Guard:
    runtime = AdapterRuntime(store=MemoryStore(clock), sleep=clock.sleep, clock=clock, **runtime_kw)
    return Guard(runtime, venue="binance_futures", account_ref="acct-1", venue_config=config or VENUE_CONFIG)
