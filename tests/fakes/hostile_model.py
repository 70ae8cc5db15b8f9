"""A hostile OpenAI-compatible model server, and a canary server that must never be called.

Stdlib only (``ThreadingHTTPServer``, port 0). The real ``openai`` client in the worker
talks to it over HTTP like to any OpenAI-compatible server; what it answers comes from an
*attack* armed per model name (each agent of the hostile run uses its own OpenAI model
name, so each user's agent gets its own stream of attacks)::

    with HostileModelServer() as server:
        server.arm("gpt-4o-mini", attacks["nan_arguments"])
        ... the agent's decision runs ...
        server.requests  # every request: model, attack, round, size, max_tokens, ...

An ``Attack`` is a list of ``Reply`` objects, one per round of a decision: the round is the
number of assistant messages in the request (0 for the first call of a decision, 1 after
the first tool results, ...). Rounds past the end of the list get a plain "Done." reply.
A retried request of one round gets the same reply again, so an armed attack is
deterministic whatever the client's retries.

Arguments of tool calls are sent as the raw text given, so ``NaN``, ``Infinity``, ``1e308``
or a symbol sent as a list reach the platform exactly as a hostile server would send them.
``attack_catalogue()`` builds the list of attacks the hostile run plays.

``CanaryServer`` answers anything (any method, any path) with a chat completion whose
content carries a secret marker, and records every request: a user's LLM base URL aimed at
a loopback service must never reach it (SSRF).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MEGABYTE_TEXT = "A" * 1_000_000
PAD_TEXT = "B" * 100_000


# --------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One round's answer: tool calls (function or custom), content, usage, a delay."""

    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    content: str | None = None
    usage: dict[str, Any] | None = None  # None: a plausible usage block is computed
    delay: float = 0.0  # seconds before answering
    status: int = 200


@dataclass
class Attack:
    name: str
    rounds: list[Reply]
    helper: str = ""  # which fix (of issue 11) this attack exercises, for the breach messages
    note: str = ""


_ids = itertools.count(1)


def function_call(name: str, arguments: str | dict[str, Any], *, tag: str = "fn") -> dict[str, Any]:
    """A function tool call; ``arguments`` as raw text (sent verbatim) or a dict (JSON-encoded)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": f"call_{tag}_{next(_ids)}", "type": "function", "function": {"name": name, "arguments": text}}


def custom_call(name: str, text: str) -> dict[str, Any]:
    """A tool call of type ``custom`` (free-form input): never a function call to execute."""
    return {"id": f"call_custom_{next(_ids)}", "type": "custom", "custom": {"name": name, "input": text}}


def open_args(symbol: str = "BTC/USDT", *, usd_notional: Any = 15, quantity: Any = None, leverage: Any = 1,
              stop_loss: Any = None, take_profit: Any = None) -> dict[str, Any]:
    return {"symbol": symbol, "quantity": quantity, "usd_notional": usd_notional, "leverage": leverage,
            "stop_loss": stop_loss, "take_profit": take_profit, "order_type": "market", "limit_price": None}


def raw_open(*fields: str, symbol_text: str = '"BTC/USDT"') -> str:
    """open_long/open_short arguments as raw JSON text with fields overridden verbatim, e.g.
    raw_open('"usd_notional": NaN') -> ..."usd_notional": NaN... (a 15 USD size unless a
    size field is given)."""
    base = {"quantity": "null", "usd_notional": "15", "leverage": "1", "stop_loss": "null",
            "take_profit": "null", "order_type": '"market"', "limit_price": "null"}
    for field_text in fields:
        key, value = (part.strip() for part in field_text.split(":", 1))
        key = key.strip('"')
        if key == "quantity":
            base["usd_notional"] = "null"
        base[key] = value
    body = ", ".join(f'"{k}": {v}' for k, v in base.items())
    return "{" + f'"symbol": {symbol_text}, ' + body + "}"


def a_small_valid_order(tag: str) -> dict[str, Any]:
    """A legitimate 15 USD long at 1x: placed (FILLED) in the same round as the poison that
    follows it, so an audit lost to the poison shows as an order without its record."""
    return function_call("open_long", open_args(usd_notional=15, leverage=1), tag=tag)


def attack_catalogue(*, foreign_order_ids: list[int], own_order_ids: list[int], huge_delay: float) -> list[Attack]:
    """Every attack the hostile run plays, in order (one decision each). ``foreign_order_ids``:
    the other user's order ids, for cancel_order; ``own_order_ids``: the user's own open
    orders, which a custom (never to be executed) cancel_order names; ``huge_delay``: seconds
    a late reply waits."""
    done = Reply(content="Done.")
    attacks = [
        Attack("nan_arguments", [Reply([a_small_valid_order("nan"),
                                        function_call("open_long", raw_open('"usd_notional": NaN'), tag="nan")]),
                                 done], "model+audit", "NaN in a tool call's arguments"),
        Attack("infinity_arguments", [Reply([a_small_valid_order("inf"),
                                             function_call("open_short", raw_open('"quantity": Infinity'), tag="inf"),
                                             function_call("open_long", raw_open('"stop_loss": -Infinity'),
                                                           tag="inf")]), done],
               "model+audit", "Infinity / -Infinity in a tool call's arguments"),
        Attack("1e308_arguments", [Reply([a_small_valid_order("big"),
                                          function_call("open_long", raw_open('"usd_notional": 1e308'), tag="big"),
                                          function_call("open_short", raw_open('"quantity": 1e308'), tag="big")]),
                                   done], "model+audit", "1e308 in a tool call's arguments"),
        Attack("negative_and_huge_numbers", [Reply([
            a_small_valid_order("neg"),
            function_call("open_long", raw_open('"quantity": -5'), tag="neg"),
            function_call("open_long", raw_open('"leverage": 100000000000000000000'), tag="neg"),
            function_call("open_long", raw_open('"usd_notional": 1e30'), tag="neg"),
            function_call("cancel_order", '{"order_id": -1}', tag="neg"),
            function_call("cancel_order", '{"order_id": 1000000000000000000000000000000}', tag="neg"),
        ]), done], "model+audit", "negative and huge numbers"),
        Attack("symbol_as_list", [Reply([a_small_valid_order("lst"),
                                         function_call("open_long", raw_open(symbol_text='["BTC/USDT"]'), tag="lst"),
                                         function_call("get_market_data", '{"symbol": ["BTC/USDT", "ETH/USDT"]}',
                                                       tag="lst")]), done],
               "model+audit", "a symbol sent as a list"),
        Attack("order_over_caps", [Reply([function_call("open_long", open_args(usd_notional=5000), tag="cap"),
                                          function_call("open_short", open_args(quantity=3, usd_notional=None),
                                                        tag="cap")]), done],
               "risk gate", "an order far larger than the user's caps"),
        Attack("leverage_over_cap", [Reply([function_call("open_long", open_args(usd_notional=15, leverage=50),
                                                          tag="lev"),
                                            function_call("set_leverage", {"symbol": "BTC/USDT", "leverage": 100},
                                                          tag="lev")]), done],
               "risk gate", "leverage above the cap"),
        Attack("reduce_only_oversize", [Reply([
            function_call("close_long", {"symbol": "BTC/USDT", "quantity": 50, "usd_notional": None,
                                         "order_type": "market", "limit_price": None}, tag="red"),
            function_call("close_short", {"symbol": "ETH/USDT", "quantity": 500, "usd_notional": None,
                                          "order_type": "market", "limit_price": None}, tag="red"),
        ]), done], "risk gate", "reduce-only closes far larger than any position"),
        Attack("custom_tool_calls", [Reply([
            custom_call("open_long", json.dumps(open_args(usd_notional=17))),
            custom_call("cancel_order", json.dumps({"order_id": (own_order_ids or [1])[-1]})),
        ]), done],
               "model", "tool calls of type custom named like order tools"),
        Attack("cancel_foreign_orders", [Reply([function_call("cancel_order", {"order_id": oid}, tag="xcl")
                                                for oid in foreign_order_ids[:8]] or [
            function_call("cancel_order", {"order_id": 1}, tag="xcl")]), done],
               "trading", "cancel_order of the other user's order ids"),
        Attack("megabyte_reply", [Reply([function_call("get_balance", "{}", tag="meg")], content=MEGABYTE_TEXT)
                                  for _ in range(6)],
               "model", "a 1 MB content reply, round after round"),
        Attack("large_text_under_body_limits", [Reply([function_call("get_balance", json.dumps({"pad": PAD_TEXT}),
                                                                     tag="pad")], content=PAD_TEXT)
                                                for _ in range(6)],
               "model", "100 KB of text and 100 KB of arguments per reply (under any body limit), round after round"),
        Attack("usage_negative", [Reply([a_small_valid_order("uneg")],
                                        usage={"prompt_tokens": -1000, "completion_tokens": -5,
                                               "total_tokens": -1005}), done],
               "model+audit", "a usage block with negative token counts"),
        Attack("late_reply", [Reply([a_small_valid_order("late")], delay=huge_delay), done],
               "audit", f"a reply that arrives after {huge_delay:g} s"),
        Attack("unknown_tools", [Reply([function_call("withdraw_funds", {"amount": 1000000, "to": "attacker"},
                                                      tag="unk"),
                                        function_call("transfer_between_accounts", {"to_user": 1}, tag="unk"),
                                        function_call("", "{}", tag="unk"),
                                        function_call("open_long ", json.dumps(open_args()), tag="unk")]), done],
               "model", "unknown tools"),
        # Last: if huge usage were ever counted as given, the budget would stop every later decision.
        Attack("usage_huge", [Reply([a_small_valid_order("uhuge")],
                                    usage={"prompt_tokens": 10**30, "completion_tokens": 10**30,
                                           "total_tokens": 2 * 10**30}), done],
               "model+audit", "a usage block with huge token counts"),
    ]
    return attacks


# --------------------------------------------------------------------------- servers


@dataclass
class SeenRequest:
    at: float
    method: str
    path: str
    model: str
    attack: str
    round: int
    size: int  # bytes of the request body
    max_tokens: Any  # max_tokens or max_completion_tokens as sent (None when absent)
    body: dict[str, Any]
    answer_at: float | None = None  # when the server answers (``at`` + the reply's delay), same clock as ``at``


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Base:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                owner._handle(self)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

        cls = _Server6 if ":" in self.host else _Server
        self._httpd = cls((self.host, 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @staticmethod
    def _read(handler: BaseHTTPRequestHandler) -> tuple[bytes, dict[str, Any]]:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw[:2000].decode("utf-8", "replace")}
        return raw, body if isinstance(body, dict) else {"_body": body}

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-request-id", "req_hostile")
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up
            pass

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class HostileModelServer(_Base):
    """Answers POST .../chat/completions from the attack armed for the request's model."""

    def __init__(self) -> None:
        super().__init__()
        self._armed: dict[str, Attack] = {}

    def arm(self, model: str, attack: Attack) -> None:
        with self._lock:
            self._armed[model] = attack

    def requests_for(self, attack: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.attack == attack]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw, body = self._read(handler)
        path = handler.path.split("?", 1)[0]
        model = str(body.get("model") or "")
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        round_no = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        routed = handler.command == "POST" and path.endswith("/chat/completions")
        with self._lock:
            attack = self._armed.get(model)
            reply = (attack.rounds[round_no] if attack and round_no < len(attack.rounds) else Reply(content="Done."))
            at = time.time()
            seen = SeenRequest(at, handler.command, path, model, attack.name if attack else "",
                               round_no, len(raw), body.get("max_tokens", body.get("max_completion_tokens")),
                               body if len(raw) < 200_000 else {"model": model, "_truncated": len(raw)},
                               answer_at=at + (reply.delay if routed else 0.0))
            self.requests.append(seen)
        if not routed:
            self._send(handler, 404, json.dumps({"error": {"message": f"no route {path}",
                                                           "type": "invalid_request_error"}}).encode())
            return
        if reply.delay and self._stopping.wait(reply.delay):
            return
        self._send(handler, reply.status, self._completion(model, reply, len(raw)))

    @staticmethod
    def _completion(model: str, reply: Reply, request_size: int) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        usage = reply.usage if reply.usage is not None else {
            "prompt_tokens": max(1, request_size // 4), "completion_tokens": 20,
            "total_tokens": max(1, request_size // 4) + 20}
        payload = {
            "id": f"chatcmpl-hostile-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": usage,
        }
        # allow_nan: the numbers are in the argument strings; the envelope stays strict JSON.
        return json.dumps(payload, allow_nan=False).encode()


CANARY_MARKER = "CANARY-7d1f0c-SSRF-REACHED"


CANARY_HOSTS = ("::1", "127.0.0.2")  # tried in order: loopback hosts other than the model server's 127.0.0.1


class CanaryServer(_Base):
    """Must receive nothing. Bound to a loopback host of its own, never the model server's
    127.0.0.1, so an allow-list of the operator's model host never covers it: the IPv6
    loopback ``::1``, or, on a machine without IPv6 loopback, ``127.0.0.2`` (all of 127/8 is
    loopback on Linux)."""

    def __init__(self, host: str | None = None) -> None:
        super().__init__()
        self._hosts = (host,) if host else CANARY_HOSTS
        self.host = self._hosts[0]

    def start(self):
        errors = []
        for host in self._hosts:
            if host == HostileModelServer.host:
                raise ValueError(f"the canary must not share the model server's host {host}")
            self.host = host
            try:
                return super().start()
            except OSError as exc:  # no IPv6 loopback (EADDRNOTAVAIL / EAFNOSUPPORT), or 127.0.0.2 unbound
                errors.append(f"{host}: {exc}")
        raise OSError(f"the canary could bind none of {self._hosts}: {'; '.join(errors)}")

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw, body = self._read(handler)
        with self._lock:
            self.requests.append(SeenRequest(time.time(), handler.command, handler.path,
                                             str(body.get("model") or ""), "canary", 0, len(raw), None, {}))
        payload = {"id": "chatcmpl-canary", "object": "chat.completion", "created": int(time.time()),
                   "model": str(body.get("model") or "canary"),
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": CANARY_MARKER}}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        self._send(handler, 200, json.dumps(payload).encode())
