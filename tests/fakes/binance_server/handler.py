"""The fake venue's HTTP side: a request handler that reads the query and body, applies a
scripted fault (before or after processing), authenticates signed paths and answers JSON."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.binance_server.spec import (
    PUBLIC_PATHS,
    ApiError,
)

if TYPE_CHECKING:
    from tests.fakes.binance_server.venue import FakeBinanceFutures


class _Handler(BaseHTTPRequestHandler):
    app: FakeBinanceFutures
    protocol_version = "HTTP/1.0"  # one request per connection: a dropped answer stays dropped
    server_version = "FakeBinance/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        app = self.app
        split = urlsplit(self.path)
        path, raw_query = split.path, split.query
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        signed = path not in PUBLIC_PATHS
        fault = app._take_fault(method, path)
        kind = fault.kind if fault else None

        if kind in ("timeout", "drop"):
            app._record(method, path, params, signed, kind, None)
            if kind == "timeout":
                time.sleep(fault.delay)
            self.close_connection = True
            return
        if kind in ("500", "502", "503"):
            app._record(method, path, params, signed, kind, int(kind))
            text = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}[kind]
            self._send(int(kind), f"<html><body><h1>{kind} {text}</h1></body></html>", "text/html")
            return
        if kind == "429":
            app._record(method, path, params, signed, kind, 429)
            body = json.dumps({"code": -1003, "msg": "Too many requests; current limit is 2400 requests "
                                                     "per minute. Please use the websocket for live "
                                                     "updates to avoid polling the API."})
            self._send(429, body, "application/json", {"Retry-After": str(fault.retry_after)})
            return
        if kind == "malformed_json":
            app._record(method, path, params, signed, kind, 200)
            self._send(200, '{"symbol":"BTCUSDT","markPrice":"650', "application/json")
            return

        status, payload = 200, None
        try:
            if signed:
                app._authenticate(self.headers, raw_query, raw_body, params,
                                  key_only=path == "/fapi/v1/listenKey")
            if kind == "accept_late":
                # Taken in (its timestamp checked on arrival), queued past the client's
                # timeout, then executed: nobody is left to read the answer.
                time.sleep(fault.delay)
            payload = app.dispatch(method, path, params)
        except ApiError as exc:
            status, payload = exc.status, {"code": exc.code, "msg": exc.msg}
        app._record(method, path, params, signed, kind, status)

        if kind in ("accept_then_drop", "accept_late"):
            self.close_connection = True
            return
        if kind == "accept_then_timeout":
            time.sleep(fault.delay)
            self.close_connection = True
            return
        if kind == "accept_then_500":
            self._send(500, "<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
            return
        self._send(status, json.dumps(payload), "application/json")

    def _send(self, status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
