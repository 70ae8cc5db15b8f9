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

from _agents.capacity import (
    bench_capacity,
)
from _agents.inprocess import (
    bench_decision,
    bench_market_data_calls,
    bench_tokens,
)
from _common import (
    Bench,
    base_parser,
)

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
