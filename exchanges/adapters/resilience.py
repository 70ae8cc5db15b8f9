"""Shared by every adapter: retries for reads, idempotent order submission, a circuit
breaker per account and rate limits per venue, with state that may live in Redis so it
holds across worker processes. Django-free.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
)

from exchanges.adapters.errors import (
    CircuitOpenError,
    ExchangeError,
    GuardUnavailable,
    NotProcessed,
    OperationalError,
    OrderNotFound,
    OrderStatusUnknown,
    RateLimited,
    TemporaryExchangeError,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


# --------------------------------------------------------------------------- state stores
class CounterStore(Protocol):
    """A tiny key-value store with expiring counters: in memory, or Redis."""

    def incr(self, key: str, ttl: float) -> int: ...
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: float | None = None) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        return value

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            current = self._live(key)
            if current is None:
                self._data[key] = ("1", self._clock() + ttl)
                return 1
            value = int(current) + 1
            self._data[key] = (str(value), self._data[key][1])
            return value

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._lock:
            self._data[key] = (value, None if ttl is None else self._clock() + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class StoreUnavailable(Exception):
    """The shared state store (Redis) could not be read or written."""


class RedisStore:
    """Counters shared by every process that talks to the same Redis. Whatever the client
    raises (connection refused, a frozen server's timeout, ...) becomes StoreUnavailable,
    so the Guard can tell "the guard state is unreadable" from the venue's own errors."""

    def __init__(self, client: Any, prefix: str = "alpha:x:") -> None:
        self._r = client
        self._p = prefix

    def incr(self, key: str, ttl: float) -> int:
        # SET NX PX then INCR in one MULTI: the TTL is set only by the first increment and
        # INCR keeps it. (PEXPIRE ... NX needs Redis 7; the embedded server is 6.2.)
        try:
            pipe = self._r.pipeline()
            pipe.set(self._p + key, 0, px=max(1, int(ttl * 1000)), nx=True)
            pipe.incr(self._p + key)
            _, value = pipe.execute()
        except Exception as exc:
            raise StoreUnavailable(f"guard state store: {type(exc).__name__}") from exc
        return int(value)

    def get(self, key: str) -> str | None:
        try:
            value = self._r.get(self._p + key)
        except Exception as exc:
            raise StoreUnavailable(f"guard state store: {type(exc).__name__}") from exc
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        try:
            if ttl is None:
                self._r.set(self._p + key, value)
            else:
                self._r.set(self._p + key, value, px=int(ttl * 1000))
        except Exception as exc:
            raise StoreUnavailable(f"guard state store: {type(exc).__name__}") from exc

    def delete(self, key: str) -> None:
        try:
            self._r.delete(self._p + key)
        except Exception as exc:
            raise StoreUnavailable(f"guard state store: {type(exc).__name__}") from exc


# --------------------------------------------------------------------------- rate limits
@dataclass
class RateLimiter:
    """Fixed one-second and one-minute windows per (scope, kind), shared via the store.

    ``acquire`` waits (up to ``max_wait``) for a slot; past that it raises RateLimited
    rather than letting a caller exceed the venue's limit.

    The one limiter on an adapter's calls (ccxt's own throttle is off, see ccxt/base.py).
    Kept rather than a library's because venues count in fixed windows on the clock
    (Binance's used weight resets each minute), which these windows follow; pyrate-limiter's
    Redis bucket is a sliding log (stricter than the venue: up to a minute's wait where the
    venue admits), `limits`' fixed window starts at its first hit, and both read the wall
    clock themselves, where this one takes the runtime's (tests run on a fake clock).
    """

    store: CounterStore
    limits: dict[str, dict[str, int]]  # {"orders": {"per_second": 10, "per_minute": 100}, ...}
    scope: str
    max_wait: float = 5.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def acquire(self, kind: str = "requests") -> None:
        limits = self.limits.get(kind) or {}
        deadline = self.clock() + self.max_wait
        while True:
            now = self.clock()
            wait = 0.0
            for window, seconds in (("per_second", 1), ("per_minute", 60)):
                limit = limits.get(window)
                if not limit:
                    continue
                bucket = int(now // seconds)
                count = self.store.incr(f"rl:{self.scope}:{kind}:{seconds}:{bucket}", ttl=seconds * 2)
                if count > limit:
                    wait = max(wait, (bucket + 1) * seconds - now)
                    # Refused: do not also spend a slot of the longer window, or waiting
                    # callers would use up the per-minute budget without any call being made.
                    break
            if wait == 0.0:
                return
            if self.clock() + wait > deadline:
                raise RateLimited(
                    f"{self.scope}: {kind} rate limit reached; next slot in {wait:.1f}s",
                    retry_after=wait,
                )
            self.sleep(min(wait, 1.0))


# --------------------------------------------------------------------------- circuit breaker
@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures, refuses calls for ``cooldown``
    seconds, then lets one probe through (half-open): success closes it. Its state is in
    the store: on Redis, one breaker per account key for every worker process.

    Not pybreaker: its Redis storage falls back to a default state (closed) when Redis
    fails, where the Guard must refuse to send (GuardUnavailable); it keeps no reason for
    the opening (shown to operators and in CircuitOpenError), reads the wall clock itself,
    and wraps the call, where the Guard counts only the venue's failures after mapping
    them (a refused order does not count) and records outside the call."""

    store: CounterStore
    key: str
    threshold: int = 5
    cooldown: float = 60.0
    clock: Callable[[], float] = time.time
    on_change: Callable[[str, str], None] | None = None  # (state, reason)

    def _k(self, part: str) -> str:
        return f"cb:{self.key}:{part}"

    def state(self) -> str:
        opened = self.store.get(self._k("open_until"))
        if opened is None:
            return "closed"
        return "open" if float(opened) > self.clock() else "half_open"

    def reason(self) -> str:
        return self.store.get(self._k("reason")) or ""

    def before_call(self) -> None:
        opened = self.store.get(self._k("open_until"))
        if opened is not None and float(opened) > self.clock():
            remaining = float(opened) - self.clock()
            raise CircuitOpenError(
                f"Circuit open for {self.key} after repeated failures ({self.reason()}); "
                f"retry in {remaining:.0f}s",
                reopens_in=remaining,
            )

    def record_success(self) -> None:
        was = self.state()
        self.store.delete(self._k("failures"))
        if was != "closed":
            self.store.delete(self._k("open_until"))
            if self.on_change:
                self.on_change("closed", "a call succeeded")

    def record_failure(self, reason: str) -> None:
        failures = self.store.incr(self._k("failures"), ttl=max(self.cooldown * 10, 600))
        half_open = self.state() == "half_open"
        if failures >= self.threshold or half_open:
            self.store.set(self._k("open_until"), str(self.clock() + self.cooldown),
                           ttl=self.cooldown * 20)
            self.store.set(self._k("reason"), reason[:300], ttl=self.cooldown * 20)
            self.store.delete(self._k("failures"))
            logger.warning("circuit %s opened: %s", self.key, reason[:300])
            if self.on_change:
                self.on_change("open", reason)


# --------------------------------------------------------------------------- the runtime
@dataclass
class AdapterRuntime:
    """Shared services handed to an adapter. Defaults are process-local (tests, scripts)."""

    store: CounterStore = field(default_factory=MemoryStore)
    read_retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    lookup_attempts: int = 3
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    breaker_threshold: int | None = None  # None: from the venue's config
    breaker_cooldown: float | None = None
    on_breaker_change: Callable[[str, str, str], None] | None = None  # (key, state, reason)
    cache: Any = None  # optional market-data cache: get(key) / set(key, value, ttl)
    paper_store: Any = None  # the paper venue's book (a PaperStore)
    extra: dict[str, Any] = field(default_factory=dict)

    def breaker(self, key: str, venue_config: dict[str, Any]) -> CircuitBreaker:
        cfg = venue_config.get("circuit_breaker") or {}
        return CircuitBreaker(
            store=self.store,
            key=key,
            threshold=self.breaker_threshold or int(cfg.get("failure_threshold", 5)),
            cooldown=self.breaker_cooldown if self.breaker_cooldown is not None
            else float(cfg.get("cooldown_seconds", 60)),
            clock=self.clock,
            on_change=(lambda state, reason: self.on_breaker_change(key, state, reason))
            if self.on_breaker_change else None,
        )

    def rate_limiter(self, scope: str, venue_config: dict[str, Any]) -> RateLimiter:
        return RateLimiter(store=self.store, limits=venue_config.get("rate_limits") or {},
                           scope=scope, clock=self.clock, sleep=self.sleep)


class Guard:
    """One account's breaker and limiter, and the two ways of calling a venue.

    What the guard's own state (breaker, limiter: Redis) does to a call:
    - unreadable BEFORE the request leaves: GuardUnavailable, and nothing was sent;
    - failing AFTER it left (recording success or failure): logged and swallowed, so that
      the platform's bookkeeping never turns an answer from the venue into an error.
    """

    def __init__(self, runtime: AdapterRuntime, *, venue: str, account_ref: str,
                 venue_config: dict[str, Any]) -> None:
        self.runtime = runtime
        self.venue = venue
        self.breaker = runtime.breaker(f"{venue}:{account_ref}", venue_config)
        # Rate limits are the venue's, per account key (venues count per key / address).
        self.limiter = runtime.rate_limiter(f"{venue}:{account_ref}", venue_config)

    def _before_send(self, kind: str) -> None:
        """The breaker and the limiter, before anything leaves. Raises CircuitOpenError or
        RateLimited (refused here), or GuardUnavailable (their state could not be read)."""
        try:
            self.breaker.before_call()
            self.limiter.acquire(kind)
        except StoreUnavailable as exc:
            logger.warning("%s: guard state unreadable (%s); nothing sent", self.venue, exc)
            raise GuardUnavailable(
                f"{self.venue}: the platform's guard state (circuit breaker, rate limits) could not be "
                "read; nothing was sent", venue=self.venue, code="guard_unavailable") from None

    def _after(self, fn: Callable[[], None]) -> None:
        """Bookkeeping after the venue answered (or did not): never raises."""
        try:
            fn()
        except Exception:
            logger.warning("%s: guard bookkeeping failed after a call; ignored", self.venue, exc_info=True)

    def _count(self, error: ExchangeError) -> None:
        # Only failures of the venue or the account count; a refused order does not.
        if isinstance(error, (TemporaryExchangeError, OperationalError)) and not isinstance(
            error, CircuitOpenError
        ):
            reason = f"{type(error).__name__}: {error.message}"[:300]
            self._after(lambda: self.breaker.record_failure(reason))

    def _success(self) -> None:
        self._after(self.breaker.record_success)

    def _backoff(self, attempt: int, error: BaseException | None) -> float:
        """Exponential from ``backoff_base`` (or the venue's Retry-After), capped at
        ``backoff_max``; ``attempt`` counts from 0."""
        if isinstance(error, RateLimited) and error.retry_after:
            return min(error.retry_after, self.runtime.backoff_max)
        return min(self.runtime.backoff_base * (2 ** attempt), self.runtime.backoff_max)

    def read(self, fn: Callable[[], T], *, kind: str = "requests") -> T:
        """A read: retried with exponential backoff on temporary errors of the venue. What the
        guard refuses before sending (breaker open, rate limit, its state unreadable) ends the
        retries at once: nothing left, and trying again would be refused the same way."""
        refused: list[ExchangeError] = []

        def attempt() -> T:
            try:
                self._before_send(kind)
            except ExchangeError as exc:
                refused.append(exc)
                raise
            try:
                result = fn()
            except ExchangeError as exc:
                self._count(exc)
                raise
            self._success()
            return result

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, TemporaryExchangeError) and not refused),
            stop=stop_after_attempt(self.runtime.read_retries + 1),
            wait=lambda state: self._backoff(state.attempt_number - 1, state.outcome.exception()
                                             if state.outcome else None),
            sleep=self.runtime.sleep,
            reraise=True,  # the last error as it is, not tenacity's RetryError
        )
        return retrying(attempt)

    def submit(self, send: Callable[[], T], lookup: Callable[[], T]) -> T:
        """Send an order once. If the answer is lost (timeout, 5xx, malformed reply), look
        the order up by client order id instead of sending it again.

        - found: its state is returned (the venue accepted it);
        - not found, or the look-ups fail: OrderStatusUnknown ("pending confirmation"). A
          venue may take a request after the client gave up on it, or list an order only
          some time after accepting it, so "not found" just after a lost answer proves
          nothing; reconciliation settles it over a window of look-ups.

        Only what is refused before the request leaves means "not sent": the breaker open
        (CircuitOpenError), the rate limiter (RateLimited), the guard's state unreadable
        (GuardUnavailable). An answer from the venue that refuses the order (an invalid
        order, HTTP 429) is raised as it is: the venue said it did not take it.
        """
        self._before_send("orders")
        try:
            result = send()
        except OrderNotFound as exc:
            # The send path looked the order up itself (the venue refused a duplicate client
            # order id: an order with it exists) and the look-up missed it (a lagging index).
            # The duplicate says it was placed: settle it like a lost answer.
            logger.warning("%s: order reported as a duplicate but not found; looking it up", self.venue)
            return self._settle(lookup, TemporaryExchangeError(exc.message, venue=self.venue, code=exc.code))
        except (RateLimited, NotProcessed) as exc:
            # The venue answered 429, or that it did not process the request: refused before
            # it was taken, nothing was placed.
            self._count(exc)
            raise
        except TemporaryExchangeError as exc:
            self._count(exc)
            logger.warning("%s: order answer lost (%s); looking it up by client order id",
                           self.venue, type(exc).__name__)
            return self._settle(lookup, exc)
        except ExchangeError as exc:
            self._count(exc)
            raise
        self._success()
        return result

    def _settle(self, lookup: Callable[[], T], error: TemporaryExchangeError) -> T:
        """The order was sent and its answer lost: find it, or say its fate is unknown.
        Never sends it again: only ``lookup`` is retried, ``lookup_attempts`` times, each
        after a back-off (the first too: the venue needs a moment to list it)."""
        not_found = 0

        def attempt() -> T:
            nonlocal not_found
            try:
                self.limiter.acquire("requests")
            except StoreUnavailable as exc:
                raise _LookupNotMade(str(exc)) from exc
            # RateLimited: a look-up not made is a look-up that failed: the fate stays unknown
            try:
                return lookup()
            except OrderNotFound:
                not_found += 1
                raise
            # Any failed look-up (network, auth, ...) leaves the order's fate unknown: it
            # must end as OrderStatusUnknown, never as an error that reads "not placed".

        self.runtime.sleep(self._backoff(0, error))  # before the first look-up too
        retrying = Retrying(
            retry=retry_if_exception_type((ExchangeError, _LookupNotMade)),
            stop=stop_after_attempt(self.runtime.lookup_attempts),
            # after look-up n (1-based), the back-off before look-up n + 1
            wait=lambda state: self._backoff(state.attempt_number, error),
            sleep=self.runtime.sleep,
        )
        try:
            found = retrying(attempt)
        except RetryError:
            pass
        else:
            self._success()
            return found
        seen = (f"the venue did not list it in {not_found} of {self.runtime.lookup_attempts} look-ups"
                if not_found else f"{self.runtime.lookup_attempts} look-ups failed")
        raise OrderStatusUnknown(
            f"{self.venue}: pending confirmation: the order was sent and its answer lost "
            f"({type(error).__name__}); {seen}; it will be settled by reconciliation",
            venue=self.venue, code="pending_confirmation",
        ) from error


class _LookupNotMade(Exception):
    """The limiter's state could not be read before a look-up: counted as a failed look-up."""

