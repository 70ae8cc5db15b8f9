"""Part (b): how many agents one Celery worker keeps on their interval with no missed tick
when the model takes 2 s, N stepped up until a tick is missed; the CPU budget per decision."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from _common import (
    Bench,
    load,
    print_table,
    summarize,
)

from .base import (
    KEY,
    MODEL,
    SYMBOL_SETS,
    Population,
    set_llm,
)
from .profiling import (
    classify,
    classify_beat,
    py_spy_record,
    summarize_profile,
)
from .workers import (
    Sampler,
    background_cores,
    beat_command,
    purge,
    queue_depth,
    queues_of,
    send_reconcile,
    send_tick,
    spawn_fake_llm,
    wait_idle,
    wait_worker,
    worker_command,
)


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
