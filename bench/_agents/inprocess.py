"""The in-process parts: (a) the platform's own time per decision, (c) prompt tokens per
symbol, (d) venue market-data calls per tick as agents are added."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from _common import (
    Bench,
    Probe,
    QueryCounter,
    load,
    median_of,
    print_table,
    ratio,
    summarize,
)

from .base import (
    CLOSE_ARGS,
    HOLD_ARGS,
    INSTRUCTIONS,
    KEY,
    MODEL,
    OPEN_ARGS,
    SYMBOL_SETS,
    Population,
    set_llm,
)
from .workers import (
    redis_commands,
)


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
    from agents.graph.tokens import (
        estimate_message_tokens,
        estimate_prompt_tokens,
        estimate_tools_tokens,
    )
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
