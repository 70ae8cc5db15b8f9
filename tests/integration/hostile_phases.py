"""The hostile run's attacks (tests/integration/test_hostile_run.py), phase by phase:
users racing one client order id and claiming the platform's own ids, one decision per
model attack for each agent, a user's LLM base URL aimed at a canary, a budget spent,
Decimal overflow, a staff user without permissions, password guessing. Each phase collects
what it finds in ``Breaches``."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.e2e.stack import Stack
from tests.fakes.hostile_model import (
    Attack,
    CanaryServer,
    HostileModelServer,
    Reply,
    attack_catalogue,
)
from tests.integration.hostile_params import (
    CLAIMED_DECISIONS,
    LATE_REPLY,
    PASSWORD,
    RACE_ROUNDS,
    TICK_LIMIT,
    TICK_WAIT,
    USERS,
)
from tests.integration.hostile_run import (
    Breaches,
    Client,
    Recorder,
    short,
)


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


# --------------------------------------------------------------------------- users: order identity


def race_client_order_ids(api: dict[str, Client], ids: dict, breaches: Breaches) -> None:
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


def claim_platform_ids(api: dict[str, Client], ids: dict, breaches: Breaches) -> list[tuple[str, str, int]]:
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


def agent_phase(stack: Stack, model: HostileModelServer, api: dict[str, Client], ids: dict,
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


def ssrf_phase(stack: Stack, model: HostileModelServer, bob: Client, ids: dict, canary: CanaryServer,
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


def budget_phase(stack: Stack, model: HostileModelServer, alice: Client, ids: dict, runs: dict[int, list[str]],
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


def decimal_phase(alice: Client, ids: dict, breaches: Breaches) -> None:
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


def staff_phase(staff: Client, ids: dict, breaches: Breaches) -> None:
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


def brute_force_phase(base: str, recorder: Recorder, breaches: Breaches) -> None:
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
