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
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack
from tests.fakes.hostile_model import (
    CANARY_MARKER,
    Attack,
    CanaryServer,
    HostileModelServer,
    Reply,
    attack_catalogue,
)
from tests.integration.hostile_run import (
    Breaches,
    Client,
    Recorder,
    SocketWatch,
    dump,
    results_of,
    short,
    watch_socket,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TICK_LIMIT = 6  # AGENT_TICK_TIME_LIMIT of the run, seconds
# The deadline is proven by evidence, not by a duration: the late attack's reply is due
# LATE_REPLY s after the model server received its request (the server's own clock), and its
# decision must have ended before that (an unenforced deadline waits for the reply, which the
# client's 30 s LLM_TIMEOUT_SECONDS lets arrive). The other decisions get a wide sanity bound,
# TICK_LIMIT + TIME_MARGIN, still far below LATE_REPLY (an enforced deadline ends near 6 s,
# none near 25 s), so a loaded machine closing a decision late does not read as a breach.
TIME_MARGIN = 8.0  # what a decision may take beyond its limit (closing and recording on a loaded machine)
LATE_REPLY = 25.0  # the late attack answers after this long (> TICK_LIMIT + TIME_MARGIN + 10, < 30)
TICK_WAIT = 120.0  # how long a round waits for its ticks to end: a bound for a stuck tick, not a speed check
assert LATE_REPLY - (TICK_LIMIT + TIME_MARGIN) >= 10 and LATE_REPLY < 30
RACE_ROUNDS = 12
CLAIMED_DECISIONS = range(1, 35)  # at-d<N>-1 claimed ahead of the agents, N in here (index 0 is left
# alone: there each attack places its one legitimate order, whose record is checked)

CAP_NOTIONAL = Decimal("250")  # max_position_notional_usd of both users
CAP_LEVERAGE = 2  # max_leverage of both users (and of their agents)
SLIPPAGE = Decimal("1.02")  # a market order fills within the paper venue's slippage
STORED_BYTES_CAP = 512 * 1024  # a decision's messages / raw replies: model text is clipped in storage
REQUEST_BYTES_CAP = 512 * 1024  # one model request: the 1 MB reply is not carried into later rounds
TOKENS_CAP = 10**8  # a token count no real decision reaches
PASSWORD = "hostile-run-password-1"
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
FALLBACK_PRICE = {"BTC/USDT": Decimal("80000"), "ETH/USDT": Decimal("4000")}  # above the simulated walk

USERS = {
    "alice": {"username": "alicehx", "model": "gpt-4o-mini"},
    "bob": {"username": "bobhx", "model": "gpt-4.1-mini"},
}
STAFF = "malloryhx"
for _key, _user in USERS.items():
    _user.update(account=f"{_user['username']}-paper", agent=f"{_user['username']}-agent")

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


def _tick_lines(stack: Stack) -> int:
    return sum(1 for line in stack.log("worker").splitlines()
               if "Task agents.tick[" in line and ("succeeded in" in line or "raised unexpected" in line))


def _wait_ticks(stack: Stack, target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _tick_lines(stack) >= target:
            return True
        time.sleep(0.1)
    return _tick_lines(stack) >= target


def _dec(value: Any) -> Decimal | None:
    if value in (None, "", "None"):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


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
    _race_client_order_ids(api, ids, breaches)
    claims = _claim_platform_ids(api, ids, breaches)
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

    runs = _agent_phase(stack, model, api, ids, resting, breaches)
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
    _ssrf_phase(stack, model, bob, ids, canary, runs, breaches)
    _budget_phase(stack, model, alice, ids, runs, breaches)
    _decimal_phase(alice, ids, breaches)
    _staff_phase(staff, ids, breaches)
    _brute_force_phase(base, recorder, breaches)

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
    _cross_user_probes(api, ids, data, breaches)
    _final_reads(api, ids, data, breaches)
    _portal_and_admin_reads(alice_portal, staff, ids, data, breaches)
    _check_database(data, ids, runs, claims, model, breaches)
    _check_sockets(watches, ids, breaches)
    crashed = [line.split("raised unexpected:", 1)[1].strip()[:120] for line in stack.log("worker").splitlines()
               if "Task agents.tick[" in line and "raised unexpected:" in line]
    if crashed:
        breaches.add("audit", "tick crashed", f"{len(crashed)} agent ticks raised out of the task (the decision "
                     f"cannot have been recorded): {sorted(set(crashed))[:4]}")
    _check_answers(recorder, breaches)
    if canary.requests:
        paths = sorted({r.path for r in canary.requests})
        breaches.add("model", "SSRF", f"the loopback canary received {len(canary.requests)} request(s) ({paths}): "
                     "a user's LLM base URL reached a service inside the deployment")


# --------------------------------------------------------------------------- users: order identity


def _race_client_order_ids(api: dict[str, Client], ids: dict, breaches: Breaches) -> None:
    """alice and bob send the same client order id at the same instant, round after round."""
    barrier = threading.Barrier(2)
    answers: list[tuple[str, int, str, Any]] = []
    lock = threading.Lock()

    def send(key: str, rnd: int) -> None:
        body = {"account": ids[key]["account"], "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
                "order_type": "MARKET", "quantity": "0.00001", "client_order_id": f"race-{rnd}"}
        barrier.wait(timeout=30)
        response = api[key].post("/api/orders/", body)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        with lock:
            answers.append((key, response.status_code, f"race-{rnd}", payload))

    with ThreadPoolExecutor(2) as pool:
        for rnd in range(RACE_ROUNDS):
            list(pool.map(lambda key: send(key, rnd), ["alice", "bob"]))
    for key, status, coid, payload in answers:
        order = None
        if isinstance(payload, dict):
            order = payload if "client_order_id" in payload else (payload.get("extra") or {}).get("order")
        if status >= 500:
            continue  # reported with every other 500
        if not isinstance(order, dict):
            breaches.add("identity", "client order id race", f"{key} {coid}: {status} with no order in the answer: "
                         f"{json.dumps(payload)[:200]}")
            continue
        account = (order.get("account") or {}).get("id")
        if account != ids[key]["account"]:
            other = "bob" if key == "alice" else "alice"
            breaches.add("identity", "client order id race",
                         f"{key} sent {coid} and got order {order.get('id')} of account {account} "
                         f"({other}'s is {ids[other]['account']})")


def _claim_platform_ids(api: dict[str, Client], ids: dict, breaches: Breaches) -> list[tuple[str, str, int]]:
    """Both users claim the agents' future ids (at-d<N>-1) with tiny orders, before any decision."""
    jobs = [("bob", f"at-d{n}-1") for n in CLAIMED_DECISIONS]  # bob on everyone's, alice on some
    jobs += [("alice", f"at-d{n}-1") for n in CLAIMED_DECISIONS if n % 4 == 1]

    def claim(job: tuple[str, str]) -> tuple[str, str, int]:
        key, coid = job
        response = api[key].post("/api/orders/", {"account": ids[key]["account"], "symbol": "BTC/USDT",
                                                  "side": "BUY", "position_side": "LONG", "order_type": "MARKET",
                                                  "quantity": "0.00001", "client_order_id": coid})
        return key, coid, response.status_code

    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(claim, jobs))
    accepted = [(k, c, s) for k, c, s in claims if s != 400 and s < 500]
    if accepted:
        breaches.add("identity", "reserved at- prefix",
                     f"{len(accepted)} of {len(claims)} claims of the platform's own ids were taken as orders "
                     f"(e.g. {accepted[:3]}); expected 400")
    return claims


# --------------------------------------------------------------------------- models


def _agent_phase(stack: Stack, model: HostileModelServer, api: dict[str, Client], ids: dict,
                 resting: dict[str, list[int]], breaches: Breaches) -> dict[int, list[str]]:
    """One decision per attack for each agent, both agents at once; each round waits for
    both ticks to finish. Returns the attacks run, per agent id, in order."""
    runs: dict[int, list[str]] = {ids[k]["agent"]: [] for k in USERS}
    catalogues = {key: attack_catalogue(foreign_order_ids=resting["bob" if key == "alice" else "alice"],
                                        own_order_ids=resting[key], huge_delay=LATE_REPLY) for key in USERS}
    # Every attack runs, however slow the machine: each round is bounded by its ticks' own end.
    names = [a.name for a in catalogues["alice"]]
    for index, name in enumerate(names):
        for key, user in USERS.items():
            model.arm(user["model"], catalogues[key][index])
        before = _tick_lines(stack)
        for key in USERS:
            response = api[key].post(f"/api/agents/{ids[key]['agent']}/run/")
            runs[ids[key]["agent"]].append(name)
            if response.status_code != 202:
                breaches.add("api", "run now", f"{key}'s run of {name}: {response.status_code} {short(response.text)}")
        helper = catalogues["alice"][index].helper
        if not _wait_ticks(stack, before + len(USERS), TICK_WAIT):
            breaches.add("audit", "time limit", f"attack {name} ({helper}): the agents' ticks had not finished "
                         f"{TICK_WAIT:g}s after they were queued (limit {TICK_LIMIT}s)")
    return runs


def _ssrf_phase(stack: Stack, model: HostileModelServer, bob: Client, ids: dict, canary: CanaryServer,
                runs: dict[int, list[str]], breaches: Breaches) -> None:
    """bob aims his own LLM base URL at a loopback service (the canary) and runs his agent.
    Refused when saved or before the call, the run falls back to (or errors before) the
    operator's server, armed here with a harmless reply."""
    model.arm(USERS["bob"]["model"], Attack("ssrf_base_url", [Reply(content="Nothing to do.")], "model"))
    response = bob.put("/api/llm-credential/", {"api_key": "sk-bob-own-key-0001", "base_url": f"{canary.url}/v1"})
    if response.status_code not in (200, 400):
        breaches.add("model", "SSRF", f"setting a loopback LLM base URL answered {response.status_code}")
    before = _tick_lines(stack)
    response = bob.post(f"/api/agents/{ids['bob']['agent']}/run/")
    runs[ids["bob"]["agent"]].append("ssrf_base_url")
    if response.status_code == 202 and not _wait_ticks(stack, before + 1, TICK_WAIT):
        breaches.add("audit", "time limit", "bob's run with his own base URL had not finished in time")


def _budget_phase(stack: Stack, model: HostileModelServer, alice: Client, ids: dict, runs: dict[int, list[str]],
                  breaches: Breaches) -> None:
    """alice spends her whole monthly LLM budget (sets it to 0) and runs her agent: a budget
    stop, which must leave a RiskEvent."""
    model.arm(USERS["alice"]["model"], Attack("budget_stop", [Reply(content="Nothing to do.")], "audit"))
    response = alice.patch("/api/risk-profile/", {"monthly_llm_budget_usd": "0"})
    if response.status_code != 200:
        breaches.add("harness", "budget stop", f"setting the budget to 0 answered {response.status_code}")
        return
    before = _tick_lines(stack)
    response = alice.post(f"/api/agents/{ids['alice']['agent']}/run/")
    runs[ids["alice"]["agent"]].append("budget_stop")
    if response.status_code == 202 and not _wait_ticks(stack, before + 1, TICK_WAIT):
        breaches.add("audit", "time limit", "alice's run on a spent budget had not finished in time")


def _decimal_phase(alice: Client, ids: dict, breaches: Breaches) -> None:
    """Decimals beyond the columns' digits: a clear 400, nothing stored, every later read fine."""
    for field, value in (("max_position_notional_usd", "29296706117289944"),
                         ("max_position_notional_usd", "1e30"),
                         ("monthly_llm_budget_usd", "99999999999999999999999.5"),
                         ("min_notional_usd", "0.0000000000000000001")):
        response = alice.patch("/api/risk-profile/", {field: value})
        if response.status_code != 400:
            breaches.add("decimals", "risk profile bounds", f"PATCH {field}={value} answered "
                         f"{response.status_code} (expected 400 naming the limit): {short(response.text)}")
    order = {"account": ids["alice"]["account"], "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
             "order_type": "LIMIT", "quantity": "0.001", "price": "30000"}
    for field, value in (("price", "29296706117289944"), ("quantity", "1e25"), ("stop_loss", "1e40"),
                         ("price", "0.00000000000000000001")):
        response = alice.post("/api/orders/", {**order, field: value})
        if response.status_code != 400:
            breaches.add("decimals", "order field bounds", f"POST /api/orders/ {field}={value} answered "
                         f"{response.status_code} (expected 400 naming the limit): {short(response.text)}")


def _staff_phase(staff: Client, ids: dict, breaches: Breaches) -> None:
    """A staff user without permissions: the manual order form, the global halt."""
    page = staff.get("/admin/trading/order/add/")
    if page.status_code == 200:
        seen = [u["account"] for u in USERS.values() if u["account"] in page.text]
        breaches.add("staff", "manual order form", f"a staff user without permissions opened it: {page.status_code}"
                     + (f", listing accounts {seen}" if seen else ""))
    # What the POSTs changed is checked in the database (an order on alice's account, a halt).
    staff.form_post("/admin/trading/order/add/", {
        "account": ids["alice"]["account"], "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
        "order_type": "MARKET", "quantity": "0.0003"})
    page = staff.get("/admin/risk/killswitch/global-halt/")
    if page.status_code == 200:
        breaches.add("staff", "global halt", "a staff user without permissions opened the global halt form")
    staff.form_post("/admin/risk/killswitch/global-halt/", {"confirmed": "yes", "reason": "hostile staff"})


def _brute_force_phase(base: str, recorder: Recorder, breaches: Breaches) -> None:
    """Password guessing on /api/auth/token/ with a new forged X-Forwarded-For each time."""
    guesser = Client(base, "guesser", recorder)
    target = USERS["bob"]["username"]
    statuses = []
    for i in range(12):
        response = guesser.post("/api/auth/token/", {"username": target, "password": f"guess-{i}"},
                                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        statuses.append(response.status_code)
    final = guesser.post("/api/auth/token/", {"username": target, "password": PASSWORD},
                         headers={"X-Forwarded-For": "203.0.113.77"})
    if final.status_code == 201:
        breaches.add("login", "password guessing", f"12 wrong guesses (statuses {sorted(set(statuses))}) with forged "
                     "X-Forwarded-For, then the right password got a token: never throttled, never locked out")


# --------------------------------------------------------------------------- checks


def _own(data: dict, owner: int, kind: str) -> set[int]:
    key = {"orders": "owner_id", "positions": "owner_id", "accounts": "owner_id"}.get(kind, "owner")
    return {row["id"] for row in data.get(kind, []) if row.get(key) == owner}


def _cross_user_probes(api: dict[str, Client], ids: dict, data: dict, breaches: Breaches) -> None:
    """Each user reads, cancels, closes, runs and edits the other's objects by id."""
    jobs = []
    for key, other in (("alice", "bob"), ("bob", "alice")):
        victim = ids[other]["user"]
        sample = lambda s: sorted(s)[:3] + sorted(s)[-2:]  # noqa: E731
        for kind, path in (("orders", "orders"), ("positions", "positions"), ("decisions", "decisions"),
                           ("agents", "agents"), ("accounts", "exchange-accounts")):
            for oid in sorted(set(sample(_own(data, victim, kind)))):
                jobs.append((key, "GET", f"/api/{path}/{oid}/", None))
        for oid in sorted(set(sample(_own(data, victim, "orders")))):
            jobs.append((key, "POST", f"/api/orders/{oid}/cancel/", None))
        for oid in sorted(_own(data, victim, "positions"))[:3]:
            jobs.append((key, "POST", f"/api/positions/{oid}/close/", None))
        events = [e["id"] for e in data.get("risk_events", []) if e["user"] == victim][:3]
        jobs += [(key, "GET", f"/api/risk-events/{eid}/", None) for eid in events]
        jobs += [(key, "POST", f"/api/agents/{ids[other]['agent']}/run/", None),
                 (key, "PATCH", f"/api/agents/{ids[other]['agent']}/", {"name": "pwned"}),
                 (key, "POST", f"/api/agents/{ids[other]['agent']}/pause/", None)]

    def probe(job):
        key, method, path, body = job
        return key, method, path, api[key].request(method, path, json=body).status_code

    with ThreadPoolExecutor(4) as pool:
        for key, method, path, status in pool.map(probe, jobs):
            if status != 404:
                breaches.add("api", "cross-user access", f"{key}: {method} {path} (the other user's) answered {status}")


def _final_reads(api: dict[str, Client], ids: dict, data: dict, breaches: Breaches) -> None:
    """Every list and detail a user can read: 200, and only their own objects (the leak
    scan of the bodies is in _check_answers)."""
    for key, client in api.items():
        owner = ids[key]["user"]
        for path, kind in (("/api/orders/?page_size=200", "orders"), ("/api/positions/?status=all", "positions"),
                           ("/api/decisions/?page_size=200", "decisions"), ("/api/agents/", "agents"),
                           ("/api/exchange-accounts/", "accounts"), ("/api/risk-events/?page_size=200", None),
                           ("/api/balance/", None), ("/api/pnl/", None), ("/api/equity/", None),
                           ("/api/kill-switch/", None), ("/api/risk-profile/", None), ("/api/auth/tokens/", None),
                           (f"/api/orders/?account={ids['bob' if key == 'alice' else 'alice']['account']}", "orders")):
            response = client.get(path)
            if response.status_code != 200 and not (response.status_code == 400 and "account=" in path):
                breaches.add("decimals" if response.status_code >= 500 else "api", "reads",
                             f"{key}: GET {path} answered {response.status_code}")
                continue
            if kind:
                foreign = {r.get("id") for r in results_of(response)} - _own(data, owner, kind)
                if foreign:
                    breaches.add("api", "leak", f"{key}: GET {path} lists objects not theirs: {sorted(foreign)[:10]}")
        for decision in [d for d in data.get("decisions", []) if d["owner"] == owner]:
            response = client.get(f"/api/decisions/{decision['id']}/")
            if response.status_code != 200:
                breaches.add("audit", "reads", f"{key}: GET /api/decisions/{decision['id']}/ answered "
                             f"{response.status_code}")


def _portal_and_admin_reads(alice_portal: Client, staff: Client, ids: dict, data: dict, breaches: Breaches) -> None:
    """alice's portal pages (scanned for other users' objects and staff names with every other
    answer), bob's objects through the portal, and the admin's lists for the staff user."""
    for path in ("/", "/exchanges/", "/risk/", "/kill-switch/", "/agents/", "/decisions/", "/orders/",
                 f"/agents/{ids['alice']['agent']}/"):
        response = alice_portal.get(path)
        if response.status_code != 200:
            breaches.add("api", "portal reads", f"alice: GET {path} answered {response.status_code}")
    bob = ids["bob"]["user"]
    probes = [f"/agents/{ids['bob']['agent']}/"]
    probes += [f"/decisions/{i}/" for i in sorted(_own(data, bob, "decisions"))[:2]]
    probes += [f"/orders/{i}/" for i in sorted(_own(data, bob, "orders"))[:2]]
    for path in probes:
        response = alice_portal.get(path)
        if response.status_code != 404:
            breaches.add("api", "cross-user access", f"alice: portal GET {path} (bob's) answered "
                         f"{response.status_code}")
    for path in ("/admin/trading/order/", "/admin/agents/decision/", "/admin/exchanges/exchangeaccount/",
                 "/admin/risk/killswitch/", "/admin/auth/user/"):
        response = staff.get(path)
        if response.status_code == 200:
            breaches.add("staff", "admin lists", f"the staff user without permissions read {path}")


def _label(runs: dict[int, list[str]], data: dict) -> dict[int, str]:
    """Decision id -> the attack it ran (the i-th decision of an agent ran its i-th run)."""
    labels = {}
    for agent, names in runs.items():
        mine = sorted(d["id"] for d in data.get("decisions", []) if d["agent"] == agent)
        for decision_id, name in zip(mine, names, strict=False):
            labels[decision_id] = name
    return labels


def _late_reply_due(decisions: dict[int, dict], labels: dict[int, str], agents: dict[int, dict],
                    model: HostileModelServer, breaches: Breaches) -> dict[int, float]:
    """Decision id -> when the model server would have delivered its late reply (the first
    request of that agent's late_reply attack: received at + LATE_REPLY), for the late_reply
    decisions that reached the model. A decision that did not (the machine so slow that its
    deadline came first) proves nothing either way: a printed note; none reaching it is a
    harness failure, since the run then proves no deadline."""
    due: dict[int, float] = {}
    notes = []
    for d in decisions.values():
        agent = agents.get(d["agent"])
        if labels.get(d["id"]) != "late_reply" or d["status"] == "skipped" or agent is None:
            continue
        seen = [r for r in model.requests_for("late_reply") if r.model == agent["model"] and r.round == 0
                and r.answer_at is not None]
        if seen:
            due[d["id"]] = min(seen, key=lambda r: r.at).answer_at
        else:
            notes.append(f"decision {d['id']} [{d['status']}] {d['error'][:100]}")
    if notes:
        print(f"hostile run note: late_reply decisions that never reached the model: {notes}")
    if not due:
        breaches.add("harness", "late reply", "no late_reply decision reached the model server: the run proved "
                     f"no deadline ({notes})")
    return due


def _check_database(data: dict, ids: dict, runs: dict[int, list[str]], claims: list, model: HostileModelServer,
                    breaches: Breaches) -> None:
    labels = _label(runs, data)
    decisions = {d["id"]: d for d in data.get("decisions", [])}
    orders = {o["id"]: o for o in data.get("orders", [])}
    order_times = {int(k): v for k, v in (data.get("order_times") or {}).items()}
    tool_calls = data.get("tool_calls", [])
    agents = {a["id"]: a for a in data.get("agents", [])}
    users = {v["id"]: name for name, v in (data.get("users") or {}).items()}
    staff_id = ids["staff"]["user"]

    def name(decision_id: int | None) -> str:
        return f"decision {decision_id} ({labels.get(decision_id, '?')})"

    # -- every decision closed, with its messages and token counts, within its time
    for d in decisions.values():
        if d["status"] == "running":
            breaches.add("audit", "decision left running",
                         f"{name(d['id'])}: still running long after its {TICK_LIMIT}s limit; "
                         f"{d['n_messages']} messages, tokens {d['prompt_tokens']}/{d['completion_tokens']}")
            continue
        if d["status"] == "skipped":
            continue
        if d["n_messages"] == 0:
            breaches.add("audit", "decision without messages", f"{name(d['id'])} [{d['status']}] has no messages: "
                         f"{d['error'][:160]}")
        elif "assistant" in d["roles"] and d["prompt_tokens"] <= 0:
            breaches.add("audit", "decision without tokens", f"{name(d['id'])} [{d['status']}] has the model's "
                         f"reply but {d['prompt_tokens']} prompt tokens")
        if not (0 <= d["prompt_tokens"] <= TOKENS_CAP and 0 <= d["completion_tokens"] <= TOKENS_CAP):
            breaches.add("model", "usage bounds", f"{name(d['id'])} stored tokens {d['prompt_tokens']}/"
                         f"{d['completion_tokens']}")
        if (_dec(d["cost"]) or 0) < 0:
            breaches.add("model", "usage bounds", f"{name(d['id'])} stored cost {d['cost']}")
        if d["finished"] is None:
            breaches.add("audit", "decision without end", f"{name(d['id'])} [{d['status']}] has no finished_at")
        elif d["finished"] - d["started"] > TICK_LIMIT + TIME_MARGIN:
            breaches.add("audit", "time limit", f"{name(d['id'])} ran {d['finished'] - d['started']:.1f}s "
                         f"against a limit of {TICK_LIMIT}s")
        for size_key in ("messages_bytes", "raw_bytes"):
            if d[size_key] > STORED_BYTES_CAP:
                breaches.add("model", "bounded replies", f"{name(d['id'])} stored {d[size_key] / 1e6:.1f} MB of "
                             f"{size_key.split('_')[0]}")
        if d.get("all_text_has_canary"):
            breaches.add("model", "SSRF", f"{name(d['id'])} recorded the loopback canary's answer")

    # -- the deadline, on evidence: the late reply's decision ended (and placed nothing) before
    #    the model server would have delivered that reply (its own receive time + the delay)
    late_due = _late_reply_due(decisions, labels, agents, model, breaches)
    for d in decisions.values():
        due = late_due.get(d["id"])
        if due is not None and d["finished"] is not None and d["finished"] >= due:
            breaches.add("audit", "time limit", f"{name(d['id'])} [{d['status']}] ended "
                         f"{d['finished'] - due:+.1f}s after the late reply was delivered ({LATE_REPLY:g}s after "
                         f"the request, {d['finished'] - d['started']:.1f}s into the decision): its "
                         f"{TICK_LIMIT}s deadline did not cut the model call")

    # -- the spend of every model call that returned a reply is counted (the late reply may
    #    never arrive, a 1 MB one may be refused whole by the client)
    called = {(r.attack, r.model) for r in model.requests}
    for d in decisions.values():
        label, agent = labels.get(d["id"]), agents.get(d["agent"])
        if d["status"] == "skipped" or label in (None, "late_reply", "megabyte_reply") or agent is None:
            continue
        if (label, agent["model"]) in called and (_dec(d["cost"]) or 0) <= 0:
            breaches.add("audit", "spend counted", f"{name(d['id'])} [{d['status']}] called the model but records "
                         f"a cost of {d['cost']}: the budget never sees that spend")

    # -- no two decisions of one agent at once
    by_agent: dict[int, list[dict]] = {}
    for d in decisions.values():
        if d["status"] != "skipped" and d["started"] is not None and d["finished"] is not None:
            by_agent.setdefault(d["agent"], []).append(d)
    for agent, rows in by_agent.items():
        rows.sort(key=lambda r: r["started"])
        for prev, nxt in zip(rows, rows[1:]):
            if nxt["started"] < prev["finished"]:
                breaches.add("audit", "one decision per agent at a time",
                             f"{name(nxt['id'])} started while {name(prev['id'])} was still running")

    # -- every agent order has its tool call, in a closed decision of its owner, in time
    calls_by_order: dict[int, list[dict]] = {}
    for call in tool_calls:
        if call["order"] is not None:
            calls_by_order.setdefault(call["order"], []).append(call)
    for order in orders.values():
        if order["source"] != "agent" or order["parent_id"] is not None:
            continue
        calls = calls_by_order.get(order["id"], [])
        decision_id = _decision_of(order["client_order_id"])
        if not calls:
            breaches.add("audit", "order without its record",
                         f"agent order {order['id']} {order['client_order_id']} [{order['status']}] of "
                         f"{name(decision_id)} has no ToolCall pointing at it")
            continue
        for call in calls:
            decision = decisions.get(call["decision"])
            if decision is None or decision["owner"] != order["owner_id"]:
                breaches.add("identity", "foreign order on a tool call",
                             f"tool call {call['id']} of {name(call['decision'])} points at order {order['id']} of "
                             f"user {users.get(order['owner_id'])}")
            elif decision["status"] == "running":
                breaches.add("audit", "order without its record",
                             f"order {order['id']} belongs to {name(call['decision'])}, still running")
        decision = decisions.get(decision_id)
        created = order_times.get(order["id"])
        due = late_due.get(decision_id)
        if due is not None and created and created >= due:
            breaches.add("audit", "time limit", f"order {order['id']} [{order['status']}] of {name(decision_id)} "
                         f"was placed from the late reply, delivered after the {TICK_LIMIT}s deadline")
        elif decision and created and decision["started"] and created - decision["started"] > TICK_LIMIT + TIME_MARGIN:
            breaches.add("audit", "time limit", f"order {order['id']} [{order['status']}] was placed "
                         f"{created - decision['started']:.1f}s into {name(decision_id)} (limit {TICK_LIMIT}s)")
    for call in tool_calls:
        order = orders.get(call["order"]) if call["order"] is not None else None
        decision = decisions.get(call["decision"])
        if order and decision and order["owner_id"] != decision["owner"] and call["name"] != "":
            breaches.add("identity", "foreign order on a tool call",
                         f"{call['name']} in {name(call['decision'])} points at order {order['id']} of user "
                         f"{users.get(order['owner_id'])}")
        if "belongs to another order" in call["result"]:
            breaches.add("identity", "claimed agent ids",
                         f"{call['name']} in {name(call['decision'])} failed: {call['result'][:160]}")
        if call["call_id"].startswith("call_custom") and (call["order"] is not None or call["status"] == "ok"):
            breaches.add("model", "only function calls", f"custom tool call {call['name']!r} in "
                         f"{name(call['decision'])} was executed [{call['status']}], order {call['order']}")
    custom_decisions = {d for d, label in labels.items() if label == "custom_tool_calls"}
    for order in orders.values():
        if order["source"] == "agent" and _decision_of(order["client_order_id"]) in custom_decisions:
            breaches.add("model", "only function calls", f"order {order['id']} [{order['status']}] was placed by "
                         f"{name(_decision_of(order['client_order_id']))}, whose only calls were custom")

    # -- the platform's own ids stay the platform's
    claimed = [o for o in orders.values() if o["client_order_id"].startswith("at-d") and o["source"] != "agent"]
    if claimed:
        breaches.add("identity", "reserved at- prefix", f"{len(claimed)} {claimed[0]['source']} orders hold "
                     f"platform ids, e.g. {[o['client_order_id'] for o in claimed[:4]]}")
    for key in USERS:
        account = ids[key]["account"]
        for rnd in range(RACE_ROUNDS):
            mine = [o for o in orders.values() if o["client_order_id"] == f"race-{rnd}" and o["account_id"] == account]
            if len(mine) != 1:
                breaches.add("identity", "client order id race", f"{key} has {len(mine)} orders race-{rnd} "
                             "(each user sent it once)")

    # -- caps: no order and no position beyond them
    prices = dict(FALLBACK_PRICE)
    for order in orders.values():
        exp = _dec(order["exp"])
        if exp and order["symbol"] in prices:
            prices[order["symbol"]] = max(prices[order["symbol"]], exp)
    for order in orders.values():
        if order["status"] not in ("FILLED", "NEW", "PARTIALLY_FILLED"):
            continue
        exq, exp, qty, price = (_dec(order[k]) for k in ("exq", "exp", "qty", "price"))
        if exq and exp:
            notional = exq * exp
        else:
            notional = (qty or 0) * (price or exp or prices.get(order["symbol"], Decimal(0)))
        if notional > CAP_NOTIONAL * SLIPPAGE:
            breaches.add("risk gate", "caps", f"{order['source']} order {order['id']} {order['side']} "
                         f"{order['symbol']} [{order['status']}{', reduce-only' if order['reduce_only'] else ''}] "
                         f"is {notional:.2f} USD against a cap of {CAP_NOTIONAL}")
        if order["leverage"] is not None and order["leverage"] > CAP_LEVERAGE:
            breaches.add("risk gate", "caps", f"{order['source']} order {order['id']} [{order['status']}] at "
                         f"{order['lev']}x against a cap of {CAP_LEVERAGE}x")
    for position in data.get("positions", []):
        if position["status"] != "open":
            continue
        size, entry, lev = _dec(position["size"]), _dec(position["entry"]), _dec(position["lev"])
        if size and entry and abs(size) * entry > CAP_NOTIONAL * SLIPPAGE:
            breaches.add("risk gate", "caps", f"open position {position['id']} {position['side']} "
                         f"{position['symbol']} is {abs(size) * entry:.2f} USD against a cap of {CAP_NOTIONAL}")
        if lev and lev > CAP_LEVERAGE:
            breaches.add("risk gate", "caps", f"open position {position['id']} at {lev}x against {CAP_LEVERAGE}x")
    for profile in data.get("profiles", []):
        if profile["user_id"] in (ids["alice"]["user"], ids["bob"]["user"]) and _dec(profile["cap"]) != CAP_NOTIONAL:
            breaches.add("decimals", "risk profile bounds", f"user {users.get(profile['user_id'])}'s "
                         f"max_position_notional_usd is now {profile['cap']} (the overflow was stored)")

    # -- staff without permissions changed nothing
    for switch in data.get("kill_switches", []):
        if switch["tripped_by"] == staff_id or STAFF in (switch["label"] or ""):
            breaches.add("staff", "global halt", f"kill switch {switch['id']} ({switch['scope']}) was tripped by "
                         "the staff user without permissions")
    for order in orders.values():
        if order["source"] == "admin" or STAFF in (order["actor"] or ""):
            breaches.add("staff", "manual order form", f"order {order['id']} [{order['status']}] on account "
                         f"{order['account_id']} was placed by the staff user without permissions")

    # -- a budget stop is a RiskEvent
    stop = [d for d in decisions.values() if labels.get(d["id"]) == "budget_stop"]
    if not stop or stop[0]["status"] != "budget_exceeded":
        breaches.add("harness", "coverage", "alice's run on a spent budget was not a budget stop: "
                     f"{[(d['status'], d['summary'][:80]) for d in stop]}")
    for d in decisions.values():
        if d["status"] == "budget_exceeded" and not any(
                e["kind"] == "budget" and e["user"] == d["owner"] for e in data.get("risk_events", [])):
            breaches.add("audit", "budget stop", f"{name(d['id'])} stopped on the budget with no RiskEvent")

    # -- what the hostile model saw: bounded requests, max_tokens on every one
    unbounded = [r for r in model.requests if not (isinstance(r.max_tokens, int) and r.max_tokens > 0)]
    if unbounded:
        breaches.add("model", "max_tokens", f"{len(unbounded)} of {len(model.requests)} model requests had no "
                     "max_tokens / max_completion_tokens")
    large = [r for r in model.requests if r.size > REQUEST_BYTES_CAP]
    if large:
        biggest = max(large, key=lambda r: r.size)
        breaches.add("model", "bounded replies", f"{len(large)} model requests over {REQUEST_BYTES_CAP // 1024} KB "
                     f"(largest {biggest.size / 1e6:.1f} MB, attack {biggest.attack}, round {biggest.round}): model "
                     "text is carried whole into later rounds")
    ssrf = [d for d in decisions.values() if labels.get(d["id"]) == "ssrf_base_url"]
    if not ssrf or ssrf[0]["status"] in ("skipped", "budget_exceeded"):
        breaches.add("harness", "coverage", "bob's run with a loopback base URL never got to a model call: "
                     f"{[(d['status'], d['summary'][:80]) for d in ssrf]}")
    # the model of one user's agent never sees the other user's objects
    for request in model.requests:
        owner_key = next((k for k, u in USERS.items() if u["model"] == request.model), None)
        other = USERS["bob" if owner_key == "alice" else "alice"] if owner_key else None
        text = json.dumps(request.body)
        if other and any(other[k] in text for k in ("username", "account", "agent")):
            breaches.add("api", "model context leak", f"a request of {owner_key}'s agent ({request.attack}, round "
                         f"{request.round}) carries {other['username']}'s objects")
    # every attack reached the model (else its check proved nothing)
    attacked = {r.attack for r in model.requests}
    for agent, names in runs.items():
        owner_key = next(k for k in USERS if ids[k]["agent"] == agent)
        for attack in names:
            if attack not in ("ssrf_base_url", "budget_stop") and attack not in attacked:
                breaches.add("harness", "coverage", f"attack {attack} of {owner_key} never reached the model")


def _decision_of(client_order_id: str) -> int | None:
    if client_order_id.startswith("at-d"):
        try:
            return int(client_order_id[4:].split("-", 1)[0])
        except ValueError:
            return None
    return None


def _event(message: str) -> dict[str, Any]:
    try:
        event = json.loads(message)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _check_sockets(watches: list[SocketWatch], ids: dict, breaches: Breaches) -> None:
    bob_markers = [USERS["bob"]["username"], USERS["bob"]["account"], USERS["bob"]["agent"], STAFF]
    for watch in watches:
        if watch.error:
            breaches.add("harness", "websocket", f"{watch.who} {watch.path}: {watch.error}")
        if watch.path.endswith("stream=staff") and (not watch.refused or watch.accepted):
            breaches.add("staff", "staff stream", f"{watch.who} without the permission joined {watch.path} "
                         f"({len(watch.messages)} messages); expected HTTP 403 / close 4403")
        events = [_event(m) for m in watch.messages]
        hello = events[0] if events and events[0].get("type") == "hello" else {}
        if watch.who == "staff" and "staff" in (hello.get("groups") or []):
            breaches.add("staff", "staff stream", f"{watch.path} joined the staff group without the permission")
        if watch.who == "staff":  # the staff user owns nothing: every event is another user's
            leaked = [m for m, e in zip(watch.messages, events) if e.get("type") not in ("hello", "pong")]
        else:
            bob_agent = ids["bob"]["agent"]
            leaked = [m for m, e in zip(watch.messages, events)
                      if any(marker in m for marker in bob_markers)
                      or (e.get("decision") or {}).get("agent_id") == bob_agent
                      or (e.get("agent") or {}).get("id") == bob_agent]
        if leaked:
            breaches.add("staff" if watch.who == "staff" else "api", "websocket leak",
                         f"{watch.who} on {watch.path} received {len(leaked)} event(s) of other users, e.g. "
                         f"{leaked[0][:200]}")


def _check_answers(recorder: Recorder, breaches: Breaches) -> None:
    foreign_for = {
        "alice": [USERS["bob"]["username"], USERS["bob"]["account"], USERS["bob"]["agent"], STAFF],
        "bob": [USERS["alice"]["username"], USERS["alice"]["account"], USERS["alice"]["agent"], STAFF],
    }
    errors = [s for s in recorder.seen if s.status >= 500 or s.status == 0]
    for seen in errors[:20]:
        breaches.add("decimals" if "orders" in seen.path or "risk-profile" in seen.path else "api", "HTTP 500",
                     f"{seen.who}: {seen.method} {seen.path} answered {seen.status}: {short(seen.text)}")
    for seen in recorder.seen:
        markers = foreign_for.get(seen.who)
        if markers:
            hit = [m for m in markers if m in seen.text]
            if hit:
                helper = "staff" if hit == [STAFF] else "identity" if "/api/orders/" in seen.path else "api"
                breaches.add(helper, "leak", f"{seen.who}: {seen.method} {seen.path} ({seen.status}) shows {hit}")
        if seen.who in foreign_for and "belongs to another order" in seen.text:
            breaches.add("identity", "existence oracle", f"{seen.who}: {seen.method} {seen.path} ({seen.status}) "
                         f"tells which client order ids exist elsewhere: {short(seen.text)}")
        if CANARY_MARKER in seen.text:
            breaches.add("model", "SSRF", f"{seen.who}: {seen.method} {seen.path} shows the canary's answer")

