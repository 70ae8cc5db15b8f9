"""Binance's request authentication, as the fake venue checks it: the API key header, the
HMAC-SHA256 signature over the query string followed by the body, the timestamp and
recvWindow."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tests.fakes.binance_server.spec import (
    ApiError,
    _now_ms,
)


class AuthMixin:
    """Checks a signed request against the venue's key and secret."""

    def _authenticate(self, headers: Any, raw_query: str, raw_body: str,
                      params: dict[str, str], key_only: bool = False) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise ApiError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.api_key):
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if key_only:  # USER_STREAM endpoints: the API key, no signature
            return
        # Binance signs totalParams: the query string followed by the body, minus signature.
        total = "&".join(part for part in (raw_query, raw_body) if part)
        pieces = [p for p in total.split("&") if p and not p.startswith("signature=")]
        sent = [p.split("=", 1)[1] for p in total.split("&") if p.startswith("signature=")]
        if len(sent) != 1:
            raise ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if "timestamp" not in params:
            raise ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self.api_secret.encode(), "&".join(pieces).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sent[0]):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        recv_window = int(params.get("recvWindow", "5000"))
        if recv_window > 60000:
            raise ApiError(400, -1130, "Data sent for parameter 'recvWindow' is not valid.")
        if abs(_now_ms() - int(params["timestamp"])) > recv_window:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
