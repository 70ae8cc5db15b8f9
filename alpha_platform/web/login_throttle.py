"""One sign-in throttle for the three doors (the portal, the admin and ``POST /api/auth/token/``),
built on django-axes.

How it fits together:

* ``axes.backends.AxesStandaloneBackend`` comes first in AUTHENTICATION_BACKENDS, so every
  ``authenticate(request=..., ...)`` call is checked, whichever door it comes through. While a
  counter is locked, even the right password is refused (``authenticate`` returns None).
* ``LoginThrottleHandler`` (AXES_HANDLER) keeps the counts in the Django cache (Redis), so every
  web process shares them. One counter per entry of AXES_LOCKOUT_PARAMETERS, each with its own
  limit: (username, address) after LOGIN_THROTTLE_FAILURES, the username from any address after
  LOGIN_THROTTLE_USERNAME_FAILURES, the address for any usernames after
  LOGIN_THROTTLE_ADDRESS_FAILURES (a limit of 0 turns that counter off). A counter lives for the
  cool-off (LOGIN_THROTTLE_LOCKOUT_SECONDS) after the last failure it counted; a lockout ends
  that long after the failure that reached the limit (refused attempts do not extend it).
* An attempt is counted *before* the password is checked (the backend reserves it atomically),
  so a burst of parallel guesses gets no more than the limit checked; a success gives its
  reservation back and clears its (username, address) counter, not the address's or the
  username's (one good account must not reset a spray across many others).
* The client address (AXES_CLIENT_IP_CALLABLE): REMOTE_ADDR, unless TRUSTED_PROXY_COUNT says
  how many proxies in front of us append to X-Forwarded-For; then the entry that many places
  from the right (what our outermost proxy saw). Entries further left are the client's own
  words and are never used.
* Usernames are compared stripped and case-folded, and only their digests reach the cache.

Each door answers a lockout itself, with the wait in minutes (the forms) or a 429 with
Retry-After (the API); the answer is the same whether or not the username exists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.cache import AxesCacheHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cache_timeout, get_client_ip_address, get_client_username, get_lockout_parameters
from axes.signals import user_locked_out
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

KEY_PREFIX = "login-throttle"

# Each lockout parameter (as a sorted tuple) -> (counter name, limit setting, default limit).
COUNTERS: dict[tuple[str, ...], tuple[str, str, int]] = {
    ("ip_address", "username"): ("pair", "LOGIN_THROTTLE_FAILURES", 5),
    ("username",): ("user", "LOGIN_THROTTLE_USERNAME_FAILURES", 30),
    ("ip_address",): ("addr", "LOGIN_THROTTLE_ADDRESS_FAILURES", 50),
}


# --------------------------------------------------------------------------- who is asking
def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = N > 0 the N-th
    X-Forwarded-For entry from the right (fewer entries: the left-most, all of them ours).
    Same rule as DRF's NUM_PROXIES, which settings set to the same number."""
    meta = getattr(request, "META", None) or {}
    remote = (meta.get("REMOTE_ADDR") or "").strip()
    count = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    address = remote
    if count > 0:
        entries = [e.strip() for e in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if e.strip()]
        if entries:
            address = entries[-min(count, len(entries))]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        # Not an address (a proxy that writes something else): count the peer instead.
        try:
            return str(ipaddress.ip_address(remote))
        except ValueError:
            return "unknown"


def normalise_username(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().casefold()
    return value or None


def username_from(request, credentials: dict | None) -> str | None:
    """AXES_USERNAME_CALLABLE: the username typed (credentials first, then the POST body)."""
    field = str(settings.AXES_USERNAME_FORM_FIELD)
    if credentials and field in credentials:
        return normalise_username(credentials.get(field))
    data = getattr(request, "data", None)
    if data is None:
        data = getattr(request, "POST", {}) or {}
    try:
        return normalise_username(data.get(field))
    except AttributeError:  # a JSON body that is not an object
        return None


def cool_off(request=None) -> timedelta:
    """AXES_COOLOFF_TIME (a callable so a test's override of the seconds is seen)."""
    return timedelta(seconds=max(1, int(getattr(settings, "LOGIN_THROTTLE_LOCKOUT_SECONDS", 15 * 60))))


# --------------------------------------------------------------------------- the counters
def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:32]


def _limit(setting: str, default: int) -> int:
    return max(0, int(getattr(settings, setting, default)))


def counters(request, credentials: dict | None = None) -> list[tuple[str, int]]:
    """(cache key, limit) of every counter this attempt belongs to."""
    AxesProxyHandler.update_request(request)
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request) or "unknown"
    user_part, addr_part = (_digest("u", username) if username else None), _digest("a", address)
    found = []
    for parameter in get_lockout_parameters(request, credentials):
        names = tuple(sorted([parameter] if isinstance(parameter, str) else parameter))
        if names not in COUNTERS:
            raise ImproperlyConfigured(f"AXES_LOCKOUT_PARAMETERS entry {parameter!r} has no limit here; "
                                       f"use {[list(k) for k in COUNTERS]}")
        name, setting, default = COUNTERS[names]
        limit = _limit(setting, default)
        if not limit or ("username" in names and user_part is None):
            continue
        key = {"pair": f"{KEY_PREFIX}:pair:{user_part}:{addr_part}", "user": f"{KEY_PREFIX}:user:{user_part}",
               "addr": f"{KEY_PREFIX}:addr:{addr_part}"}[name]
        found.append((key, limit))
    return found


class LoginThrottleHandler(AxesCacheHandler):
    """AXES_HANDLER: axes' cache handler with one limit per lockout parameter, attempts
    counted before the password check, and a success clearing only its pair's counter."""

    def _count(self, key: str) -> int:
        return int(self.cache.get(key, default=0) or 0)

    def get_failures(self, request, credentials: dict | None = None) -> int:
        return max((self._count(key) for key, _ in counters(request, credentials)), default=0)

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        if not settings.AXES_LOCK_OUT_AT_FAILURE:
            return False
        return any(self._count(key) >= limit for key, limit in counters(request, credentials))

    def seconds_locked(self, request, credentials: dict | None = None) -> int:
        """Seconds until every counter this attempt belongs to is below its limit (0: not locked)."""
        waits = [self._ttl(key) for key, limit in counters(request, credentials) if self._count(key) >= limit]
        return max(waits, default=0)

    def _ttl(self, key: str) -> int:
        full = int(cool_off().total_seconds())
        ttl = getattr(self.cache, "ttl", None)  # django-redis
        left = ttl(key) if ttl else None
        return max(1, int(left)) if isinstance(left, int) and left > 0 else full

    def reserve(self, request, credentials: dict | None) -> bool:
        """Count this attempt now (before its password is checked). False if that takes a
        counter past its limit: the attempt is refused, the counter stays as it was."""
        timeout = get_cache_timeout(request)
        taken, over = [], False
        for key, limit in counters(request, credentials):
            if self.cache.add(key, 1, timeout=timeout):
                count = 1
            else:
                try:
                    count = self.cache.incr(key)
                except ValueError:  # expired between add and incr
                    self.cache.set(key, 1, timeout=timeout)
                    count = 1
                self.cache.touch(key, timeout=timeout)
            taken.append(key)
            over = over or count > limit
        if over:
            self._give_back(taken)
            return False
        request.login_throttle_reserved = True
        return True

    def _give_back(self, keys) -> None:
        for key in keys:
            try:
                self.cache.decr(key)
            except ValueError:  # already expired: nothing to give back
                pass

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            log.error("AXES: LoginThrottleHandler.user_login_failed needs the request")
            return
        username = get_client_username(request, credentials)
        if request.axes_locked_out or not getattr(request, "login_throttle_reserved", False):
            # Refused while locked (not counted: refusals do not extend a lockout), or an
            # authenticate() that bypassed the backend's reservation: count it now.
            if not request.axes_locked_out and not self.is_whitelisted(request, credentials):
                self.reserve(request, credentials)
        request.login_throttle_reserved = False
        if self.is_locked(request, credentials):
            log.warning("AXES: sign-in locked out for %s (path %s)", request.axes_ip_address,
                        request.axes_path_info)
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send("axes", request=request, username=username, ip_address=request.axes_ip_address)

    def user_logged_in(self, sender, request, user, **kwargs):
        credentials = {str(settings.AXES_USERNAME_FORM_FIELD): user.get_username()}
        self.login_succeeded(request, credentials)

    def login_succeeded(self, request, credentials: dict) -> None:
        """A right password: its reservation is given back and its pair's counter cleared."""
        if not getattr(request, "login_throttle_reserved", False):
            return
        request.login_throttle_reserved = False
        for key, _ in counters(request, credentials):
            if key.startswith(f"{KEY_PREFIX}:pair:") and settings.AXES_RESET_ON_SUCCESS:
                self.cache.delete(key)
            else:
                self._give_back([key])

    def reset_attempts(self, *, ip_address: str | None = None, username: str | None = None,
                       ip_or_username: bool = False) -> int:
        """For axes' reset commands (axes_reset_ip, axes_reset_username, axes_reset)."""
        delete_pattern = getattr(self.cache, "delete_pattern", None)
        user_part = _digest("u", normalise_username(username)) if normalise_username(username) else None
        addr_part = _digest("a", ip_address) if ip_address else None
        if user_part is None and addr_part is None:
            if delete_pattern is None:
                raise NotImplementedError("Cannot clear all entries from this cache")
            return int(delete_pattern(f"{KEY_PREFIX}:*") or 0)
        count = 0
        if user_part:
            count += int(bool(self.cache.delete(f"{KEY_PREFIX}:user:{user_part}")))
        if addr_part:
            count += int(bool(self.cache.delete(f"{KEY_PREFIX}:addr:{addr_part}")))
        if user_part and addr_part and not ip_or_username:
            count += int(bool(self.cache.delete(f"{KEY_PREFIX}:pair:{user_part}:{addr_part}")))
        elif delete_pattern is not None:
            if user_part:
                count += int(delete_pattern(f"{KEY_PREFIX}:pair:{user_part}:*") or 0)
            if addr_part:
                count += int(delete_pattern(f"{KEY_PREFIX}:pair:*:{addr_part}") or 0)
        return count


class LoginThrottleBackend(AxesStandaloneBackend):
    """First in AUTHENTICATION_BACKENDS: refuses while locked (axes), and reserves the
    attempt before the backends after it check the password."""

    def authenticate(self, request, username: str | None = None, password: str | None = None, **kwargs):
        super().authenticate(request, username=username, password=password, **kwargs)
        if not settings.AXES_ENABLED:
            return None
        credentials = {str(settings.AXES_USERNAME_FORM_FIELD): username}
        handler = AxesProxyHandler.get_implementation()
        if handler.is_whitelisted(request, credentials) or not isinstance(handler, LoginThrottleHandler):
            return None
        if not handler.reserve(request, credentials):
            request.axes_locked_out = True
            raise AxesBackendPermissionDenied("Locked out: too many failed sign-in attempts")
        return None


# --------------------------------------------------------------------------- what the doors say
def _handler() -> LoginThrottleHandler | None:
    handler = AxesProxyHandler.get_implementation()
    return handler if isinstance(handler, LoginThrottleHandler) else None


def seconds_locked(request, username: str | None) -> int:
    """Seconds before ``username`` may try again from this request's address (0: may now)."""
    handler = _handler()
    if handler is None or not settings.AXES_ENABLED:
        return 0
    return handler.seconds_locked(request, {str(settings.AXES_USERNAME_FORM_FIELD): username})


def login_succeeded(request, username: str) -> None:
    """For doors that do not call ``login()`` (the API token): what a sign-in does to the counts."""
    handler = _handler()
    if handler is not None and settings.AXES_ENABLED:
        handler.login_succeeded(request, {str(settings.AXES_USERNAME_FORM_FIELD): username})


def message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-in attempts. For your security, signing in is blocked for "
            f"{minutes} minute{'s' if minutes != 1 else ''}; try again later.")
