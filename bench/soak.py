"""Soak and fault test: the real processes, N agents on the paper venue, M minutes, faults.

    .venv/bin/python bench/soak.py --quick          # 20 agents, 2 minutes, ticks every 15 s
    .venv/bin/python bench/soak.py                  # 200 agents, 10 minutes, ticks every 60 s
    .venv/bin/python bench/soak.py --agents 400 --workers 2 --concurrency 8 --no-redis-restart

What runs, each as its own OS process group (so each can be SIGKILLed): an embedded Redis
(scripts/embedded_redis.py, on a port of its own, data in the temp dir so it can be
restarted with its data), daphne (the ASGI app; /healthz is polled every few seconds),
one or more Celery workers (threads pool, consuming decisions, reconcile and celery) and
Celery beat (DatabaseScheduler). The database is PostgreSQL when one is available (a
throw-away database beside ``--database-url``, else beside the server .ci/postgres.sh
runs, started if needed) or SQLite in the temp dir (``--sqlite``; under 200 agents SQLite's
single writer is the bottleneck). Settings are production's (ALPHA_ENV=production, JSON
logs), so the same settings a deployment uses are the ones measured.

Agents: ``--agents`` (builtin:trend, 2 symbols each, on paper accounts, 10 agents per
user, one account per agent unless ``--agents-per-account``), risk limits relaxed through
``risk_profile_update`` so orders happen. Their first ticks are staggered evenly over one
interval (as agents created at different times would be).

Workers: ``--workers`` processes x ``--concurrency`` threads, each consuming every queue
(``--layout shared``, the default: on a small machine one process per core), or decision
workers plus one reconcile/default worker as docker-compose.yml lays them out (``--layout
split``). A supervisor thread restarts web, worker and beat processes that exit, after
``--restart-delay`` seconds, as systemd's Restart=always and compose's restart policy do;
every such exit is reported.

Faults, on a schedule (each can be turned off):
  kill-worker    when a Decision is 'running', SIGKILL the worker running it; a new worker
                 starts after --restart-delay seconds (what systemd/compose would do).
  redis-restart  stop Redis (SIGTERM: it saves; --redis-kill-signal KILL for a crash), wait
                 --redis-down seconds, start it again on the same port and data dir. Nothing
                 else is restarted: the platform must recover by itself.
  venue-outage   ``manage.py paper_outage --seconds N``: every paper call fails inside the
                 adapters' Guard, so the accounts' circuit breakers open and close again.

Reported (a table, and JSON in var/bench/soak.json, or soak-quick.json):
  ticks due      per agent, from its schedule as beat runs it (next = last send + interval)
                 up to 10 s before beat is stopped; ticks sent (beat's log); decisions recorded
                 (Decision rows of every status: recorded, held, skipped, error, and 'running'
                 ones left by a killed worker); LOST = due ticks that never ran, by cause (not
                 sent by beat / sent but no Decision row, e.g. held by a killed worker /
                 expired in the queue, which the worker records as a skipped Decision but is
                 still a tick that did not run), and where they fell (which fault window).
  tick lag       scheduled time -> Decision.started_at: p50 / p99 / max, with beat's own delay
                 and the queue's.
  duplicates     client order ids that appear twice at the venue (the paper books, parsed
                 from exchanges_paperaccountstate.book) or in trading_order; venue orders the
                 platform does not know; orders left PENDING/UNKNOWN.
  per fault      what happened (see the table).
Everything started is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import (
    drop_temp_database,
    machine_info,
)
from _common import proc_cpu_seconds as proc_cpu
from _soak.base import (
    Proc,
    fmt,
    iso,
    now,
)
from _soak.faults import FaultsMixin
from _soak.report import ReportMixin
from _soak.stack import StackMixin


# --------------------------------------------------------------------------- the soak
class Soak(StackMixin, FaultsMixin, ReportMixin):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="soak-"))
        self.procs: dict[str, Proc] = {}
        self.workers: list[Proc] = []
        self.temp_db: tuple[str, str] | None = None
        self.events: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        self.load: list[tuple[float, float]] = []
        self.results: dict[str, Any] = {"benchmark": "soak", "quick": bool(args.quick), "machine": machine_info(),
                                        "started_at": iso(now()), "load_at_start": list(os.getloadavg())}
        self._stop_monitors = threading.Event()
        self._closed = False
        self.cpu: dict[str, float] = defaultdict(float)

    # -- monitors ----------------------------------------------------------------------
    def _monitor(self) -> None:
        while not self._stop_monitors.is_set():
            t = now()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=5) as r:
                    code, body = r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                code = e.code
                try:
                    body = json.loads(e.read())
                except ValueError:
                    body = {}
            except (OSError, ValueError) as e:
                code, body = 0, {"error": type(e).__name__}
            self.health.append({"t": t, "code": code, "failed": body.get("failed"), "unknown": body.get("unknown"),
                                "lag": ((body.get("checks") or {}).get("worker") or {}).get("queues", {})
                                .get("decisions", {}).get("lag_seconds")})
            self.load.append((t, os.getloadavg()[0]))
            self._stop_monitors.wait(self.args.health_every)

    def _sample_cpu(self) -> None:
        for name, proc in self.procs.items():
            if proc.alive():
                value = proc_cpu(proc.pid)
                if not math.isnan(value):
                    self.cpu[f"{name}@{proc.pid}"] = value

    def event(self, kind: str, **fields: Any) -> None:
        fields.update(kind=kind, t=now())
        self.events.append(fields)
        rel = fields["t"] - getattr(self, "t0", fields["t"])
        print(f"[soak] t={rel:+7.1f}s {kind} " + " ".join(f"{k}={v}" for k, v in fields.items()
                                                          if k not in ("kind", "t")), flush=True)

    # -- the run -----------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        self.db_url = self.database_url()
        self.env = self.environment()
        self.results["settings"] = {
            "agents": a.agents, "minutes": a.minutes, "interval_seconds": a.interval, "layout": a.layout,
            "workers": a.workers, "concurrency": a.concurrency,
            "ops_workers": 1 if a.layout == "split" else 0, "ops_concurrency": a.ops_concurrency, "agents_per_user": a.agents_per_user,
            "agents_per_account": a.agents_per_account, "symbols_per_agent": 2, "model": "builtin:trend",
            "reconcile_interval_seconds": a.reconcile_interval or 60, "alpha_env": "production",
            "faults": {"kill_worker": not a.no_kill_worker, "redis_restart": not a.no_redis_restart,
                       "venue_outage": not a.no_venue_outage},
            "outage_seconds": a.outage_seconds, "redis_down_seconds": a.redis_down,
            "redis_kill_signal": a.redis_kill_signal.upper(), "restart_delay_seconds": a.restart_delay,
        }
        workers = (f"{a.workers} decision worker(s) x {a.concurrency} threads + 1 reconcile/default worker x "
                   f"{a.ops_concurrency}" if a.layout == "split" else f"{a.workers} worker(s) x {a.concurrency} threads")
        print(f"== soak: {a.agents} agents, {a.minutes:g} min, ticks every {a.interval}s, {workers}; tmp {self.tmp}",
              flush=True)
        self.start_redis()
        self.django()
        print(f"[soak] database: {self.results['database']} {self.results['database_version']}", flush=True)
        self.agent_ids = self.create_agents()
        print(f"[soak] {len(self.agent_ids)} agents created in {self.results['setup_seconds']}s", flush=True)
        self.start_processes()
        self._wait_worker_ready()
        self.t0 = now() + a.lead_in
        self.first_due = self.stagger(self.agent_ids, self.t0)
        self.start_beat()
        threading.Thread(target=self._monitor, daemon=True).start()
        threading.Thread(target=self._supervise, daemon=True).start()
        duration = a.minutes * 60
        self.t_end = self.t0 + duration
        schedule = []
        # Faults at 20%, 40% and 60% of the run (12/28/42% quick, where the kill lands in
        # the agents' first ticks, which open positions, so orders are in flight): each
        # settles before the next, and the outage ends with time to recover.
        at = (0.12, 0.28, 0.42) if a.quick else (0.2, 0.4, 0.6)
        if not a.no_kill_worker:
            schedule.append((self.t0 + duration * at[0], self.fault_kill_worker))
        if not a.no_redis_restart:
            schedule.append((self.t0 + duration * at[1], self.fault_redis_restart))
        if not a.no_venue_outage:
            schedule.append((self.t0 + duration * at[2], self.fault_venue_outage))
        self.event("run_start", t0=iso(self.t0), until=iso(self.t_end))
        last_report = now()
        while now() < self.t_end:
            if schedule and now() >= schedule[0][0]:
                _, fault = schedule.pop(0)
                fault()
                continue
            if now() - last_report >= 60:
                last_report = now()
                self._progress()
            self._sample_cpu()
            time.sleep(0.5)
        # Stop the schedule, then let the queue drain: every tick sent so far may still run.
        self.procs["beat"].intentional = True
        self.t_beat_stop = now()  # when beat is told to stop (its shutdown may take a while)
        self.procs["beat"].stop()
        self.event("beat_stopped")
        self._drain()
        self._sample_cpu()
        self._stop_monitors.set()
        self.results["cpu_seconds"] = self._cpu_summary()
        for proc in [self.procs["web"], *self.workers]:
            proc.intentional = True
            proc.stop(timeout=30)
        self.collect()

    def _wait_worker_ready(self) -> None:
        deadline = now() + 180
        while now() < deadline:
            if all(p.log.exists() and b"ready." in p.log.read_bytes() for p in self.workers):
                return
            time.sleep(0.5)
        raise RuntimeError("the workers did not start within 180 s; see " + str(self.tmp))

    def _progress(self) -> None:
        from django.db.models import Count

        from agents.models import Decision

        counts = dict(Decision.objects.values_list("status").annotate(n=Count("id")))
        last = self.health[-1] if self.health else {}
        print(f"[soak] t={now() - self.t0:+7.1f}s decisions {sum(counts.values())} {counts} healthz={last.get('code')} "
              f"failed={last.get('failed')} load={os.getloadavg()[0]:.2f}", flush=True)

    def _drain(self) -> None:
        import redis as redis_lib

        from agents.models import Decision

        client = redis_lib.Redis.from_url(self.env["REDIS_URL"])
        stuck_before = set(Decision.objects.filter(status="running", started_at__lt=dt.datetime.fromtimestamp(
            now() - self.args.interval * 3, dt.UTC)).values_list("pk", flat=True))
        deadline = now() + self.args.interval + 60
        while now() < deadline:
            queued = sum(client.llen(k) for k in client.scan_iter("decisions*") if client.type(k) == b"list")
            running = Decision.objects.filter(status="running").exclude(pk__in=stuck_before).filter(
                started_at__gte=dt.datetime.fromtimestamp(now() - 300, dt.UTC)).count()
            if queued == 0 and running == 0:
                break
            time.sleep(1)
        time.sleep(2)
        self.event("drained", seconds=round(now() - self.t_beat_stop, 1))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_monitors.set()
        for name in ["beat", "web", *[p.name for p in self.workers], "redis"]:
            proc = self.procs.get(name)
            if proc is not None:
                try:
                    proc.stop(timeout=20)
                except Exception as exc:
                    print(f"[soak] could not stop {name}: {exc}", file=sys.stderr)
        for proc in self.workers:
            proc.stop(timeout=5)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self.temp_db is not None:
            drop_temp_database(*self.temp_db, tag="soak")
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 agents, 2 minutes, ticks every 15 s")
    p.add_argument("--agents", type=int, default=None, help="default 200 (20 with --quick)")
    p.add_argument("--minutes", type=float, default=None, help="default 10 (2 with --quick)")
    p.add_argument("--interval", type=int, default=None, help="seconds between an agent's ticks (60; 15 quick)")
    p.add_argument("--agents-per-user", type=int, default=10)
    p.add_argument("--agents-per-account", type=int, default=1)
    p.add_argument("--layout", choices=["split", "shared"], default="shared",
                   help="shared: every worker consumes every queue (on a small machine: one worker "
                        "process per core); split: decision workers plus one reconcile/default worker, "
                        "as docker-compose.yml lays them out")
    p.add_argument("--workers", type=int, default=2, help="worker processes (decision workers when split)")
    p.add_argument("--concurrency", type=int, default=8, help="threads per worker (per decision worker)")
    p.add_argument("--ops-concurrency", type=int, default=8, help="threads of the reconcile/default worker")
    p.add_argument("--database-url", default=None, help="PostgreSQL server to create the throw-away database on")
    p.add_argument("--sqlite", action="store_true", help="SQLite in the temp dir instead of PostgreSQL")
    p.add_argument("--no-start-postgres", action="store_true", help="do not run .ci/postgres.sh")
    p.add_argument("--redis-port", type=int, default=None)
    p.add_argument("--reconcile-interval", type=float, default=None, help="RECONCILE_INTERVAL_SECONDS (60)")
    p.add_argument("--no-kill-worker", action="store_true")
    p.add_argument("--no-redis-restart", action="store_true")
    p.add_argument("--no-venue-outage", action="store_true")
    p.add_argument("--outage-seconds", type=float, default=None, help="venue outage length (90; 35 quick)")
    p.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down")
    p.add_argument("--redis-kill-signal", default="TERM", choices=["TERM", "KILL", "term", "kill"])
    p.add_argument("--restart-delay", type=float, default=5.0, help="seconds before the killed worker is replaced")
    p.add_argument("--lead-in", type=float, default=20.0, help="seconds from beat start to the first tick")
    p.add_argument("--health-every", type=float, default=3.0, help="seconds between /healthz polls")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, SQLite, Redis data)")
    args = p.parse_args(argv)
    quick = args.quick
    args.agents = args.agents or (20 if quick else 200)
    args.minutes = args.minutes or (2 if quick else 10)
    args.interval = args.interval or (15 if quick else 60)
    args.outage_seconds = args.outage_seconds or (35 if quick else 90)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak = Soak(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        soak.run()
        soak.report()
        t, o = soak.results["ticks"], soak.results["orders"]
        ok = t["lost"] == 0 and o["duplicate_client_ids_at_venue"] == 0 and o["duplicate_client_ids_in_db"] == 0
        print(f"\nRESULT: {'PASS' if ok else 'FAIL'}  lost ticks {t['lost']} of {t['due']}, duplicate orders "
              f"{o['duplicate_client_ids_at_venue'] + o['duplicate_client_ids_in_db']}, tick lag p99 "
              f"{fmt(soak.results['tick_lag_seconds']['due_to_started']['p99'])}s")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\n[soak] interrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        soak.close()


if __name__ == "__main__":
    sys.exit(main())
