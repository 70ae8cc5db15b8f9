"""Agent benchmarks (issue 5). Pick one with --only (default: all four).

decision     (a) the platform's own time per decision with a model that answers at once:
                 agent_decision_run against a FakeOpenAIServer answering instantly (a hold
                 tool call; an open/close tool call then a reply) and with the built-in
                 model; median and p99, the graph's node_timings, and what lies outside them.
capacity     (b) how many agents one Celery worker (threads pool) keeps on their interval
                 with no missed tick when the model takes 2 s: a real worker process
                 started as the Procfile starts it, a fake model server whose every reply
                 waits 2 s, beat emulated (every interval: agents.tick for every agent, with
                 expires = interval, as django-celery-beat sends it; plus reconcile_all) or
                 a real `celery beat` (--beat); N stepped up until a tick is missed.
tokens       (c) prompt tokens per decision per symbol for agents with 1, 2, 3, 5 symbols,
                 with the platform's estimator (agents/graph/tokens.py) and the server's usage.
market-data  (d) venue market-data calls per tick as agents on the same 2 symbols are added
                 (1, 10, 50, 100 agents, one tick each, 16 threads, built-in model).

    .venv/bin/python bench/agents.py [--quick] [--only capacity] [--database-url postgresql://...]
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (
    PYTHON,
    ROOT,
    Bench,
    Probe,
    QueryCounter,
    base_parser,
    cpu_of_processes,
    load,
    machine_cpu_seconds,
    make_paper_account,
    make_user,
    median_of,
    percentile,
    print_table,
    proc_cpu_seconds,
    ratio,
    relax_risk,
    summarize,
)

KEY = "sk-bench-0123456789abcdef"
MODEL = "gpt-4o-mini"
INSTRUCTIONS = "Trade the trend on the 1m candles; keep positions small and cut losers quickly."
SYMBOL_SETS = {1: ["BTC/USDT"], 2: ["BTC/USDT", "ETH/USDT"], 3: ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
               5: ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT", "XRP/USDT"]}
OPEN_ARGS = {"symbol": "BTC/USDT", "quantity": 0.001, "usd_notional": None, "leverage": 1, "stop_loss": None,
             "take_profit": None, "order_type": "market", "limit_price": None}
CLOSE_ARGS = {"symbol": "BTC/USDT", "quantity": 0.001, "usd_notional": None, "order_type": "market",
              "limit_price": None}
HOLD_ARGS = {"reason": "no clear trend on the 1m candles"}
ONLY = ("decision", "capacity", "tokens", "market-data")


def parse():
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=ONLY, action="append", help="run only this part (repeatable)")
    g = p.add_argument_group("decision (a)")
    g.add_argument("--decisions", type=int, default=None, help="decisions per variant (default 60, quick 10)")
    g = p.add_argument_group("capacity (b)")
    g.add_argument("--interval", type=int, default=None, help="agent interval, s (default 60, quick 15)")
    g.add_argument("--cycles", type=int, default=None, help="measured cycles per N (default 3, quick 2)")
    g.add_argument("--agents", type=str, default=None,
                   help="N to step through, comma-separated (default 100,250,500,1000,1500,2000; quick 20)")
    g.add_argument("--concurrency", type=str, default=None, help="worker --concurrency values (default 64,128; quick 16)")
    g.add_argument("--model-delay", type=float, default=2.0, help="seconds the fake model takes per reply")
    g.add_argument("--symbols-per-agent", type=int, default=2)
    g.add_argument("--agents-per-user", type=int, default=10)
    g.add_argument("--no-reconcile", action="store_true", help="do not send trading.reconcile_all every cycle")
    g.add_argument("--spread", action="store_true",
                   help="spread each cycle's ticks over the interval (agents created at different times) "
                        "instead of one burst (all due together, e.g. after beat restarts)")
    g.add_argument("--beat", action="store_true", help="run a real `celery beat` instead of emulating it")
    g.add_argument("--workers", type=int, default=1,
                   help="worker processes (each with --concurrency threads); the question is about one")
    g.add_argument("--all-steps", action="store_true", help="keep stepping N after the first missed tick")
    g.add_argument("--py-spy", default=None, help="path to py-spy: profile the worker (first cycle of each N)")
    g = p.add_argument_group("tokens (c)")
    g.add_argument("--token-decisions", type=int, default=None, help="decisions per symbol count (default 8, quick 4)")
    g = p.add_argument_group("market-data (d)")
    g.add_argument("--agent-counts", type=str, default="1,10,50,100")
    g.add_argument("--threads", type=int, default=16)
    return p.parse_args()


# --------------------------------------------------------------------------- helpers
class Population:
    """Agents on their own paper accounts, ``per_user`` agents per user, made through the
    services; risk limits relaxed so they never interfere."""

    def __init__(self, tag: str, per_user: int = 10) -> None:
        self.tag = tag
        self.per_user = per_user
        self.agents: list = []
        self._user = None

    def add(self, n: int, *, symbols: list[str], model_name: str, interval: int = 60, instructions: str = ""):
        from agents.services import agent_create

        made = []
        for _ in range(n):
            i = len(self.agents)
            if i % self.per_user == 0:
                self._user = make_user(f"{self.tag}-u{i // self.per_user}")
                relax_risk(self._user)
            account = make_paper_account(self._user, f"paper-{i}")
            agent = agent_create(owner=self._user, account=account, name=f"{self.tag}-a{i}", symbols=list(symbols),
                                 interval_seconds=interval, model_name=model_name, instructions=instructions)
            self.agents.append(agent)
            made.append(agent)
        return made


def redis_commands() -> int:
    return int(_redis().info("stats")["total_commands_processed"])


def set_llm(url: str) -> None:
    from django.conf import settings

    settings.OPENAI_BASE_URL = url + "/v1"
    settings.OPENAI_API_KEY = KEY


# --------------------------------------------------------------------------- (a) decision
def bench_decision(b: Bench, n: int) -> None:
    import agents.services as services
    import alpha_platform.common.realtime as realtime
    from agents.services import agent_decision_run
    from tests.fakes.openai_server import FakeOpenAIServer

    server = FakeOpenAIServer(api_key=KEY).start()
    set_llm(server.url)
    pop = Population("dec")
    variants = {
        "builtin:trend": dict(model="builtin:trend"),
        "openai, hold (1 model call)": dict(model=MODEL, script="hold"),
        "openai, open/close + reply (2 calls, 1 order)": dict(model=MODEL, script="trade"),
    }
    probe = Probe()
    probe.wrap(services.decision, "_llm_for", "model client construction")
    probe.wrap(services.decision, "trader_for_account", "trader construction")
    probe.wrap(realtime, "_send", "realtime pushes (on commit)")
    probe.wrap(services.decision, "MonthlyBudget", "monthly budget query")
    results = {}
    rows, node_rows, outside_rows = [], [], []
    try:
        for label, v in variants.items():
            agent = pop.add(1, symbols=["BTC/USDT", "ETH/USDT"], model_name=v["model"], instructions=INSTRUCTIONS)[0]
            walls, cpus, statuses = [], [], Counter()
            nodes = defaultdict(list)
            parts = defaultdict(list)
            warm = 3
            for i in range(n + warm):
                if v.get("script") == "hold":
                    server.script(server.tool_calls(("hold", HOLD_ARGS)))
                elif v.get("script") == "trade":
                    args = ("open_long", OPEN_ARGS) if i % 2 == 0 else ("close_long", CLOSE_ARGS)
                    server.script(server.tool_calls(args), server.reply("Done."))
                probe.start()
                r0 = redis_commands()
                with QueryCounter() as q:
                    c0, t0 = time.process_time(), time.perf_counter()
                    decision = agent_decision_run(agent=agent)
                    wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
                redis_n = redis_commands() - r0 - 1  # minus the INFO itself
                timing = probe.take()
                if i < warm:
                    continue
                walls.append(wall)
                cpus.append(cpu)
                parts["SQL statements"].append(q.counts.get("total", 0))
                parts["paper book writes"].append(q.counts.get("paper_book_writes", 0))
                parts["Redis commands"].append(redis_n)
                statuses[decision.status] += 1
                nt = decision.node_timings or {}
                for k in ("gather_context", "decide", "execute_tools", "record"):
                    nodes[k].append(float(nt.get(k, 0.0)))
                nodes["total (service's own)"].append(float(nt.get("total", 0.0)))
                in_graph = sum(float(nt.get(k, 0.0)) for k in ("gather_context", "decide", "execute_tools", "record"))
                parts["outside the graph (wall - nodes)"].append(wall - in_graph)
                for k, val in timing.items():
                    parts[k].append(val)
            res = {"wall_ms": summarize(walls), "cpu_ms": summarize(cpus), "statuses": dict(statuses),
                   "nodes_ms": {k: summarize(x) for k, x in nodes.items()},
                   "parts_ms": {k: summarize(x) for k, x in parts.items()}}
            results[label] = res
            rows.append([label, res["wall_ms"]["median"], res["wall_ms"]["p99"], res["cpu_ms"]["median"],
                         ", ".join(f"{k} {c}" for k, c in statuses.items())])
            node_rows.append([label] + [res["nodes_ms"][k]["median"] for k in
                                        ("gather_context", "decide", "execute_tools", "record")]
                             + [res["parts_ms"]["outside the graph (wall - nodes)"]["median"]])
            outside_rows.append([label] + [res["parts_ms"].get(k, {"median": 0.0})["median"] for k in
                                           ("model client construction", "trader construction",
                                            "monthly budget query", "realtime pushes (on commit)",
                                            "SQL statements", "paper book writes", "Redis commands")])
            print(f"  {label}: p50 {res['wall_ms']['median']:.1f} ms  (load {load()[0]})", flush=True)
    finally:
        probe.undo()
        server.stop()
    base = results["builtin:trend"]["wall_ms"]["median"]
    for row in rows:
        row.insert(3, ratio(row[1], base))
    print_table(f"(a) agent_decision_run, model answering at once ({n} decisions each after 3 warm-up; 2 symbols; "
                "baseline = builtin)", ["variant", "wall p50 ms", "wall p99 ms", "x builtin", "CPU p50 ms*",
                                        "statuses"], rows)
    print("  * CPU of the whole bench process, fake model server threads included")
    print_table("(a) node_timings p50, ms (decide includes the in-process fake server's handling)",
                ["variant", "gather_context", "decide", "execute_tools", "record", "outside graph"], node_rows)
    print_table("(a) outside the graph, p50 ms per decision (parts measured with wrappers in this process), and "
                "round trips per decision", ["variant", "model client build", "trader build", "budget query",
                                             "realtime pushes", "SQL stmts", "paper book writes", "Redis cmds"],
                outside_rows)
    b.results["decision"] = {"decisions": n, "variants": results}


# --------------------------------------------------------------------------- (c) tokens
def bench_tokens(b: Bench, n: int) -> None:
    from agents.graph.tokens import estimate_message_tokens, estimate_prompt_tokens, estimate_tools_tokens
    from agents.services import agent_decision_run
    from tests.fakes.openai_server import FakeOpenAIServer, _estimate

    server = FakeOpenAIServer(api_key=KEY).start()
    set_llm(server.url)
    pop = Population("tok")
    rows, brk_rows, out = [], [], {}
    try:
        for count, symbols in SYMBOL_SETS.items():
            per_scenario = {}
            for scenario in ("hold", "trade"):
                agent = pop.add(1, symbols=symbols, model_name=MODEL, instructions=INSTRUCTIONS)[0]
                per_decision = []
                warm = 3  # so 'recent' (the last 3 decisions) is in the context, as in steady state
                for i in range(n + warm):
                    if scenario == "hold":
                        server.script(server.tool_calls(("hold", HOLD_ARGS)))
                    else:
                        args = ("open_long", OPEN_ARGS) if i % 2 == 0 else ("close_long", CLOSE_ARGS)
                        server.script(server.tool_calls(args), server.reply("Done."))
                    first = len(server.requests)
                    decision = agent_decision_run(agent=agent)
                    reqs = server.requests[first:]
                    if i < warm:
                        continue
                    est = [estimate_prompt_tokens(r.messages, r.tools) for r in reqs]
                    srv = [_estimate(json.dumps(r.messages) + json.dumps(r.tools)) for r in reqs]
                    m0 = reqs[0].messages
                    parts = {"tools": estimate_tools_tokens(reqs[0].tools),
                             "system": sum(estimate_message_tokens(m) for m in m0 if m["role"] == "system"),
                             "instructions": sum(estimate_message_tokens(m) for m in m0 if m["role"] == "user"
                                                 and m["content"].startswith("Instructions")),
                             "context": sum(estimate_message_tokens(m) for m in m0 if m["role"] == "user"
                                            and m["content"].startswith("Context"))}
                    per_decision.append({"calls": len(reqs), "estimate_sum": sum(est), "estimate_first": est[0],
                                         "server_sum": sum(srv), "server_first": srv[0],
                                         "decision_prompt_tokens": decision.prompt_tokens, "first_call_parts": parts,
                                         "status": decision.status})
                per_scenario[scenario] = per_decision

                def med(key, dec=per_decision):
                    return median_of(d[key] for d in dec)

                rows.append([count, scenario, med("calls"), med("estimate_sum"), med("estimate_sum") / count,
                             med("estimate_first"), med("estimate_first") / count, med("server_sum") / count,
                             med("decision_prompt_tokens") / count, med("estimate_sum") / count < 600])
                if scenario == "hold":
                    p = {k: median_of(d["first_call_parts"][k] for d in per_decision)
                         for k in ("system", "instructions", "context", "tools")}
                    brk_rows.append([count, p["system"], p["instructions"], p["context"], p["tools"],
                                     med("estimate_first") - sum(p.values()), med("estimate_first"),
                                     p["context"] / count])
            out[str(count)] = per_scenario
    finally:
        server.stop()
    print_table(f"(c) prompt tokens per decision ({n} decisions per row after 3 warm-up; instructions "
                f"{len(INSTRUCTIONS)} chars). est = agents/graph/tokens.py; server = the fake server's usage "
                "(chars/4)", ["symbols", "scenario", "model calls", "est/decision", "est/dec/symbol",
                              "est first call", "est first/symbol", "server/dec/symbol", "recorded/dec/symbol",
                              "< 600/symbol"], rows)
    print_table("(c) the first call's prompt by part (estimator, hold scenario, median)",
                ["symbols", "system", "instructions", "context", "tools", "framing", "total", "context/symbol"],
                brk_rows)
    b.results["tokens"] = {"decisions": n, "instructions_chars": len(INSTRUCTIONS), "per_symbol_count": out,
                           "table": rows, "first_call_parts": brk_rows}


# --------------------------------------------------------------------------- (d) market data
def bench_market_data_calls(b: Bench, counts: list[int], threads: int) -> None:
    from django.core.cache import cache
    from django.db import connection

    from agents.services import agent_decision_run
    from exchanges import market_data
    from exchanges.adapters.paper import PaperTrader

    counters: Counter = Counter()
    lock = threading.Lock()
    patches = []
    for name in ("get_candles", "get_ticker", "get_market_price", "get_balance", "get_positions", "place_order"):
        original = getattr(PaperTrader, name)

        def make(original=original, name=name):
            def wrapper(*a, **kw):
                with lock:
                    counters[name] += 1
                return original(*a, **kw)
            return wrapper

        patches.append((name, original))
        setattr(PaperTrader, name, make())
    rows, out = [], {}
    pop = Population("md")
    try:
        for n in counts:
            agents = pop.add(n, symbols=["BTC/USDT", "ETH/USDT"], model_name="builtin:trend")
            cache.delete_pattern("md:*")
            market_data.reset_stats()
            counters.clear()

            def tick(agent):
                try:
                    return agent_decision_run(agent=agent).status
                finally:
                    connection.close()

            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=min(threads, n)) as ex:
                statuses = Counter(ex.map(tick, agents))
            wall = time.perf_counter() - t0
            stats = dict(market_data.stats)
            c = dict(counters)
            md_raw = c.get("get_candles", 0) + c.get("get_ticker", 0)
            rows.append([n, wall, stats["fetches"], stats["hits"], ratio(stats["fetches"], n), c.get("get_candles", 0),
                         c.get("get_ticker", 0), c.get("get_market_price", 0), ratio(md_raw + c.get("get_market_price", 0), n),
                         c.get("place_order", 0), ratio(c.get("get_balance", 0) + c.get("get_positions", 0), n),
                         ", ".join(f"{k} {v}" for k, v in statuses.items())])
            out[str(n)] = {"wall_s": wall, "cache_stats": stats, "trader_calls": c, "statuses": dict(statuses)}
            print(f"  {n} agents: {wall:.1f} s, cache fetches {stats['fetches']}, statuses {dict(statuses)}", flush=True)
    finally:
        for name, original in patches:
            setattr(PaperTrader, name, original)
    print_table(f"(d) one tick of N agents on the same 2 symbols and venue ({threads} threads, builtin model, "
                "cold cache at the start)",
                ["agents N", "wall s", "cache venue fetches", "cache hits", "fetches/agent", "raw get_candles",
                 "raw get_ticker", "raw get_market_price", "raw md calls/agent", "orders", "acct reads/agent",
                 "statuses"], rows)
    print("  cache venue fetches = exchanges.market_data stats['fetches'] (what reaches the venue through the cache);\n"
          "  raw = every call reaching PaperTrader's method, from anywhere (the cache's fetches included;\n"
          "  get_market_price is the risk gate's live_read and the usd_notional sizing: not cached)")
    b.results["market_data"] = {"threads": threads, "per_n": out, "table": rows}


# --------------------------------------------------------------------------- (b) capacity
FAKE_LLM_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from http.server import ThreadingHTTPServer
ThreadingHTTPServer.request_queue_size = 1024  # a burst of new connections must not hit a 5-deep backlog
from tests.fakes.openai_server import FakeOpenAIServer
s = FakeOpenAIServer(api_key={key!r}).start()
s.script(s.forever(s.delayed(s.reply("hold"), {delay!r})))
open({urlfile!r}, "w").write(s.url)
served = 0
while True:
    time.sleep(5)
    with s._lock:
        served += len(s.requests)
        s.requests.clear()
    open({countfile!r}, "w").write(str(served))
"""


def spawn_fake_llm(b: Bench, delay: float) -> tuple[subprocess.Popen, str, Path]:
    urlfile, countfile = b.tmp / "llm.url", b.tmp / "llm.count"
    code = FAKE_LLM_CHILD.format(root=str(ROOT), key=KEY, delay=delay, urlfile=str(urlfile), countfile=str(countfile))
    proc = b.spawn([PYTHON, "-c", code], log="fake_llm.log")
    deadline = time.time() + 20
    while not urlfile.exists() or not urlfile.read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"fake model server did not start: {(b.tmp / 'fake_llm.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, urlfile.read_text(), countfile


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise RuntimeError(f"no {name} in the Procfile")


def worker_command(concurrency: int, hostname: str) -> list[str]:
    """The Procfile's worker line, with the bench's concurrency, a quiet log and its own name."""
    args = procfile_command("worker")
    out = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "$WORKER_CONCURRENCY":
            a = str(concurrency)
        if a == "--loglevel":
            out += ["--loglevel", "WARNING"]
            skip = True
            continue
        if a == "--hostname":
            out += ["--hostname", hostname]
            skip = True
            continue
        out.append(a)
    out[0] = str(Path(PYTHON).parent / out[0]) if out[0] == "celery" else out[0]
    return out


def beat_command() -> list[str]:
    args = procfile_command("beat")
    args = ["--loglevel" if a == "--loglevel" else a for a in args]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--loglevel":
            out += ["--loglevel", "WARNING"]
            skip = True
            continue
        out.append(a)
    out[0] = str(Path(PYTHON).parent / out[0]) if out[0] == "celery" else out[0]
    return out


def queues_of(cmd: list[str]) -> list[str]:
    if "-Q" in cmd:
        return cmd[cmd.index("-Q") + 1].split(",")
    return ["celery"]


class Sampler:
    """CPU seconds of the processes that matter over a step. PostgreSQL backends come and
    go (connections are recycled), so they are tracked pid by pid whenever ``poll`` runs."""

    def __init__(self, b: Bench, pids: dict[str, int]) -> None:
        self.b = b
        self.pids = pids
        db = b.database_url.rsplit("/", 1)[-1].split("?")[0]
        self.db_tag = f" {db} " if b.results.get("database") == "postgresql" else None
        self.backends: dict[int, list[float]] = {}  # pid -> [first seen cpu, last seen cpu]

    def poll(self) -> None:
        if self.db_tag is None:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and self.db_tag in cmd:
                cpu = proc_cpu_seconds(pid)
                if math.isnan(cpu):
                    continue
                seen = self.backends.setdefault(pid, [cpu, cpu])
                seen[1] = cpu

    def sample(self) -> dict[str, float]:
        self.poll()
        s = {name: proc_cpu_seconds(pid) for name, pid in self.pids.items()}
        if self.b.redis_proc is not None:
            s["redis"] = proc_cpu_seconds(self.b.redis_proc.pid)
        if self.db_tag is not None:
            s["postgres backends"] = sum(last - first for first, last in self.backends.values())
        busy, total = machine_cpu_seconds()
        s["machine busy"], s["machine total"] = busy, total
        s["bench process"] = time.process_time()
        s["wall"] = time.time()
        return s

    @staticmethod
    def cores(a: dict, b: dict) -> dict[str, float]:
        wall = b["wall"] - a["wall"]
        out = {k: (b[k] - a[k]) / wall for k in a if k not in ("wall", "machine total", "machine busy")}
        out["machine busy"] = (b["machine busy"] - a["machine busy"]) / wall
        return out


def background_cores(seconds: float = 5.0) -> float:
    """Cores the machine keeps busy while this benchmark's processes are idle (other users)."""
    b0, _ = machine_cpu_seconds()
    t0 = time.time()
    time.sleep(seconds)
    b1, _ = machine_cpu_seconds()
    return (b1 - b0) / (time.time() - t0)


def _redis():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def purge(queues: list[str]) -> int:
    from alpha_platform.celery import app

    n = 0
    with app.connection_for_write() as conn:
        for q in queues:
            try:
                n += conn.default_channel.queue_purge(q) or 0
            except Exception:  # noqa: BLE001  (a queue nobody declared yet)
                pass
    return n


def queue_depth(queues: list[str]) -> int:
    r = _redis()
    return sum(r.llen(q) for q in queues)


def wait_idle(timeout: float) -> bool:
    from agents.models import Decision

    deadline = time.time() + timeout
    while time.time() < deadline:
        if not Decision.objects.filter(status=Decision.Status.RUNNING).exists():
            return True
        time.sleep(0.5)
    return False


def wait_worker(proc, log: Path, timeout: float = 60.0) -> None:
    from alpha_platform.celery import app

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited: {log.read_text()[-3000:]}")
        try:
            if app.control.ping(timeout=1.0):
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not answer a ping within {timeout}s: {log.read_text()[-3000:]}")


def send_tick(agent_id: int, interval: int):
    """What django-celery-beat sends for an agent's PeriodicTask (expires = expire_seconds)."""
    from agents.tasks import agent_tick_task

    agent_tick_task.apply_async(args=[agent_id], kwargs={}, expires=interval,
                                headers={"periodic_task_name": f"agent-{agent_id}"})


def send_reconcile():
    from trading.tasks import reconcile_all_task

    reconcile_all_task.apply_async(expires=60, headers={"periodic_task_name": "reconcile-all-accounts"})


def py_spy_record(path: str, pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen([path, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate",
                             "50", "--gil", "--nonblocking", "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)


def summarize_profile(raw: Path, top: int = 25) -> dict:
    """Collapsed stacks -> share of GIL-holding samples per function (self and inclusive),
    the platform's own functions and the libraries' alike."""
    if not raw.exists():
        return {}
    total = 0
    self_c: Counter = Counter()
    incl_c: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            c = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";")[1:]]  # first is the thread
        if not frames:
            continue
        total += c
        self_c[_frame(frames[-1])] += c
        for f in {_frame(f) for f in frames}:
            incl_c[f] += c
    if not total:
        return {"samples": 0}
    return {"samples": total,
            "self": [(f, c / total) for f, c in self_c.most_common(top)],
            "inclusive": [(f, c / total) for f, c in incl_c.most_common(top * 3)]}


def _frame(f: str) -> str:
    f = re.sub(r":\d+\)$", ")", f.strip())
    f = f.replace(str(ROOT) + "/", "").replace(".venv/lib/python3.11/site-packages/", "")
    return re.sub(r"/root/\.pyenv/versions/[^/]+/lib/python3\.\d+/", "", f)


def classify(decisions: list[dict], enq: dict[int, list[float]], interval: int) -> dict:
    """One row per (agent, cycle): ok / late / skipped / error / missing, and the lag."""
    by_agent = defaultdict(list)
    for d in decisions:
        by_agent[d["agent_id"]].append(d)
    counts = Counter()
    lags = []
    for agent_id, times in enq.items():
        ds = sorted(by_agent.get(agent_id, []), key=lambda d: d["started"])
        for t in times:
            end = t + interval
            window = [d for d in ds if t <= d["started"] < end]
            done = [d for d in window if d["status"] in ("held", "executed", "rejected")]
            if done:
                d = done[0]
                lag = d["finished"] - t if d["finished"] else math.inf
                lags.append(lag)
                counts["ok" if d["finished"] and d["finished"] <= end else "late"] += 1
            elif any(d["status"] == "running" for d in window):
                counts["late"] += 1
            elif any(d["status"] == "error" for d in window):
                counts["error"] += 1
            elif any(d["status"] == "skipped" for d in window):
                counts["skipped"] += 1
            else:
                counts["missing"] += 1
    due = sum(len(v) for v in enq.values())
    counts["due"] = due
    counts["missed"] = due - counts["ok"]
    finite = [x for x in lags if math.isfinite(x)]
    return {"counts": dict(counts), "lag_s": summarize(finite)}


def classify_beat(decisions: list[dict], agent_ids: list[int], t0: float, t1: float, interval: int) -> dict:
    """Real beat: no enqueue times, so judge by each agent's decisions in [t0, t1): the gap
    between consecutive non-skipped decisions (a missed tick shows as a gap of ~2 intervals)."""
    by_agent = defaultdict(list)
    for d in decisions:
        by_agent[d["agent_id"]].append(d)
    counts = Counter()
    gaps = []
    expected = (t1 - t0) / interval
    for agent_id in agent_ids:
        ds = sorted((d for d in by_agent.get(agent_id, []) if t0 <= d["started"] < t1), key=lambda d: d["started"])
        good = [d for d in ds if d["status"] in ("held", "executed", "rejected")]
        counts["ok"] += len(good)
        counts["skipped"] += sum(1 for d in ds if d["status"] == "skipped")
        counts["error"] += sum(1 for d in ds if d["status"] == "error")
        for a, c in zip(good, good[1:]):
            gaps.append(c["started"] - a["started"])
        counts["missed"] += max(0, round(expected) - len(good))
    counts["due"] = round(expected) * len(agent_ids)
    return {"counts": dict(counts), "gap_s": summarize(gaps)}


def any_running(agent_ids: list[int]) -> bool:
    from agents.models import Decision

    return Decision.objects.filter(agent_id__in=agent_ids, status="running").exists()


def fetch_decisions(agent_ids: list[int], since: float) -> list[dict]:
    from datetime import UTC, datetime

    from agents.models import Decision

    rows = Decision.objects.filter(agent_id__in=agent_ids, started_at__gte=datetime.fromtimestamp(since - 1, UTC)) \
        .values_list("agent_id", "status", "started_at", "finished_at", "node_timings", "error")
    return [{"agent_id": a, "status": s, "started": st.timestamp(), "finished": f.timestamp() if f else None,
             "total_ms": (nt or {}).get("total"), "error": (e or "")[:120]} for a, s, st, f, nt, e in rows]


def cpu_budget(b: Bench, pop: Population, llm_url: str, symbols: list[str], interval: int, n: int = 20,
               what_if: bool = True) -> dict:
    """CPU per decision (2 s model in the separate fake server process, so none of its CPU is
    counted) and per account reconciliation, run here in threads as a worker runs them:
    the load-independent side of capacity. Then the same with a possible fix patched into
    this process only (what-if)."""
    from django.db import connection

    import trading.tasks as trading_tasks
    from agents.services import agent_decision_run

    set_llm(llm_url)
    if len(pop.agents) < n:
        pop.add(n - len(pop.agents), symbols=symbols, model_name=MODEL, interval=interval)
    agents = pop.agents[:n]

    def run(fn) -> float:
        def call(x):
            try:
                return fn(x)
            finally:
                connection.close()
        with ThreadPoolExecutor(max_workers=n) as ex:
            list(ex.map(call, agents))  # warm-up (connections, graph, caches)
            c0 = time.process_time()
            list(ex.map(call, agents))
            return (time.process_time() - c0) / n * 1000

    def measure() -> tuple[float, float]:
        return (run(lambda a: agent_decision_run(agent=a)),
                run(lambda a: trading_tasks.account_reconcile_task(a.account_id)))

    rows, out = [], {}
    base_dec, base_rec = measure()
    out["as is"] = {"decision_cpu_ms": base_dec, "reconcile_cpu_ms": base_rec}
    # What-if, patched into this process only: reconciliation without its per-account
    # daily-loss watch (the watch could run once per user instead of once per account).
    if what_if:
        original_watch = trading_tasks.daily_loss_watch
        trading_tasks.daily_loss_watch = lambda **kw: None
        try:
            out["- per-account daily_loss_watch"] = dict(zip(("decision_cpu_ms", "reconcile_cpu_ms"), measure()))
        finally:
            trading_tasks.daily_loss_watch = original_watch
    for label, v in out.items():
        dec, rec = v["decision_cpu_ms"], v["reconcile_cpu_ms"]
        v["agents_per_core_decisions_only"] = interval * 1000 / dec
        v["agents_per_core_with_reconcile"] = interval * 1000 / (dec + rec)
        rows.append([label, dec, rec, v["agents_per_core_decisions_only"], v["agents_per_core_with_reconcile"]])
    print_table(f"(b) CPU budget, measured in this process ({n} agents' decisions / reconciliations at once in "
                f"{n} threads; model in another process, its 2 s wait costs no CPU). The second row: a what-if "
                "patched in here only",
                ["variant", "CPU/decision ms", "CPU/reconcile ms", f"agents/core @{interval}s",
                 "with reconcile"], rows)
    print("  one worker process runs Python on about one core at a time (the GIL), so these are its ceilings;\n"
          "  on this 2-core machine the database, Redis and the model server use the same cores")
    return out


def bench_capacity(b: Bench, args, quick: bool) -> None:
    from agents.models import AgentConfig
    from agents.services import agent_pause, agent_resume

    interval = args.interval or (15 if quick else 60)
    cycles = args.cycles or 2 if quick else (args.cycles or 3)
    steps = [int(x) for x in (args.agents or ("20" if quick else "100,250,500,1000,1500,2000")).split(",")]
    concurrencies = [int(x) for x in (args.concurrency or ("16" if quick else "64,128")).split(",")]
    symbols = SYMBOL_SETS[args.symbols_per_agent] if args.symbols_per_agent in SYMBOL_SETS else SYMBOL_SETS[2]
    reconcile = not args.no_reconcile
    spy = args.py_spy or shutil.which("py-spy")
    llm_proc, llm_url, llm_count = spawn_fake_llm(b, args.model_delay)
    pop = Population("cap", per_user=args.agents_per_user)
    cfg = {"interval": interval, "cycles": cycles, "steps": steps, "concurrency": concurrencies,
           "model_delay": args.model_delay, "symbols": symbols, "agents_per_user": args.agents_per_user,
           "reconcile": reconcile, "mode": "real celery beat (its own schedule: agents, reconcile_all, "
                                           "heartbeats)" if args.beat else ("emulated, spread" if args.spread
                                                                     else "emulated, burst"),
           "py_spy": bool(spy), "workers": args.workers}
    print(f"  capacity: {cfg}", flush=True)
    out = {"config": cfg, "per_concurrency": {}}
    b.results["capacity"] = out
    out["cpu_budget"] = cpu_budget(b, pop, llm_url, symbols, interval, n=5 if quick else 20,
                               what_if=not quick)
    rows = []
    for conc in concurrencies:
        env = {"OPENAI_BASE_URL": llm_url + "/v1", "OPENAI_API_KEY": KEY}
        workers, logs = [], []
        for w in range(args.workers):
            cmd = worker_command(conc, f"bench{conc}-{w}-{os.getpid()}@%h")
            logs.append(b.tmp / f"worker-{conc}-{w}.log")
            workers.append(b.spawn(cmd, env=env, log=logs[-1].name))
        queues = queues_of(cmd)
        worker, log = workers[0], logs[0]
        beat = None
        per_n = {}
        out["per_concurrency"][str(conc)] = {"command": " ".join(cmd), "workers": args.workers, "per_n": per_n}
        try:
            for wp, wl in zip(workers, logs):
                wait_worker(wp, wl)
            print(f"  {args.workers} worker(s) up: {' '.join(cmd[1:])}", flush=True)
            for n in steps:
                if len(pop.agents) < n:
                    t0 = time.time()
                    pop.add(n - len(pop.agents), symbols=symbols, model_name=MODEL, interval=interval)
                    print(f"  created agents: {len(pop.agents)} ({time.time() - t0:.0f} s)", flush=True)
                active = pop.agents[:n]
                ids = [a.pk for a in active]
                if args.beat:
                    # Exactly N active agents: the rest paused (their PeriodicTasks disabled).
                    for a in pop.agents:
                        a.refresh_from_db()
                        want = a.pk in set(ids)
                        if want and a.status != AgentConfig.Status.ACTIVE:
                            agent_resume(agent=a)
                        elif not want and a.status == AgentConfig.Status.ACTIVE:
                            agent_pause(agent=a, reason="bench: not in this step")
                else:
                    AgentConfig.objects.exclude(pk__in=ids).update(status=AgentConfig.Status.PAUSED)
                purge(queues)
                wait_idle(90)
                # Warm the worker's threads (graph compiled, connections open) on this N.
                if not per_n:
                    for a in active[:conc]:
                        send_tick(a.pk, interval)
                    time.sleep(args.model_delay + 1)
                    wait_idle(90)
                background = background_cores()
                sampler = Sampler(b, {**{f"worker{w}": wp.pid for w, wp in enumerate(workers)},
                                      "fake model server": llm_proc.pid})
                start = time.time()
                s0 = sampler.sample()
                enq: dict[int, list[float]] = {i: [] for i in ids}
                profile_file = b.tmp / f"pyspy-{conc}-{n}.txt"
                spy_proc = py_spy_record(spy, worker.pid, interval * 0.9, profile_file) if spy else None
                max_depth = 0
                if args.beat:
                    beat = beat or b.spawn(beat_command(), env=env, log="beat.log")
                    end = start + cycles * interval
                    while time.time() < end:
                        max_depth = max(max_depth, queue_depth(queues))
                        sampler.poll()
                        time.sleep(1)
                    t_end = time.time()
                else:
                    for k in range(cycles):
                        t_cycle = start + k * interval
                        while time.time() < t_cycle:
                            max_depth = max(max_depth, queue_depth(queues))
                            sampler.poll()
                            time.sleep(min(1.0, max(0.0, t_cycle - time.time())))
                        if reconcile:
                            send_reconcile()
                        for j, agent_id in enumerate(ids):
                            if args.spread:
                                due = t_cycle + interval * j / len(ids)
                                while time.time() < due:
                                    time.sleep(min(0.05, max(0.0, due - time.time())))
                            enq[agent_id].append(time.time())
                            send_tick(agent_id, interval)
                        max_depth = max(max_depth, queue_depth(queues))
                    t_end = start + cycles * interval
                    while time.time() < t_end + 1:
                        max_depth = max(max_depth, queue_depth(queues))
                        sampler.poll()
                        time.sleep(0.5)
                    # The last ticks (spread: just before t_end) have until one interval after
                    # they were sent: do not judge decisions still running inside their window.
                    last_sent = max((t for ts in enq.values() for t in ts), default=t_end)
                    while time.time() < last_sent + interval and any_running(ids):
                        sampler.poll()
                        time.sleep(0.5)
                s1 = sampler.sample()
                if spy_proc is not None:
                    try:
                        spy_proc.wait(interval + 30)
                    except subprocess.TimeoutExpired:
                        spy_proc.kill()
                decisions = fetch_decisions(ids, start)
                if args.beat:
                    # Beat fires an agent first one interval after its task changed: judge the
                    # last (cycles - 1) intervals.
                    res = classify_beat(decisions, ids, start + interval, t_end, interval)
                else:
                    res = classify(decisions, enq, interval)
                cores = Sampler.cores(s0, s1)
                cores["worker"] = sum(v for k, v in cores.items() if k.startswith("worker"))
                expired = sum(len(re.findall(r"expired", wl.read_text(errors="replace"), re.I)) for wl in logs)
                totals = [d["total_ms"] for d in decisions if d["total_ms"] and d["status"] != "skipped"]
                errors = Counter(re.sub(r"\d+", "#", d["error"]) for d in decisions if d["status"] == "error")
                res["errors"] = dict(errors.most_common(5))
                res.update(cores=cores, background_cores_before=background, max_queue_depth=max_depth, expired_log_lines=expired,
                           decision_total_ms=summarize(totals), load=load(),
                           profile=summarize_profile(profile_file) if spy_proc is not None else {})
                per_n[str(n)] = res
                c = res["counts"]
                lag = res.get("lag_s") or res.get("gap_s")
                rows.append([conc, n, c.get("due", 0), c.get("ok", 0), c.get("skipped", 0), c.get("missed", 0),
                             lag["median"], lag["p99"], res["decision_total_ms"]["median"] / 1000,
                             cores.get("worker", math.nan), cores.get("postgres backends", math.nan),
                             cores.get("fake model server", math.nan), cores["machine busy"], background, max_depth,
                             res["load"][0]])
                print(f"  C={conc} N={n}: due {c.get('due')} ok {c.get('ok', 0)} missed {c.get('missed', 0)} "
                      f"(late {c.get('late', 0)}, skipped {c.get('skipped', 0)}, error {c.get('error', 0)}, "
                      f"missing {c.get('missing', 0)}); lag p50 {lag['median']:.1f}s p99 {lag['p99']:.1f}s; "
                      f"worker {cores.get('worker', 0):.2f} cores, machine {cores['machine busy']:.2f}; "
                      f"queue max {max_depth}; load {res['load'][0]}", flush=True)
                for text, count in res["errors"].items():
                    print(f"    {count} x error: {text}", flush=True)
                if c.get("missed", 0) and not args.all_steps:
                    break
        finally:
            if beat is not None:
                b.stop(beat)
            for wp in workers:
                b.stop(wp)
            purge(queues)
            wait_idle(5)
    out["served_model_requests"] = int(llm_count.read_text()) if llm_count.exists() else None
    print_table(f"(b) capacity: agents on a {interval} s interval, model {args.model_delay:g} s, {cycles} cycles per N, "
                f"{cfg['mode']}{'' if args.beat else (', + reconcile_all each cycle' if reconcile else '')}; "
                f"{'one worker' if args.workers == 1 else f'{args.workers} worker processes'} "
                f"(--pool threads); {b.results.get('database')}",
                ["C", "agents N", "ticks due", "on time", "skipped", "missed", "lag p50 s", "lag p99 s",
                 "decision p50 s", "worker cores", "pg cores", "model srv cores", "machine busy", "busy before*",
                 "max queue", "load"], rows)
    print("  * cores the machine was busy with in the 5 s before the step while this benchmark was idle (other users)")
    if args.beat:
        print("  (real beat: 'lag' columns are the gaps between an agent's consecutive decisions)")
    best = {}
    for conc, per in out["per_concurrency"].items():
        good = [int(n) for n, r in per["per_n"].items() if r["counts"].get("missed", 1) == 0]
        bad = [int(n) for n, r in per["per_n"].items() if r["counts"].get("missed", 0) > 0]
        best[conc] = {"largest_n_no_missed": max(good) if good else 0, "smallest_n_missed": min(bad) if bad else None}
    out["best"] = best
    print("  largest N with no missed tick: " + ", ".join(
        f"C={c}: {v['largest_n_no_missed']} (first miss at {v['smallest_n_missed']})" for c, v in best.items()))
    for conc, per in out["per_concurrency"].items():
        for n, r in per["per_n"].items():
            prof = r.get("profile") or {}
            if prof.get("samples"):
                print_table(f"(b) worker profile C={conc} N={n}: py-spy --gil, {prof['samples']} samples in the first "
                            "cycle; top functions by own samples (share of GIL-holding time)",
                            ["function", "share"], prof["self"][:15])
                platform = [(f, s) for f, s in prof["inclusive"] if not f.startswith(("<", "threading", "celery"))
                            and ("(agents/" in f or "(exchanges/" in f or "(trading/" in f or "(risk/" in f
                                 or "(alpha_platform/" in f or "asgiref" in f or "openai/_client" in f
                                 or "httpx/_client" in f)]
                print_table("   platform and client functions, inclusive share", ["function", "share"], platform[:20])


# --------------------------------------------------------------------------- main
def main() -> None:
    args = parse()
    quick = args.quick
    only = args.only or list(ONLY)
    with Bench("agents", args, extra_symbols=True) as b:
        b.header("agents: decision time, capacity, prompt tokens, market-data calls")
        b.results["parts"] = only
        if "decision" in only:
            bench_decision(b, args.decisions or (10 if quick else 60))
        if "tokens" in only:
            bench_tokens(b, args.token_decisions or (4 if quick else 8))
        if "market-data" in only:
            counts = [int(x) for x in args.agent_counts.split(",")]
            if quick and args.agent_counts == "1,10,50,100":
                counts = [1, 10, 30]
            bench_market_data_calls(b, counts, args.threads)
        if "capacity" in only:
            bench_capacity(b, args, quick)
        variant = "+".join(only) if args.only else ""
        if "capacity" in only:
            cfg = b.results["capacity"]["config"]
            variant += (f"-{b.results.get('database')}-C{'_'.join(map(str, cfg['concurrency']))}"
                        + ("" if cfg["reconcile"] else "-noreconcile") + ("-beat" if args.beat else "")
                        + (f"-W{args.workers}" if args.workers > 1 else "")
                        + ("-spread" if args.spread else ""))
        b.write_results(variant)


if __name__ == "__main__":
    main()
