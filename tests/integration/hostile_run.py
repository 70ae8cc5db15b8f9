"""Helpers of the hostile run (tests/integration/test_hostile_run.py): HTTP clients that
record every answer, websocket listeners, the breach list, and the database dump read
through the stack's own ``manage.py shell``.

Everything here talks to the running platform over loopback HTTP and websockets only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

# --------------------------------------------------------------------------- breaches


class Breaches:
    """Every failed invariant, named with the part of issue 11 that fixes it."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._lock = threading.Lock()

    def add(self, helper: str, check: str, message: str) -> None:
        with self._lock:
            self.items.append(f"[{helper}] {check}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self) -> str:
        by_check: dict[str, list[str]] = {}
        for item in self.items:
            head = item.split(": ", 1)[0]
            by_check.setdefault(head, []).append(item)
        lines = [f"{len(self.items)} breach(es) in {len(by_check)} check(s):"]
        for head, items in by_check.items():
            lines.append(f"* {head} ({len(items)})")
            for item in items[:6]:
                lines.append(f"    - {item.split(': ', 1)[1][:600]}")
            if len(items) > 6:
                lines.append(f"    - ... and {len(items) - 6} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- HTTP


def short(text: str, limit: int = 160) -> str:
    """A body for a message: an HTML page by its title, anything else on one line."""
    found = re.search(r"<title>(.*?)</title>", text or "", re.S)
    if found:
        return f"<html: {' '.join(found.group(1).split())}>"
    return " ".join((text or "").split())[:limit]


@dataclass
class Seen:
    who: str
    method: str
    path: str
    status: int
    text: str
    elapsed: float


class Recorder:
    """Every HTTP answer of the run, per actor; checked for 500s and leaks at the end."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def add(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


class Client:
    """One actor's HTTP client (token or session), loopback only, no proxies."""

    def __init__(self, base: str, who: str, recorder: Recorder, *, token: str | None = None) -> None:
        assert base.startswith(("http://127.0.0.1:", "http://[::1]:")), base
        self.base = base
        self.who = who
        self.recorder = recorder
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy: everything is on this machine
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        kw.setdefault("allow_redirects", False)
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base + path, **kw)
        except requests.RequestException as exc:
            self.recorder.add(Seen(self.who, method, path, 0, f"{type(exc).__name__}: {exc}",
                                   time.monotonic() - started))
            raise
        self.recorder.add(Seen(self.who, method, path, response.status_code, response.text,
                               time.monotonic() - started))
        return response

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=json_body, **kw)

    def patch(self, path: str, json_body: Any = None, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, json=json_body, **kw)

    def put(self, path: str, json_body: Any = None, **kw: Any) -> requests.Response:
        return self.request("PUT", path, json=json_body, **kw)

    # -- sessions (admin and portal forms, websockets)
    def form_login(self, path: str, username: str, password: str) -> bool:
        self.get(path)
        token = self.session.cookies.get("csrftoken", "")
        response = self.request("POST", path, data={"username": username, "password": password,
                                                    "csrfmiddlewaretoken": token, "next": "/admin/"})
        return response.status_code == 302 and "sessionid" in self.session.cookies

    def form_post(self, path: str, data: dict[str, Any]) -> requests.Response:
        page = self.get(path)
        token = self.session.cookies.get("csrftoken", "")
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text or "")
        return self.request("POST", path, data={**data, "csrfmiddlewaretoken": found.group(1) if found else token})

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)


def results_of(response: requests.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return body["results"]
    return body if isinstance(body, list) else []


# --------------------------------------------------------------------------- websockets


@dataclass
class SocketWatch:
    """A websocket held open for the run: whether it was accepted, the close code if it was
    refused, and every message received."""

    who: str
    path: str
    accepted: bool = False
    refused: str = ""  # "HTTP 403", "close 4403", an error text
    messages: list[str] = field(default_factory=list)
    error: str = ""


def watch_socket(ws_base: str, path: str, who: str, cookie: str, origin: str, stop: threading.Event,
                 watch: SocketWatch) -> None:
    """Runs in a thread until ``stop`` is set (websockets' sync client)."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(ws_base + path, additional_headers={"Cookie": cookie}, origin=origin, open_timeout=15,
                     close_timeout=2, proxy=None, max_size=16 * 2**20) as ws:
            while not stop.is_set():
                try:
                    message = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                watch.accepted = True  # a message arrives only on an accepted socket
                watch.messages.append(message if isinstance(message, str) else message.decode("utf-8", "replace"))
    except InvalidStatus as exc:
        watch.refused = f"HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        watch.refused = f"close {code}"
    except Exception as exc:  # noqa: BLE001 - recorded, reported by the test
        watch.error = f"{type(exc).__name__}: {exc}"[:300]


# --------------------------------------------------------------------------- the database

DUMP_MARKER = "=====HOSTILE-DUMP====="

# Read through the stack's own manage.py (its settings, its SQLite file). Decimal columns
# are read as text with raw SQL: a value beyond the column's digits must not hide the rest.
DUMP_CODE = r'''
import json
from django.db import connection
from django.contrib.auth.models import User
from agents.models import AgentConfig, Decision, ToolCall
from risk.models import KillSwitch, RiskEvent
out = {"errors": {}}

def section(name, fn):
    try:
        out[name] = fn()
    except Exception as exc:
        out["errors"][name] = (type(exc).__name__ + ": " + str(exc))[:500]

def rows(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, [v if isinstance(v, (int, float, type(None), bool)) else str(v) for v in row]))
                for row in cursor.fetchall()]

def ts(value):
    return value.timestamp() if value else None

section("users", lambda: {u.username: {"id": u.pk, "is_staff": u.is_staff} for u in User.objects.all()})
section("orders", lambda: rows(
    "select id, owner_id, account_id, source, status, client_order_id, symbol, side, position_side, order_type, "
    "reduce_only, CAST(quantity AS TEXT) as qty, CAST(price AS TEXT) as price, "
    "CAST(executed_quantity AS TEXT) as exq, CAST(executed_price AS TEXT) as exp, leverage, parent_id, actor, "
    "substr(error, 1, 300) as error from trading_order"))
from trading.models import Order
section("order_times", lambda: {o["id"]: ts(o["created_at"]) for o in Order.objects.values("id", "created_at")})
section("positions", lambda: rows(
    "select id, owner_id, account_id, symbol, side, status, CAST(size AS TEXT) as size, "
    "CAST(entry_price AS TEXT) as entry, CAST(leverage AS TEXT) as lev from trading_position"))
section("profiles", lambda: rows(
    "select user_id, max_leverage, CAST(max_position_notional_usd AS TEXT) as cap, "
    "CAST(monthly_llm_budget_usd AS TEXT) as budget from risk_riskprofile"))
section("accounts", lambda: rows("select id, owner_id, name, venue from exchanges_exchangeaccount"))
section("agents", lambda: [dict(id=a.pk, owner=a.owner_id, name=a.name, model=a.model_name,
                                max_leverage=a.max_leverage) for a in AgentConfig.objects.all()])

def decisions():
    out = []
    for d in Decision.objects.order_by("id"):
        messages = d.messages if isinstance(d.messages, list) else []
        call_ids = [tc.get("id", "") for m in messages if isinstance(m, dict)
                    for tc in (m.get("tool_calls") or []) if isinstance(tc, dict)]
        out.append(dict(id=d.pk, agent=d.agent_id, owner=d.owner_id, status=d.status, trigger=d.trigger,
                        started=ts(d.started_at), finished=ts(d.finished_at), n_messages=len(messages),
                        roles=[m.get("role") for m in messages if isinstance(m, dict)],
                        messages_bytes=len(json.dumps(d.messages)), raw_bytes=len(json.dumps(d.raw_reply)),
                        prompt_tokens=d.prompt_tokens, completion_tokens=d.completion_tokens,
                        cost=str(d.cost_usd), error=d.error[:300], summary=d.summary[:200], call_ids=call_ids,
                        all_text_has_canary="CANARY-7d1f0c" in json.dumps([d.messages, d.raw_reply, d.summary])))
    return out
section("decisions", decisions)
section("tool_calls", lambda: [dict(id=t.pk, decision=t.decision_id, name=t.name, call_id=t.call_id,
                                    status=t.status, order=t.order_id, result=json.dumps(t.result)[:500])
                               for t in ToolCall.objects.order_by("id")])
section("kill_switches", lambda: [dict(id=k.pk, scope=k.scope, active=k.active, user=k.user_id,
                                       tripped_by=k.tripped_by_id, label=k.tripped_by_label)
                                  for k in KillSwitch.objects.all()])
section("risk_events", lambda: [dict(id=e.pk, user=e.user_id, kind=e.kind, allowed=e.allowed, rule=e.rule)
                                for e in RiskEvent.objects.all()])
print("''' + DUMP_MARKER + r'''")
print(json.dumps(out))
'''


def dump(stack) -> dict[str, Any]:
    text = stack.shell(DUMP_CODE)
    return json.loads(text.split(DUMP_MARKER, 1)[1])
