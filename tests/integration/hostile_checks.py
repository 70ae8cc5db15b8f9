"""The hostile run's checks (tests/integration/test_hostile_run.py), after the attacks:
cross-user probes and final reads over HTTP, the portal and the admin, the database dump
(every decision recorded, no order over the caps, bounded storage, the deadline), the
websockets and every HTTP answer. Each check collects what it finds in ``Breaches``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes.hostile_model import CANARY_MARKER, HostileModelServer
from tests.integration.hostile_params import (
    CAP_LEVERAGE,
    CAP_NOTIONAL,
    FALLBACK_PRICE,
    LATE_REPLY,
    RACE_ROUNDS,
    REQUEST_BYTES_CAP,
    SLIPPAGE,
    STAFF,
    STORED_BYTES_CAP,
    TICK_LIMIT,
    TIME_MARGIN,
    TOKENS_CAP,
    USERS,
)
from tests.integration.hostile_run import (
    Breaches,
    Client,
    Recorder,
    SocketWatch,
    results_of,
    short,
)


def _dec(value: Any) -> Decimal | None:
    if value in (None, "", "None"):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# --------------------------------------------------------------------------- checks


def _own(data: dict, owner: int, kind: str) -> set[int]:
    key = {"orders": "owner_id", "positions": "owner_id", "accounts": "owner_id"}.get(kind, "owner")
    return {row["id"] for row in data.get(kind, []) if row.get(key) == owner}


def cross_user_probes(api: dict[str, Client], ids: dict, data: dict, breaches: Breaches) -> None:
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


def final_reads(api: dict[str, Client], ids: dict, data: dict, breaches: Breaches) -> None:
    """Every list and detail a user can read: 200, and only their own objects (the leak
    scan of the bodies is in check_answers)."""
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


def portal_and_admin_reads(alice_portal: Client, staff: Client, ids: dict, data: dict, breaches: Breaches) -> None:
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


def check_database(data: dict, ids: dict, runs: dict[int, list[str]], claims: list, model: HostileModelServer,
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


def check_sockets(watches: list[SocketWatch], ids: dict, breaches: Breaches) -> None:
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


def check_answers(recorder: Recorder, breaches: Breaches) -> None:
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
