"""ccxt's exceptions onto the exchange layer's own, with secret-free messages.

Which ccxt exception a venue's answer becomes is ccxt's decision (its ``exceptions``
tables, applied by each exchange's ``handle_errors``); here it is only translated into
our hierarchy and given a message rebuilt from the venue name, the endpoint path and the
venue's own code and text: never the URL (its query string carries the signature), never
the key or the secret.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import ccxt

from alpha_platform.common.secrets import MASK
from exchanges.adapters.errors import (
    AuthenticationError,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrderError,
    NetworkError,
    OperationalError,
    OrderNotFound,
    PermissionDenied,
    RateLimited,
    UnknownSymbol,
)

_URL = re.compile(r"https?://[^\s'\"]+")
_STATUS = re.compile(r"\s(\d{3})\s")
_SIGNATURE = re.compile(r"signature=[^&\s\"']*", re.I)

# Most specific first: ccxt's classes form a tree (RateLimitExceeded is a NetworkError...).
CCXT_TO_OURS: tuple[tuple[type, type[ExchangeError]], ...] = (
    (ccxt.RateLimitExceeded, RateLimited), (ccxt.DDoSProtection, RateLimited),
    (ccxt.RequestTimeout, NetworkError), (ccxt.ExchangeNotAvailable, ExchangeUnavailable),
    (ccxt.InvalidNonce, NetworkError), (ccxt.NetworkError, NetworkError),
    (ccxt.BadResponse, ExchangeUnavailable), (ccxt.OperationFailed, ExchangeUnavailable),
    (ccxt.PermissionDenied, PermissionDenied), (ccxt.AccountSuspended, PermissionDenied),
    (ccxt.AuthenticationError, AuthenticationError), (ccxt.InsufficientFunds, InsufficientFunds),
    (ccxt.BadSymbol, UnknownSymbol), (ccxt.OrderNotFound, OrderNotFound),
    (ccxt.InvalidOrder, InvalidOrderError), (ccxt.BadRequest, InvalidOrderError),
    (ccxt.OperationRejected, InvalidOrderError), (ccxt.NotSupported, OperationalError),
)

# The last answer's headers and path, per thread (a 429's Retry-After; where a failure was).
wire_state = threading.local()


def scrub(text: str, secrets: Iterable[str]) -> str:
    text = _SIGNATURE.sub("signature=" + MASK, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


def error_class(exc: ccxt.BaseError, code: str | None, status: int | None,
                refinements: Mapping[str, type[ExchangeError]]) -> type[ExchangeError]:
    """Our class for what ccxt raised. ``refinements`` only split one of ccxt's classes
    finer where ours is finer (a precision refusal is a BadPrecision, not just InvalidOrder)."""
    if code is not None and code in refinements:
        return refinements[code]
    for ccxt_cls, ours in CCXT_TO_OURS:
        if isinstance(exc, ccxt_cls):
            return ours
    if status is not None and status >= 500:
        return ExchangeUnavailable
    if code is not None and (status is None or 400 <= status < 500):
        return InvalidOrderError  # the venue answered and refused this request
    return ExchangeUnavailable


def map_error(exc: ccxt.BaseError, *, venue: str, op: str, secrets: Iterable[str],
              refinements: Mapping[str, type[ExchangeError]],
              code_keys: tuple[str, str] = ("code", "msg")) -> ExchangeError:
    raw = str(exc)
    url = _URL.search(raw)
    path = urlsplit(url.group(0)).path if url else getattr(wire_state, "path", "")
    status = None
    if url:
        found = _STATUS.match(raw[url.end():])
        status = int(found.group(1)) if found else None
    code, venue_msg = None, None
    start, end = raw.find("{"), raw.rfind("}")
    if 0 <= start < end:
        try:
            body = json.loads(raw[start:end + 1])
            code = None if body.get(code_keys[0]) is None else str(body.get(code_keys[0]))
            venue_msg = body.get(code_keys[1])
        except (ValueError, AttributeError):
            pass
    cls = error_class(exc, code, status, refinements)
    where = f" at {path}" if path else ""
    if venue_msg is not None:
        prefix = f"venue code {code}: " if code is not None else ""
        detail = f": {prefix}{scrub(str(venue_msg), secrets)[:200]}"
    elif status is not None:
        detail = f": HTTP {status}"
    else:
        detail = f": {type(exc).__name__}"
    message = f"{venue}: {op} failed{where}{detail}"
    if cls is RateLimited:
        headers = getattr(wire_state, "headers", None) or {}
        value = headers.get("Retry-After") or headers.get("retry-after")
        try:
            retry_after = float(value) if value is not None else None
        except ValueError:
            retry_after = None
        return RateLimited(message, venue=venue, code=code, retry_after=retry_after)
    return cls(message, venue=venue, code=code)
