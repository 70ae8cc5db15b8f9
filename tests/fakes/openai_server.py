"""A local fake OpenAI-compatible server that the real ``openai`` client talks to.

Stdlib only (``ThreadingHTTPServer`` on 127.0.0.1, port 0). It implements
``POST /v1/chat/completions`` (and ``/chat/completions``), checks the bearer key,
answers from a per-test script and records every request::

    with FakeOpenAIServer(api_key="sk-test") as server:
        server.script(
            server.tool_calls(("open_long", {...})),   # a reply with tool calls
            server.error(429, retry_after_ms=10),      # rate limited (the client retries)
            server.reply("done"),                      # a plain reply, no tool call
        )
        client = OpenAIChatClient("sk-test", server.url + "/v1", "gpt-4o-mini", 2.0, 1)
        ...
        server.requests[0].messages  /  .tools  /  .body

Script items are consumed one per request, in order. ``forever(item)`` repeats an item
for every request that follows; when the script is empty the server answers 500
"script exhausted" so a test that sends more than it expected fails loudly.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class Scripted:
    status: int = 200
    body: dict[str, Any] | None = None  # a chat completion, or an error object
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the client timeout: a timeout)
    repeat: bool = False  # stays at the head of the script
    usage: dict[str, Any] | None | bool = True  # True: computed; None/False: omitted; dict: as given
    raw_text: str | None = None  # sent verbatim as the body (e.g. JSON with NaN literals)
    trickle: float = 0.0  # seconds between 64-byte pieces of the body (headers at once)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]
    authorized: bool
    status: int = 0

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools", [])

    @property
    def raw_text(self) -> str:
        return json.dumps(self.body)


def _estimate(text: str) -> int:
    return max(1, len(text) // 4)


USER_KEY = "sk-user-own-key-0123456789abcdef"  # the key tests give agents and users


class FakeOpenAIServer:
    def __init__(self, api_key: str = "sk-fake-test-key", model: str = "gpt-4o-mini") -> None:
        self.api_key = api_key
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One buffered write per response and no Nagle: otherwise every answer waits
            # ~40 ms on delayed ACKs, which adds up over a suite.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                server._send(self, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a scripted delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting
    def script(self, *items: Scripted) -> FakeOpenAIServer:
        with self._lock:
            self._script.extend(items)
        return self

    @staticmethod
    def forever(item: Scripted) -> Scripted:
        item.repeat = True
        return item

    def completion(self, *, content: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
                   usage: dict[str, int] | None | bool = True, delay: float = 0.0) -> Scripted:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        body = {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
        }
        return Scripted(body=body, usage=usage, delay=delay)

    def reply(self, text: str = "Nothing to do.", **kw: Any) -> Scripted:
        return self.completion(content=text, **kw)

    def tool_calls(self, *calls: tuple[str, Any], content: str | None = None, **kw: Any) -> Scripted:
        """Each call is (name, arguments): a dict is JSON-encoded, a str is sent verbatim."""
        items = []
        for name, arguments in calls:
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            items.append({"id": f"call_{next(self._ids)}", "type": "function",
                          "function": {"name": name, "arguments": text}})
        return self.completion(content=content, tool_calls=items, **kw)

    def custom_tool_call(self, name: str, text: str, *, content: str | None = None, **kw: Any) -> Scripted:
        """A tool call of type ``custom`` (free-form input) naming a function tool."""
        item = {"id": f"call_{next(self._ids)}", "type": "custom", "custom": {"name": name, "input": text}}
        return self.completion(content=content, tool_calls=[item], **kw)

    def raw_completion(self, item: Scripted, **literals: str) -> Scripted:
        """``item``'s completion as JSON text with the values of ``literals`` spliced in as raw
        JSON tokens (``usage_prompt="NaN"``): what ``json.dumps`` would never write. The
        placeholders are string values "@@name@@" anywhere in the body, usage included."""
        payload = json.loads(json.dumps(item.body or {}))
        payload.setdefault("id", f"chatcmpl-fake-{next(self._ids)}")
        payload.setdefault("created", int(time.time()))
        payload.setdefault("model", self.model)
        if isinstance(item.usage, dict):
            payload["usage"] = dict(item.usage)
        text = json.dumps(payload)
        for name, literal in literals.items():
            text = text.replace(f'"@@{name}@@"', literal)
        return Scripted(status=item.status, raw_text=text, headers=dict(item.headers), delay=item.delay)

    @staticmethod
    def redirect(location: str, status: int = 307) -> Scripted:
        return Scripted(status=status, headers={"Location": location},
                        body={"error": {"message": "moved", "type": "redirect"}})

    @staticmethod
    def trickled(item: Scripted, seconds_per_piece: float) -> Scripted:
        item.trickle = seconds_per_piece
        return item

    def malformed_arguments(self, name: str = "open_long") -> Scripted:
        return self.tool_calls((name, '{"symbol": "BTC/USDT", "usd_notional": 100,'))

    def unknown_tool(self, name: str = "withdraw_funds") -> Scripted:
        return self.tool_calls((name, {"amount": 1000000}))

    @staticmethod
    def error(status: int, message: str = "scripted error", *, retry_after_ms: int | None = None,
              error_type: str | None = None, delay: float = 0.0) -> Scripted:
        headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
        kind = error_type or {400: "invalid_request_error", 401: "invalid_request_error",
                              429: "rate_limit_exceeded"}.get(status, "server_error")
        return Scripted(status=status, headers=headers, delay=delay,
                        body={"error": {"message": message, "type": kind, "param": None, "code": None}})

    @staticmethod
    def delayed(item: Scripted, seconds: float) -> Scripted:
        item.delay = seconds
        return item

    # -- serving
    def _next(self) -> Scripted:
        with self._lock:
            if not self._script:
                return self.error(500, "script exhausted")
            item = self._script[0]
            if not item.repeat:
                self._script.popleft()
            return item

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        path = handler.path.split("?", 1)[0]
        authorized = handler.headers.get("Authorization") == f"Bearer {self.api_key}"
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = RecordedRequest("POST", path, headers, body, authorized)
        with self._lock:
            self.requests.append(record)
        if path not in PATHS:
            record.status = 404
            self._send(handler, 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        if not authorized:
            record.status = 401
            self._send(handler, 401, {"error": {"message": "Incorrect API key provided.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        item = self._next()
        if item.delay and self._stopping.wait(item.delay):
            return
        record.status = item.status
        if item.raw_text is not None:
            self._send(handler, item.status, item.raw_text, item.headers, trickle=item.trickle,
                       stopping=self._stopping)
            return
        payload = json.loads(json.dumps(item.body or {}))
        if item.status == 200:
            payload.setdefault("id", f"chatcmpl-fake-{next(self._ids)}")
            payload.setdefault("created", int(time.time()))
            payload["model"] = body.get("model") or self.model
            if item.usage is True:
                prompt = _estimate(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", [])))
                message = payload["choices"][0]["message"]
                completion = _estimate(json.dumps(message))
                payload["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                    "total_tokens": prompt + completion}
            elif isinstance(item.usage, dict):
                payload["usage"] = dict(item.usage)
        self._send(handler, item.status, payload, item.headers, trickle=item.trickle, stopping=self._stopping)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any] | str,
              headers: dict[str, str] | None = None, *, trickle: float = 0.0,
              stopping: threading.Event | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        try:
            if trickle:
                handler.send_response(status)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.flush()
                for start in range(0, len(data), 64):
                    if stopping is not None and stopping.wait(trickle):
                        return
                    handler.wfile.write(data[start:start + 64])
                    handler.wfile.flush()
                return
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-request-id", "req_fake")
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass
