"""The fake venue's HTTP plumbing: one POST body read, a scripted fault applied before or
after the venue acts on it (lost answers, late execution), the request recorded, the answer sent."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any


class TransportMixin:
    """Reads /info and /exchange requests, applies faults, answers."""

    # ------------------------------------------------------------------ HTTP plumbing
    def _take_fault(self, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if fault["kind"] in kinds and fault["remaining"] > 0:
                    fault["remaining"] -= 1
                    return dict(fault)
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0]
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send(handler, 422, "Failed to deserialize the JSON body into the target type")
            return
        if path == "/info":
            kind = str((body or {}).get("type"))
            kinds = (f"info:{kind}", "info")
        elif path == "/exchange":
            kind = str(((body or {}).get("action") or {}).get("type"))
            kinds = (kind, "exchange")
        else:
            self._send(handler, 404, "Not Found")
            return
        fault = self._take_fault(kinds)
        record = {"path": path, "kind": kind, "body": body, "fault": fault and fault["fault"],
                  "at": time.time()}
        with self._lock:
            self.requests.append(record)

        name = fault["fault"] if fault else None
        if name == "timeout":
            # No answer in time, and the venue never acted on it (``lost_timeout`` is the
            # variant where it did).
            self._stopping.wait(fault["delay"])
            handler.close_connection = True
            return
        if name == "http500":
            self._send(handler, 500, "Internal Server Error")
            return
        if name == "http429":
            self._send(handler, 429, "null")
            return
        if name == "late":
            # Queued past the client's timeout, then applied: nobody reads the answer.
            self._stopping.wait(fault["delay"])
            try:
                record["answer"] = self._info(body) if path == "/info" else self._exchange(body)
            finally:
                handler.close_connection = True
            return
        if name == "malformed":
            self._send(handler, 200, "<html><body>502 Bad Gateway</body></html>",
                       content_type="text/html")
            return

        try:
            answer = self._info(body) if path == "/info" else self._exchange(body)
        except Exception as exc:  # a fake's bug must show up, not hang the client
            self._send(handler, 500, f"fake server error: {type(exc).__name__}: {exc}")
            raise
        record["answer"] = answer

        if name == "lost":
            # The venue applied it; the answer never arrives.
            handler.close_connection = True
            try:
                handler.connection.shutdown(2)
            except OSError:
                pass
            return
        if name == "lost_500":
            self._send(handler, 500, "Internal Server Error")
            return
        if name == "lost_timeout":
            self._stopping.wait(fault["delay"])
        self._send(handler, 200, json.dumps(answer))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, text: str,
              content_type: str = "application/json") -> None:
        data = text.encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout)
            pass
