"""The ccxt side of the ccxt adapters: the checked ccxt class, value helpers, the shared
markets entry. Django-free."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt

from alpha_platform.common.money import to_decimal
from exchanges.adapters.base import OrderStatus
from exchanges.adapters.ccxt.errors import wire_state
from exchanges.adapters.errors import OperationalError

# ccxt logs request headers (the API key) and signed URLs at DEBUG: keep that logger above it.
_wire_logger = logging.getLogger("exchanges.adapters.ccxt.wire")
_wire_logger.setLevel(logging.INFO)


# --------------------------------------------------------------------------- ccxt class
class _ResponseChecks:
    """Mixed into the ccxt class.

    - A 2xx body that is not JSON is a BadResponse (ccxt would hand the text to its parsers).
    - The last answer's headers and path are kept per thread (a 429's Retry-After).
    - ccxt chooses an exchange's per-market error table by the *production* host name in
      the request URL (binance's ``get_exceptions_by_url`` matches ``https://fapi.binance.com/``
      and its demo/testnet hosts): against any other configured URL (a testnet mirror, a
      local fake, a proxy) only the common table would apply. ``alpha_exception_urls``
      (configured prefix -> market type) makes the same tables apply to the URLs we use.
    """

    alpha_exception_urls: dict[str, str] = {}

    def on_rest_response(self, code, reason, url, method, response_headers, response_body,
                         request_headers, request_body):
        body = super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)
        wire_state.headers = dict(response_headers or {})
        wire_state.path = urlsplit(url).path
        if 200 <= int(code) < 300 and body:
            try:
                json.loads(body)
            except ValueError:
                raise ccxt.BadResponse(f"{self.id} {method} {url} malformed JSON in the response") from None
        return body

    def get_exceptions_by_url(self, url, exactOrBroad):  # noqa: N803 - ccxt's signature
        inherited = getattr(super(), "get_exceptions_by_url", None)
        found = inherited(url, exactOrBroad) if inherited else {}
        if found or not url:
            return found
        for prefix, market_type in self.alpha_exception_urls.items():
            if url.startswith(prefix):
                return (self.exceptions.get(market_type) or {}).get(exactOrBroad) or {}
        return {}


_classes: dict[str, type] = {}
_classes_lock = threading.Lock()


def _exchange_class(ccxt_id: str) -> type:
    with _classes_lock:
        cls = _classes.get(ccxt_id)
        if cls is None:
            base = getattr(ccxt, ccxt_id, None)
            if not isinstance(base, type):
                raise OperationalError(f"ccxt has no exchange {ccxt_id!r}")
            cls = _classes[ccxt_id] = type(f"Checked_{ccxt_id}", (_ResponseChecks, base), {})
        return cls


# --------------------------------------------------------------------------- helpers
def dec(value: Any) -> Decimal | None:
    """A venue value as Decimal: raw strings as they are, ccxt numbers through str()."""
    return None if isinstance(value, bool) else to_decimal(value, default=None, nonfinite=None)


def nz(value: Any) -> Decimal | None:
    number = dec(value)
    return None if number is None or number == 0 else number


def first(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if mapping and mapping.get(key) not in (None, ""):
            return mapping[key]
    return None


@dataclass(frozen=True)
class _Markets:
    attrs: dict[str, Any]
    loaded_at: float


UNIFIED_STATUS: dict[str, OrderStatus] = {
    "open": OrderStatus.NEW, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
}
