"""The Guard: reads retried with backoff, an order sent once and its lost answer settled by
look-ups, refusals before sending."""

from __future__ import annotations

import pytest

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
from tests.exchanges.resilience.support import (
    VENUE_CONFIG,
    guard,
)
from tests.fakes.scripted import Script


# --------------------------------------------------------------------------- the Guard
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
