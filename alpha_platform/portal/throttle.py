"""Sign-in throttling: repeated failures for one username from one address lock that
pair out for a while; a much larger number from one address locks the address (against
guessing across many usernames).

State lives in the Django cache (Redis), so every web process sees the same counts. The
window is fixed from the first failure; the lockout starts at the failure that reaches the
limit. While locked, even the right password is refused: that is the point.

The client address is REMOTE_ADDR only: a forwarded-for header can be forged by anyone,
so it is not trusted here (behind a proxy every client shares the proxy's address, and the
per-username limit still holds).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Limits:
    failures: int  # per username + address
    address_failures: int  # per address, any username
    window_seconds: int
    lockout_seconds: int


def limits() -> Limits:
    return Limits(
        failures=getattr(settings, "LOGIN_THROTTLE_FAILURES", 5),
        address_failures=getattr(settings, "LOGIN_THROTTLE_ADDRESS_FAILURES", 50),
        window_seconds=getattr(settings, "LOGIN_THROTTLE_WINDOW_SECONDS", 15 * 60),
        lockout_seconds=getattr(settings, "LOGIN_THROTTLE_LOCKOUT_SECONDS", 15 * 60),
    )


def client_address(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _digest(*parts: str) -> str:
    # Usernames are hashed so the cache never holds what someone typed into the form.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"login-throttle:pair:{_digest(username.strip().lower(), address)}", f"login-throttle:addr:{_digest(address)}"


def _locked_until(key: str) -> float:
    return float(cache.get(f"{key}:lock") or 0)


def blocked_for(username: str, address: str) -> int:
    """Seconds until this username may try again from this address (0: not blocked)."""
    now = time.time()
    until = max(_locked_until(key) for key in _keys(username, address))
    return max(0, math.ceil(until - now))


def _count(key: str, limit: int, lim: Limits) -> None:
    cache.add(f"{key}:n", 0, timeout=lim.window_seconds)
    try:
        n = cache.incr(f"{key}:n")
    except ValueError:  # expired between add and incr
        cache.set(f"{key}:n", 1, timeout=lim.window_seconds)
        n = 1
    if n >= limit:
        cache.set(f"{key}:lock", time.time() + lim.lockout_seconds, timeout=lim.lockout_seconds)
        cache.delete(f"{key}:n")


def record_failure(username: str, address: str) -> None:
    lim = limits()
    pair, addr = _keys(username, address)
    _count(pair, lim.failures, lim)
    _count(addr, lim.address_failures, lim)


def record_success(username: str, address: str) -> None:
    """A good sign-in clears the pair's count (not the address's: one good account must
    not reset a spray across many others)."""
    pair, _ = _keys(username, address)
    cache.delete(f"{pair}:n")


def message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-in attempts. For your security, signing in is blocked for "
            f"{minutes} minute{'s' if minutes != 1 else ''}; try again later.")
