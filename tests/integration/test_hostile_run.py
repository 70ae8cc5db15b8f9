"""The DONE-WHEN run of issue 11: hostile users and hostile models against the running
platform must find no leak, no breach and no decision left without its record.

The platform runs as deployed (tests/e2e/stack.py): daphne serving the ASGI app, a real
Celery worker on the threads pool, an embedded Redis, a throwaway SQLite file. Everything
below talks to it over loopback HTTP and websockets only; the database is read at the end
through the stack's own ``manage.py shell``.

Actors: two ordinary users (alice, bob), each with a paper account, small caps and an agent
whose OpenAI model name points (through the platform-wide OPENAI_BASE_URL, as an operator
sets it) at a hostile model server (tests/fakes/hostile_model.py); a staff user without
permissions (mallory). The run:

1. users: the same client order id raced from alice and bob at once; the platform's own
   ``at-d<N>-<i>`` ids claimed ahead of the agents;
2. models: one decision per attack for each agent (NaN / Infinity / 1e308 / negative and
   huge numbers, a symbol as a list, orders over the caps, leverage over the cap, oversized
   reduce-only closes, ``custom`` tool calls, cancel_order of the other user's orders, 1 MB
   replies, 100 KB texts and arguments round after round, negative and huge usage, a reply later
   than AGENT_TICK_TIME_LIMIT, unknown tools),
   while the staff user and alice hold websockets open;
3. users again: bob's own LLM base URL aimed at a loopback canary; alice's budget spent (a
   budget stop must be a RiskEvent); Decimal overflow in the risk profile and order fields;
   the staff user at the admin's manual order form, its lists and the global halt; password
   guessing with forged X-Forwarded-For;
4. the checks, over every HTTP answer and the database.

Every failed invariant is collected and reported at once, tagged with the part of issue 11
that fixes it: [identity] client order ids, [model] tool arguments / usage / custom calls /
max_tokens / bounded replies / outbound URLs, [audit] the record as it happens, the deadline
and the lock, [staff] permissions, [decimals] Decimal bounds, [login] the login throttle,
[api] / [risk gate] / [trading] what already holds (regressions).

The run is here; its parameters are in hostile_params.py, the attacks in hostile_phases.py,
the checks in hostile_checks.py, the clients, recorders and the database dump in hostile_run.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.fakes.hostile_model import CanaryServer, HostileModelServer
from tests.integration.hostile_checks import (
    check_answers,
    check_database,
    check_sockets,
    cross_user_probes,
    final_reads,
    portal_and_admin_reads,
)
from tests.integration.hostile_params import (
    CAP_LEVERAGE,
    CAP_NOTIONAL,
    PASSWORD,
    STAFF,
    SYMBOLS,
    TICK_LIMIT,
    USERS,
)
from tests.integration.hostile_phases import (
    agent_phase,
    brute_force_phase,
    budget_phase,
    claim_platform_ids,
    decimal_phase,
    race_client_order_ids,
    ssrf_phase,
    staff_phase,
)
from tests.integration.hostile_run import (
    Breaches,
    Client,
    Recorder,
    SocketWatch,
    dump,
    short,
    watch_socket,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETUP_CODE = """
import json
from django.contrib.auth.models import User
from risk.models import RiskProfile
from exchanges.services import exchange_account_create
from agents.services import agent_create
out = {}
for key, name, model in %(users)s:
    user = User.objects.create_user(name, password=%(password)r)
    RiskProfile.objects.filter(user=user).update(
        max_leverage=%(lev)d, max_position_notional_usd=%(cap)r, allowed_symbols=%(symbols)r,
        max_orders_per_minute=1000, max_orders_per_hour=10000, max_open_positions=5,
        loss_cooldown_seconds=0, monthly_llm_budget_usd="5000")
    account = exchange_account_create(owner=user, name=name + "-paper", venue="paper", credentials={})
    agent = agent_create(owner=user, account=account, name=name + "-agent", symbols=%(symbols)r,
                         interval_seconds=3600, model_name=model, max_leverage=%(lev)d, max_tool_rounds=4)
    out[key] = {"user": user.pk, "account": account.pk, "agent": agent.pk}
staff = User.objects.create_user(%(staff)r, password=%(password)r, is_staff=True)
out["staff"] = {"user": staff.pk}
print("SETUP=" + json.dumps(out))
"""


def _stack_env(model: HostileModelServer) -> dict[str, str]:
    base = f"{model.url}/v1"
    return {
        "AGENT_TICK_TIME_LIMIT": str(TICK_LIMIT),
        "OPENAI_BASE_URL": base,  # the operator's model server, platform-wide
        "OPENAI_API_KEY": "sk-operator-hostile-run",
        "API_THROTTLE_USER": "100000/min",
        "API_THROTTLE_ORDERS": "100000/min",
        "API_THROTTLE_AUTH": "10/min",
        "LOGIN_THROTTLE_FAILURES": "5",
        "RECONCILE_INTERVAL_SECONDS": "3600",
        # No LLM_ALLOWED_HOSTS: the operator's own OPENAI_BASE_URL passes the outbound-URL
        # check implicitly, and nothing else on this machine may (the canary is on ::1 or 127.0.0.2).
    }


PHASES: list[tuple[str, float]] = []  # (phase, seconds since the start), printed with the result


def _lap(name: str) -> None:
    PHASES.append((name, time.monotonic()))


def test_hostile_users_and_models_find_no_breach(tmp_path: Path) -> None:
    breaches = Breaches()
    recorder = Recorder()
    PHASES.clear()
    started = time.monotonic()
    _lap("stack start and setup")
    with HostileModelServer() as model, CanaryServer() as canary, \
            Stack(tmp_path, concurrency=4, extra_env=_stack_env(model)) as stack:
        try:
            _run(stack, model, canary, breaches, recorder)
        except Exception:
            print(stack.tails(80))
            raise
        _lap("stack stop")
    _lap("end")
    elapsed = time.monotonic() - started
    steps = ", ".join(f"{name} {PHASES[i + 1][1] - at:.1f}s" for i, (name, at) in enumerate(PHASES[:-1]))
    print(f"hostile run: {elapsed:.1f}s ({steps}); {len(recorder.seen)} HTTP answers, {len(model.requests)} "
          f"model requests, {len(canary.requests)} canary requests")
    assert not breaches, breaches.report()


def _run(stack: Stack, model: HostileModelServer, canary: CanaryServer, breaches: Breaches,
         recorder: Recorder) -> None:
    out = stack.shell(SETUP_CODE % {
        "users": [(k, u["username"], u["model"]) for k, u in USERS.items()], "password": PASSWORD,
        "lev": CAP_LEVERAGE, "cap": str(CAP_NOTIONAL), "symbols": SYMBOLS, "staff": STAFF})
    ids = json.loads(out.split("SETUP=", 1)[1].strip().splitlines()[0])
    base = stack.url
    _lap("logins and resting orders")

    # -- tokens and sessions, all before the password guessing (a lockout keyed by address
    #    would refuse them afterwards)
    api: dict[str, Client] = {}
    for key, user in USERS.items():
        anon = Client(base, key, recorder)
        response = anon.post("/api/auth/token/", {"username": user["username"], "password": PASSWORD})
        assert response.status_code == 201, f"no token for {key}: {response.status_code} {short(response.text)}"
        api[key] = Client(base, key, recorder, token=response.json()["key"])
    alice, bob = api["alice"], api["bob"]
    staff = Client(base, "staff", recorder)
    assert staff.form_login("/admin/login/", STAFF, PASSWORD), "the staff user could not sign in to the admin"
    alice_portal = Client(base, "alice", recorder)
    assert alice_portal.form_login("/login/", USERS["alice"]["username"], PASSWORD), "alice could not sign in"

    # -- resting orders: the targets of cancel_order from the other user's agent
    resting: dict[str, list[int]] = {}
    for key, client in api.items():
        resting[key] = []
        for price in ("30000", "31000", "32000"):
            response = client.post("/api/orders/", {"account": ids[key]["account"], "symbol": "BTC/USDT",
                                                    "side": "BUY", "position_side": "LONG", "order_type": "LIMIT",
                                                    "quantity": "0.001", "price": price})
            if response.status_code == 201:
                resting[key].append(response.json()["id"])
            else:
                breaches.add("harness", "resting order", f"{key}: {response.status_code} {short(response.text)}")

    _lap("race and claims")
    race_client_order_ids(api, ids, breaches)
    claims = claim_platform_ids(api, ids, breaches)
    _lap("agents")

    # -- websockets held open through the agent phase
    ws_base = base.replace("http://", "ws://")
    stop = threading.Event()
    watches = [SocketWatch("staff", "/ws/updates/?stream=staff"), SocketWatch("staff", "/ws/updates/?stream=all"),
               SocketWatch("staff", "/ws/updates/"), SocketWatch("alice", "/ws/updates/?stream=user"),
               SocketWatch("alice", "/ws/updates/?stream=staff")]
    threads = []
    for watch in watches:
        cookie = (staff if watch.who == "staff" else alice_portal).cookie_header()
        thread = threading.Thread(target=watch_socket, args=(ws_base, watch.path, watch.who, cookie, base, stop, watch),
                                  daemon=True)
        thread.start()
        threads.append(thread)

    runs = agent_phase(stack, model, api, ids, resting, breaches)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    # resting orders untouched by the other user's agent (the last one is named by a custom,
    # never to be executed, cancel_order of the user's own agent: checked with the tool calls)
    for key, client in api.items():
        for oid in resting[key][:-1]:
            response = client.get(f"/api/orders/{oid}/")
            if response.status_code == 200 and response.json().get("status") != "NEW":
                breaches.add("trading", "foreign cancel", f"{key}'s resting order {oid} is now "
                             f"{response.json().get('status')} (only the other user's agent was told to cancel it)")

    _lap("ssrf, decimals, staff, login")
    ssrf_phase(stack, model, bob, ids, canary, runs, breaches)
    budget_phase(stack, model, alice, ids, runs, breaches)
    decimal_phase(alice, ids, breaches)
    staff_phase(staff, ids, breaches)
    brute_force_phase(base, recorder, breaches)

    _lap("dump")
    data = dump(stack)
    _lap("reads and checks")
    for name, error in data["errors"].items():
        breaches.add("decimals" if name in ("orders", "positions", "profiles") else "audit", "database read",
                     f"reading {name} fails: {error}")
    counts: dict[str, dict[str, int]] = {"decisions": {}, "agent orders": {}, "tool calls": {}}
    for d in data.get("decisions", []):
        counts["decisions"][d["status"]] = counts["decisions"].get(d["status"], 0) + 1
    for o in data.get("orders", []):
        if o["source"] == "agent":
            counts["agent orders"][o["status"]] = counts["agent orders"].get(o["status"], 0) + 1
    for t in data.get("tool_calls", []):
        counts["tool calls"][t["status"]] = counts["tool calls"].get(t["status"], 0) + 1
    print(f"hostile run database: {json.dumps(counts)}")
    print("hostile run sockets: " + "; ".join(
        f"{w.who} {w.path}: " + (f"refused ({w.refused})" if w.refused else f"{len(w.messages)} messages")
        for w in watches))
    cross_user_probes(api, ids, data, breaches)
    final_reads(api, ids, data, breaches)
    portal_and_admin_reads(alice_portal, staff, ids, data, breaches)
    check_database(data, ids, runs, claims, model, breaches)
    check_sockets(watches, ids, breaches)
    crashed = [line.split("raised unexpected:", 1)[1].strip()[:120] for line in stack.log("worker").splitlines()
               if "Task agents.tick[" in line and "raised unexpected:" in line]
    if crashed:
        breaches.add("audit", "tick crashed", f"{len(crashed)} agent ticks raised out of the task (the decision "
                     f"cannot have been recorded): {sorted(set(crashed))[:4]}")
    check_answers(recorder, breaches)
    if canary.requests:
        paths = sorted({r.path for r in canary.requests})
        breaches.add("model", "SSRF", f"the loopback canary received {len(canary.requests)} request(s) ({paths}): "
                     "a user's LLM base URL reached a service inside the deployment")
