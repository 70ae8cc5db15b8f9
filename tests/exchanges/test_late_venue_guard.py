"""Guard.submit decides an order's fate on evidence only (issue 12, fault 3 and 5).

- Whatever fails before the request leaves (the breaker's or the limiter's Redis state
  unreadable) is GuardUnavailable: nothing was sent.
- The guard's bookkeeping after sending (record_success / record_failure, and the breaker's
  on_change callback that writes to the database) never turns a placed order into an error.

No database. A real redis client against a port where nothing listens plays "Redis down".
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exchanges.adapters.errors import (
    ExchangeUnavailable,
    GuardUnavailable,
    NetworkError,
    NotProcessed,
    OrderNotFound,
    OrderStatusUnknown,
)
from exchanges.adapters.resilience import (
    AdapterRuntime,
    Guard,
    MemoryStore,
    RedisStore,
    StoreUnavailable,
)
from tests.fakes.scripted import Script

VENUE_CONFIG = {
    "rate_limits": {"orders": {"per_second": 100, "per_minute": 1000},
                    "requests": {"per_second": 100, "per_minute": 1000}},
    "circuit_breaker": {"failure_threshold": 5, "cooldown_seconds": 60},
}


class FlakyStore(MemoryStore):
    """A MemoryStore whose named operations fail the way a RedisStore does when Redis is down."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)

    def _maybe(self, op: str) -> None:
        if op in self.failing:
            raise StoreUnavailable(f"guard state store: ConnectionError ({op})")

    def incr(self, key: str, ttl: float) -> int:
        self._maybe("incr")
        return super().incr(key, ttl)

    def get(self, key: str) -> str | None:
        self._maybe("get")
        return super().get(key)

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._maybe("set")
        super().set(key, value, ttl)

    def delete(self, key: str) -> None:
        self._maybe("delete")
        super().delete(key)


def guard(store: Any, **runtime_kw: Any) -> Guard:
    runtime = AdapterRuntime(store=store, sleep=lambda s: None, **runtime_kw)
    return Guard(runtime, venue="binance_futures", account_ref="acct-1", venue_config=VENUE_CONFIG)


def dead_redis() -> redis.Redis:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.2, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))


def test_redis_down_before_sending_is_guard_unavailable_and_nothing_is_sent():
    g = guard(RedisStore(dead_redis()))
    send = Script("order-1")
    with pytest.raises(GuardUnavailable) as caught:
        g.submit(send, Script("unused"))
    assert send.calls == 0
    assert "nothing was sent" in caught.value.message
    with pytest.raises(GuardUnavailable):
        g.read(Script("balance"))


@pytest.mark.parametrize("failing", ["get", "incr"])  # the breaker's read, the limiter's counter
def test_each_pre_send_store_failure_is_guard_unavailable(failing):
    send = Script("order-1")
    with pytest.raises(GuardUnavailable):
        guard(FlakyStore(failing)).submit(send, Script("unused"))
    assert send.calls == 0


def test_bookkeeping_failing_after_a_placed_order_does_not_turn_it_into_an_error():
    g = guard(FlakyStore("delete", "set"))  # record_success deletes the failure count
    send = Script("order-1 (placed)")
    assert g.submit(send, Script("unused")) == "order-1 (placed)"
    assert g.read(Script("balance")) == "balance"


def test_a_breaker_callback_that_fails_after_sending_is_swallowed():
    def on_change(key: str, state: str, reason: str) -> None:
        raise RuntimeError("database is down")

    runtime = AdapterRuntime(store=MemoryStore(), sleep=lambda s: None, breaker_threshold=1,
                             on_breaker_change=on_change)
    g = Guard(runtime, venue="binance_futures", account_ref="acct-1", venue_config=VENUE_CONFIG)
    # The lost answer opens the breaker (threshold 1) and its callback fails: the look-up
    # still runs and finds the order.
    send, lookup = Script(NetworkError("read timeout")), Script("order-1 (found)")
    assert g.submit(send, lookup) == "order-1 (found)"
    assert (send.calls, lookup.calls) == (1, 1)


def test_redis_failing_while_the_order_is_in_flight_leaves_it_pending_confirmation():
    store = FlakyStore()

    def send() -> str:
        store.failing.add("incr")  # Redis goes away while the request is out
        raise NetworkError("read timeout")

    lookup = Script("order-1 (found)")
    # The breaker's failure count fails (swallowed) and the look-ups cannot be paced by the
    # limiter: skipped, so the fate is unknown; never "not placed", never a raw Redis error.
    with pytest.raises(OrderStatusUnknown):
        guard(store).submit(send, lookup)
    assert lookup.calls == 0


def test_only_not_found_look_ups_still_leave_the_fate_unknown():
    g = guard(MemoryStore(), lookup_attempts=4)
    lookup = Script(OrderNotFound("unknown order"))
    with pytest.raises(OrderStatusUnknown) as caught:
        g.submit(Script(NetworkError("read timeout")), lookup)
    assert lookup.calls == 4
    assert caught.value.code == "pending_confirmation"
    assert "did not list it in 4 of 4" in caught.value.message


def test_a_duplicate_whose_own_look_up_missed_it_is_settled_not_raised():
    # An adapter's send() meets "duplicate client order id" (an order with it exists) and
    # its look-up misses it: OrderNotFound out of send() is no proof that nothing was placed.
    g = guard(MemoryStore())
    send = Script(OrderNotFound("duplicate, then not found"))
    lookup = Script(OrderNotFound("still indexing"), "order-1 (found)")
    assert g.submit(send, lookup) == "order-1 (found)"
    assert (send.calls, lookup.calls) == (1, 2)


def test_a_venue_that_says_it_did_not_process_the_order_is_not_looked_up():
    """NotProcessed (the paper venue's outage) is an answer, not a lost one: no look-ups,
    raised as it is, so order_submit records "not sent"; a bare 5xx is looked up instead."""
    lookup = Script(OrderNotFound("unknown order"))
    with pytest.raises(NotProcessed):
        guard(MemoryStore()).submit(Script(NotProcessed("down for maintenance")), lookup)
    assert lookup.calls == 0
    with pytest.raises(OrderStatusUnknown):
        guard(MemoryStore()).submit(Script(ExchangeUnavailable("503")), lookup)
    assert lookup.calls == 3
