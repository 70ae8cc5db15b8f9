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
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "var" / "bench"
PYTHON = sys.executable
BIN = Path(sys.executable).parent
for _p in (ROOT, ROOT / "scripts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

DEFAULT_PG = "postgres://alpha:alpha@127.0.0.1:5432/alpha"
BEAT_STOP_MARGIN = 10.0
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


# --------------------------------------------------------------------------- small helpers
def now() -> float:
    return time.time()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def stats(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values), "mean": statistics.fmean(values)}


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows) if rows else 10
    print(f"\n{title}")
    print("  " + "-" * (width + 40))
    for key, value in rows:
        print(f"  {key.ljust(width)}  {fmt(value)}")
    sys.stdout.flush()


from _common import free_port  # noqa: E402  (bench/ is on sys.path: the script's own folder)
from _common import create_temp_database, drop_temp_database, machine_info  # noqa: E402
from _common import proc_cpu_seconds as proc_cpu  # noqa: E402


def iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- processes
class Proc:
    """One child in its own process group, logging to a file (appended across restarts)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, role: str = "") -> None:
        self.name, self.args, self.env, self.log, self.role = name, args, env, log, role
        self.popen: subprocess.Popen | None = None
        self.starts: list[float] = []
        self.intentional = False  # stopped on purpose: the supervisor leaves it down

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        out = open(self.log, "ab")
        self.popen = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        out.close()
        self.starts.append(now())
        return self

    def send_signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        if not self.alive():
            return
        self.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    if not path.exists():
        return lines
    with open(path, "rb") as f:
        for raw in f:
            if not raw.startswith(b"{"):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            try:
                line["_t"] = dt.datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp()
            except (KeyError, ValueError, AttributeError):
                continue
            lines.append(line)
    return lines


# --------------------------------------------------------------------------- the soak
class Soak:
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

    # -- set-up ------------------------------------------------------------------------
    def database_url(self) -> str:
        args = self.args
        if args.sqlite:
            return f"sqlite:///{self.tmp / 'soak.sqlite3'}"
        url = args.database_url
        if url is None:
            if not self._pg_ready() and (ROOT / ".ci" / "postgres.sh").exists() and os.geteuid() == 0 \
                    and not args.no_start_postgres:
                print("[soak] starting PostgreSQL with .ci/postgres.sh ...", flush=True)
                subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], check=False)
            if self._pg_ready():
                url = DEFAULT_PG
        if url is None:
            print("[soak] no PostgreSQL: SQLite in the temp dir (its single writer limits the figures)")
            return f"sqlite:///{self.tmp / 'soak.sqlite3'}"
        name = f"soak_{os.getpid()}"
        admin, db_url = create_temp_database(url, name)
        self.temp_db = (admin, name)
        return db_url

    @staticmethod
    def _pg_ready() -> bool:
        try:
            import psycopg

            with psycopg.connect(DEFAULT_PG.replace("postgres://", "postgresql://"), connect_timeout=3):
                return True
        except Exception:
            return False

    def environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        a = self.args
        self.redis_port = a.redis_port or free_port()
        self.web_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="alpha_platform.settings",
            ALPHA_ENV="production",
            DJANGO_SECRET_KEY=os.urandom(32).hex(),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
            CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            DATABASE_URL=self.db_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            ALPHA_VAR_DIR=str(self.tmp / "var"),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            DEBUG="false",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        if a.reconcile_interval:
            env["RECONCILE_INTERVAL_SECONDS"] = str(a.reconcile_interval)
        return env

    def start_redis(self) -> None:
        import embedded_redis

        # Configured as a production Redis for Celery would be (and as docker-compose.yml
        # runs it): append-only file, fsync every second, so a restart keeps the queues,
        # the unacknowledged messages and the locks.
        proc = self.procs.get("redis") or Proc(
            "redis", [embedded_redis.redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                      "--dir", str(self.tmp / "redis"), "--appendonly", "yes", "--appendfsync", "everysec",
                      "--save", "60", "1", "--loglevel", "notice"], self.env, self.tmp / "redis.log")
        self.procs["redis"] = proc
        (self.tmp / "redis").mkdir(exist_ok=True)
        proc.start()
        embedded_redis.wait_ready(self.redis_port, timeout=30)

    def start_worker(self, name: str, queues: str, concurrency: int, role: str) -> Proc:
        proc = Proc(name, [PYTHON, "-m", "celery", "-A", "alpha_platform", "worker", "--pool", "threads",
                           "--concurrency", str(concurrency), "-Q", queues, "--loglevel", "INFO",
                           "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"],
                    self.env, self.tmp / f"{name}.log", role=role)
        proc.start()
        self.workers.append(proc)
        self.procs[name] = proc
        return proc

    def start_processes(self) -> None:
        a = self.args
        self.procs["web"] = Proc("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.web_port),
                                         "alpha_platform.asgi:application"], self.env, self.tmp / "web.log").start()
        if a.layout == "split":
            # As deployed (docker-compose.yml, deploy/systemd): decision workers, and one
            # worker for reconciliation and the default queue.
            for i in range(a.workers):
                self.start_worker(f"decisions{i}", "decisions", a.concurrency, "decisions")
            self.start_worker("ops0", "reconcile,celery", a.ops_concurrency, "ops")
        else:  # as `make run`: every worker consumes every queue
            for i in range(a.workers):
                self.start_worker(f"worker{i}", "decisions,reconcile,celery", a.concurrency, "decisions")

    def _supervise(self) -> None:
        """What systemd's Restart=always (RestartSec=5) and compose's restart policy do:
        a web, worker or beat process that exits unasked is started again after
        --restart-delay seconds. Each restart is reported, with the process's last error."""
        down_since: dict[str, float] = {}
        while not self._stop_monitors.is_set():
            for name in ["web", "beat", *[p.name for p in self.workers]]:
                proc = self.procs.get(name)
                if proc is None or proc.popen is None or proc.intentional or proc.alive():
                    down_since.pop(name, None)
                    continue
                if name not in down_since:
                    down_since[name] = now()
                    self.event("process_exited", proc=name, exit_code=proc.popen.returncode,
                               last_error=self._last_error(proc.log))
                elif now() - down_since[name] >= self.args.restart_delay:
                    proc.start()
                    down_since.pop(name, None)
                    self.event("process_restarted", proc=name, by="supervisor")
            self._stop_monitors.wait(0.5)

    @staticmethod
    def _last_error(log: Path) -> str:
        try:
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - 100_000))
                lines = f.read().splitlines()
        except OSError:
            return ""
        for raw in reversed(lines):
            if raw.startswith(b"{") and (b'"CRITICAL"' in raw or b'"ERROR"' in raw):
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                return f"{line.get('level')} {line.get('logger')}: {line.get('message', '')[:200]}"
        return ""

    def start_beat(self) -> None:
        self.procs["beat"] = Proc("beat", [PYTHON, "-m", "celery", "-A", "alpha_platform", "beat", "--loglevel", "INFO",
                                           "--pidfile=", "--schedule", str(self.tmp / "beat-schedule")],
                                  self.env, self.tmp / "beat.log").start()

    def django(self) -> None:
        os.environ.update(self.env)
        os.environ["LOG_LEVEL"] = "WARNING"
        os.environ["LOG_FORMAT"] = "plain"
        os.environ["REALTIME_ENABLED"] = "false"  # the set-up's own pushes are noise
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django.db import connection

        self.results["database"] = connection.vendor
        self.results["database_version"] = (
            ".".join(map(str, connection.Database.sqlite_version_info)) if connection.vendor == "sqlite"
            else str(connection.cursor().connection.info.server_version))

    def create_agents(self) -> list[int]:
        from decimal import Decimal

        from django.contrib.auth import get_user_model

        from agents.services import agent_create
        from alpha_platform.common.config import get_config
        from exchanges.services import exchange_account_create
        from risk.models import RiskProfile
        from risk.services import risk_profile_update

        a = self.args
        User = get_user_model()
        symbols = sorted(get_config().symbol_map("paper"))
        ids: list[int] = []
        account = None
        t0 = now()
        for i in range(a.agents):
            if i % a.agents_per_user == 0:
                user = User.objects.create_user(f"soak{i // a.agents_per_user:04d}", f"s{i}@example.invalid",
                                                "soak-pw-0123456789")
                risk_profile_update(profile=RiskProfile.objects.get(user=user), max_orders_per_minute=10000,
                                    max_orders_per_hour=1_000_000, loss_cooldown_seconds=0, max_open_positions=500,
                                    daily_loss_limit_percent=Decimal("1"), max_total_exposure_percent=Decimal("1"),
                                    max_exchange_exposure_percent=Decimal("1"), allowed_symbols=symbols)
                account = None
            if account is None or i % a.agents_per_account == 0:
                account = exchange_account_create(owner=user, name=f"paper-{i}", venue="paper", credentials={})
            pair = [SYMBOLS[i % 3], SYMBOLS[(i + 1) % 3]]
            agent = agent_create(owner=user, account=account, name=f"soak-agent-{i}", symbols=pair,
                                 interval_seconds=a.interval, model_name="builtin:trend")
            ids.append(agent.pk)
        self.results["setup_seconds"] = round(now() - t0, 1)
        return ids

    def stagger(self, agent_ids: list[int], t0: float) -> dict[int, float]:
        """First tick of agent i at t0 + i/N of an interval: beat runs an interval schedule
        from last_run_at, so last_run_at = first - interval."""
        from django.db import transaction
        from django_celery_beat.models import PeriodicTask, PeriodicTasks

        interval = self.args.interval
        first: dict[int, float] = {}
        with transaction.atomic():
            for i, agent_id in enumerate(agent_ids):
                due = t0 + interval * i / len(agent_ids)
                first[agent_id] = due
                PeriodicTask.objects.filter(name=f"agent-{agent_id}").update(
                    last_run_at=dt.datetime.fromtimestamp(due - interval, dt.UTC))
            PeriodicTasks.update_changed()
        return first

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

    # -- faults ------------------------------------------------------------------------
    def fault_kill_worker(self) -> None:
        """SIGKILL the worker in the middle of a decision: preferably while one of its
        orders is PENDING (saved, being sent to the venue: the case where a retry could
        double-place), else while a decision is running."""
        from agents.models import Decision
        from trading.models import Order

        wait = max(60, self.args.interval * 2)
        start = now()
        while now() < start + wait:
            target = None
            pending = list(Order.objects.filter(status="PENDING", source="agent",
                                                client_order_id__startswith="at-d").values_list("client_order_id",
                                                                                                flat=True)[:1])
            if pending:
                decision_id = int(pending[0][4:].split("-")[0])
                agent_id = Decision.objects.filter(pk=decision_id).values_list("agent_id", flat=True).first()
                target = (decision_id, agent_id, "order PENDING")
            elif now() > start + wait * 0.6:
                running = list(Decision.objects.filter(
                    status="running", trigger="schedule",
                    started_at__gte=dt.datetime.fromtimestamp(now() - 20, dt.UTC)).order_by("-started_at")
                    .values_list("pk", "agent_id")[:1])
                if running:
                    target = (*running[0], "decision running")
            if target and target[1] is not None:
                decision_id, agent_id, why = target
                victim = self._worker_running(agent_id)
                starts_before = len(victim.starts)
                victim.send_signal(signal.SIGKILL)
                t_kill = now()
                victim.popen.wait(10)
                still = Decision.objects.filter(pk=decision_id).values_list("status", flat=True).first()
                in_flight = list(Order.objects.filter(status="PENDING").values_list("client_order_id", flat=True))
                self.event("kill_worker", worker=victim.name, pid=victim.pid, decision=decision_id, agent=agent_id,
                           when=why, decision_status_after_kill=still, orders_pending_at_kill=in_flight)
                self.kill_info = {"t": t_kill, "decision": decision_id, "agent": agent_id, "worker": victim.name,
                                  "mid_decision": still == "running", "when": why,
                                  "orders_pending_at_kill": in_flight}
                # The supervisor (as systemd / compose would) starts it again.
                deadline = now() + self.args.restart_delay + 30
                while len(victim.starts) == starts_before and now() < deadline:
                    time.sleep(0.2)
                self.kill_info["restarted_at"] = victim.starts[-1] if len(victim.starts) > starts_before else now()
                return
            time.sleep(0.01)
        self.event("kill_worker_skipped", reason="no running decision seen")

    def _worker_running(self, agent_id: int) -> Proc:
        """The decision worker whose log last received a tick for this agent."""
        candidates = [p for p in self.workers if p.role == "decisions"]
        if len(candidates) == 1:
            return candidates[0]
        best, best_t = candidates[0], 0.0
        for proc in candidates:
            try:
                with open(proc.log, "rb") as f:
                    f.seek(max(0, proc.log.stat().st_size - 200_000))
                    tail = f.read().splitlines()
            except OSError:
                continue
            for raw in reversed(tail):
                if b'"agents.tick"' in raw and b"received" in raw and f'"args": "[{agent_id}'.encode() in raw:
                    try:
                        t = json.loads(raw).get("time", "")
                    except ValueError:
                        break
                    ts = dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                    if ts > best_t:
                        best, best_t = proc, ts
                    break
        return best

    def fault_redis_restart(self) -> None:
        import redis as redis_lib

        sig = signal.SIGKILL if self.args.redis_kill_signal.upper() == "KILL" else signal.SIGTERM
        redis_proc = self.procs["redis"]
        t_down = now()
        redis_proc.intentional = True
        redis_proc.stop(timeout=30, sig=sig)
        self.event("redis_stopped", signal=self.args.redis_kill_signal.upper())
        time.sleep(self.args.redis_down)
        self.start_redis()
        t_up = now()
        self.event("redis_started", down_seconds=round(t_up - t_down, 1))
        self.redis_info = {"t_down": t_down, "t_up": t_up, "signal": self.args.redis_kill_signal.upper()}
        try:
            self.redis_info["keys_after_restart"] = redis_lib.Redis.from_url(self.env["REDIS_URL"]).dbsize()
        except Exception:
            pass

    def fault_venue_outage(self) -> None:
        import io

        from django.core.management import call_command

        seconds = self.args.outage_seconds
        out = io.StringIO()
        t_start = now()
        # The management command itself, run in this process (already set up) so that the
        # outage starts now, not after a Django start-up under load.
        call_command("paper_outage", "--seconds", str(seconds), "--reason", "soak outage", stdout=out)
        self.event("venue_outage_on", seconds=seconds, command=out.getvalue().strip())
        self.outage_info = {"t_start": t_start, "t_end": t_start + seconds, "seconds": seconds, "command_ok": True}

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

    def _cpu_summary(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for key, value in self.cpu.items():
            out[re.sub(r"\d*@\d+$", "", key)] += value
        return {k: round(v, 1) for k, v in out.items()}

    # -- results -----------------------------------------------------------------------
    def collect(self) -> None:
        from django.db.models import Count

        from agents.models import Decision
        from exchanges.models import ExchangeAccount, PaperAccountState
        from trading.models import Order

        a, r = self.args, self.results
        interval = a.interval
        beat = read_json_lines(self.tmp / "beat.log")
        worker_lines = [line for p in sorted({w.log for w in self.workers}) for line in read_json_lines(p)]
        sends: dict[int, list[float]] = defaultdict(list)
        failed_sends: dict[int, list[float]] = defaultdict(list)
        send_re = re.compile(r"Sending due task agent-(\d+) ")
        fail_re = re.compile(r"Couldn't apply scheduled task agent-(\d+)")
        for line in beat:
            msg = line.get("message", "")
            m = send_re.search(msg)
            if m:
                sends[int(m.group(1))].append(line["_t"])
                continue
            m = fail_re.search(msg) or fail_re.search(line.get("exc", ""))
            if m:
                failed_sends[int(m.group(1))].append(line["_t"])
        for agent_id, fails in failed_sends.items():
            # A send whose publish failed is not a send: drop the nearest earlier "Sending".
            for tf in fails:
                cands = [s for s in sends[agent_id] if s <= tf + 0.001]
                if cands:
                    sends[agent_id].remove(max(cands))

        decisions: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
        for pk, agent_id, status, started, summary in Decision.objects.filter(trigger="schedule").values_list(
                "pk", "agent_id", "status", "started_at", "summary"):
            if status == "skipped" and summary.startswith("The tick expired in the queue"):
                status = "expired"  # recorded, but it never ran: counted as lost below
            decisions[agent_id].append((started.timestamp(), status, pk))
        # Ticks due in the last seconds before beat was stopped are not counted: beat's own
        # delay reaches 5-7 s under load, and it would have sent them had the run gone on.
        cutoff = self.t_beat_stop - BEAT_STOP_MARGIN
        windows = self._windows()
        ticks: list[dict[str, Any]] = []
        extra_decisions = 0
        unsent_extra = 0
        for agent_id in self.agent_ids:
            s_list = sorted(sends.get(agent_id, []))
            d_list = sorted(decisions.get(agent_id, []))
            t, si = self.first_due[agent_id], 0
            agent_ticks: list[dict[str, Any]] = []
            while t <= cutoff:
                while si < len(s_list) and s_list[si] < t - 1.0:
                    unsent_extra += 1  # a send earlier than its schedule (should not happen)
                    si += 1
                if si < len(s_list) and s_list[si] < t + interval - 1.0:
                    agent_ticks.append({"agent": agent_id, "due": t, "sent": s_list[si]})
                    t = s_list[si] + interval
                    si += 1
                else:
                    agent_ticks.append({"agent": agent_id, "due": t, "sent": None})
                    t = t + interval
            sent_ticks = [x for x in agent_ticks if x["sent"] is not None]
            for k, tick in enumerate(sent_ticks):
                lo = tick["sent"] - 0.5
                hi = sent_ticks[k + 1]["sent"] - 0.5 if k + 1 < len(sent_ticks) else tick["sent"] + interval + 5
                inside = [d for d in d_list if lo <= d[0] < hi]
                tick["decisions"] = inside
                if len(inside) > 1:
                    extra_decisions += len(inside) - 1
            ticks.extend(agent_ticks)
        lags, beat_delays, queue_delays = [], [], []
        lost: list[dict[str, Any]] = []
        for tick in ticks:
            if tick["sent"] is None:
                tick["lost"] = "not_sent"
            elif not tick.get("decisions"):
                tick["lost"] = "sent_not_run"
            elif all(d[1] == "expired" for d in tick["decisions"]):
                tick["lost"] = "expired"
            else:
                started = tick["decisions"][0][0]
                lags.append(started - tick["due"])
                beat_delays.append(tick["sent"] - tick["due"])
                queue_delays.append(started - tick["sent"])
                continue
            tick["window"] = self._which_window(tick["due"], windows)
            lost.append(tick)
        status_counts = dict(Decision.objects.values_list("status").annotate(n=Count("id")))
        errors_by_window: dict[str, Counter] = defaultdict(Counter)
        for started, error in Decision.objects.filter(status="error").values_list("started_at", "error"):
            key = re.sub(r"\d+", "N", (error or "")[:90])
            errors_by_window[self._which_window(started.timestamp(), windows)][key] += 1
        r["ticks"] = {
            "due": len(ticks), "sent": sum(1 for t in ticks if t["sent"] is not None),
            "recorded": sum(1 for t in ticks if t.get("decisions")), "lost": len(lost),
            "lost_not_sent_by_beat": sum(1 for t in lost if t["lost"] == "not_sent"),
            "lost_sent_not_run": sum(1 for t in lost if t["lost"] == "sent_not_run"),
            "lost_expired_recorded_as_skipped": sum(1 for t in lost if t["lost"] == "expired"),
            "lost_by_window": dict(Counter(t["window"] for t in lost)),
            "lost_examples": [{"agent": t["agent"], "due": iso(t["due"]), "cause": t["lost"], "window": t["window"]}
                              for t in lost[:15]],
            "beat_publish_failures": sum(len(v) for v in failed_sends.values()),
            "extra_decisions_in_one_tick_window": extra_decisions,
            "decisions_total": sum(status_counts.values()),
            "decisions_by_status": status_counts,
            "decision_errors_by_window": {w: dict(c.most_common(4)) for w, c in errors_by_window.items()},
            "cutoff": iso(cutoff),
        }
        r["tick_lag_seconds"] = {"due_to_started": stats(lags), "beat_delay": stats(beat_delays),
                                 "queue_delay": stats(queue_delays)}
        expired = sum(1 for line in worker_lines if "Discarding revoked task" in line.get("message", "")
                      and "agents.tick" in line.get("message", ""))
        r["ticks"]["expired_in_queue"] = expired

        # Orders and duplicates, at the venue (the paper books) and in the database.
        venue_cids: Counter[str] = Counter()
        for book in PaperAccountState.objects.values_list("book", flat=True):
            for order in (book or {}).get("orders", []):
                if order.get("client_order_id"):
                    venue_cids[order["client_order_id"]] += 1
        db_orders = list(Order.objects.values_list("client_order_id", "status", "created_at", "source"))
        db_cids = Counter(c for c, *_ in db_orders)
        # A venue order is the platform's when its client id, or its parent's for the
        # attached stop-loss / take-profit ("<cid>-sl", "<cid>-tp"), is an Order row;
        # "autoclose-*" are the venue's own (liquidations).
        unknown_at_venue = sorted(c for c in venue_cids if not c.startswith("autoclose-") and c not in db_cids
                                  and re.sub(r"-(sl|tp)$", "", c) not in db_cids)
        r["orders"] = {
            "total": len(db_orders), "by_status": dict(Counter(s for _, s, *_ in db_orders)),
            "venue_orders": sum(venue_cids.values()),
            "duplicate_client_ids_at_venue": sum(1 for v in venue_cids.values() if v > 1),
            "duplicate_client_ids_in_db": sum(1 for v in db_cids.values() if v > 1),
            "venue_orders_unknown_to_platform": len(unknown_at_venue),
            "venue_orders_unknown_examples": unknown_at_venue[:10],
            "left_pending_or_unknown": sum(1 for _, s, *_ in db_orders if s in ("PENDING", "UNKNOWN")),
            "lost_orders (never reached the venue)": sorted(c for c, s, *_ in db_orders if s == "LOST"),
        }

        faults: dict[str, Any] = {}
        stuck = list(Decision.objects.filter(status="running").values_list("pk", "agent_id", "started_at"))
        if getattr(self, "kill_info", None):
            k = self.kill_info
            killed_orders = list(Order.objects.filter(client_order_id__startswith=f"at-d{k['decision']}-")
                                 .values_list("client_order_id", "status"))
            pending_then = [{"client_order_id": c, "status_at_end": Order.objects.filter(client_order_id=c)
                             .values_list("status", flat=True).first(), "at_venue": venue_cids.get(c, 0)}
                            for c in k["orders_pending_at_kill"]]
            after = [d for d in sorted(decisions.get(k["agent"], [])) if d[0] > k["t"]]
            first_ok = next((d for d in after if d[1] not in ("skipped", "error", "running")), None)
            in_window = [t for t in ticks if k["t"] - interval <= t["due"] <= k["restarted_at"] + 30]
            faults["kill_worker"] = {
                "killed_at": iso(k["t"]), "worker": k["worker"], "decision": k["decision"], "agent": k["agent"],
                "mid_decision": k["mid_decision"], "killed_while": k["when"],
                "restart_delay_seconds": self.args.restart_delay,
                "orders_of_killed_decision": killed_orders,
                "orders_pending_at_kill": pending_then,
                "duplicate_orders": r["orders"]["duplicate_client_ids_at_venue"] + r["orders"]["duplicate_client_ids_in_db"],
                "stuck_running_decisions": [{"decision": pk, "agent": ag, "started_at": st.isoformat()}
                                            for pk, ag, st in stuck],
                "agent_ticks_after_kill": [{"after_s": round(d[0] - k["t"], 1), "status": d[1]} for d in after[:4]],
                "agent_resumed_after_s": round(first_ok[0] - k["t"], 1) if first_ok else None,
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
            }
        if getattr(self, "redis_info", None):
            ri = self.redis_info
            after = sorted(d[0] for ds in decisions.values() for d in ds if d[0] > ri["t_up"])
            bad = [h for h in self.health if h["t"] >= ri["t_down"] and h["code"] != 200]
            good_after = next((h for h in self.health if h["t"] >= ri["t_up"] and h["code"] == 200), None)
            reconnects = [line for line in worker_lines if line["_t"] >= ri["t_down"] and (
                "Connected to redis" in line.get("message", "") or "broker" in line.get("message", "").lower())]
            in_window = [t for t in ticks if ri["t_down"] - 1 <= t["due"] <= ri["t_up"] + 30]
            faults["redis_restart"] = {
                "down_at": iso(ri["t_down"]), "down_seconds": round(ri["t_up"] - ri["t_down"], 1),
                "signal": ri["signal"], "keys_after_restart": ri.get("keys_after_restart"),
                "first_decision_after_restart_s": round(after[0] - ri["t_up"], 1) if after else None,
                "healthz_non_200_samples": len(bad),
                "healthz_200_again_after_restart_s": round(good_after["t"] - ri["t_up"], 1) if good_after else None,
                "beat_publish_failures": r["ticks"]["beat_publish_failures"],
                "worker_broker_log_lines": [line.get("message", "")[:160] for line in reconnects[:6]],
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
                "recovered_by_itself": bool(after) and good_after is not None,
            }
        if getattr(self, "outage_info", None):
            oi = self.outage_info
            opened = [line for line in worker_lines if "circuit breaker opened for account" in line.get("message", "")]
            closed = [line for line in worker_lines if "circuit breaker closed for account" in line.get("message", "")]
            window = [d for ds in decisions.values() for d in ds if oi["t_start"] <= d[0] < oi["t_end"]]
            w_orders = [o for o in db_orders if oi["t_start"] <= o[2].timestamp() < oi["t_end"]]
            after_orders = sorted(o[2].timestamp() for o in db_orders if o[2].timestamp() >= oi["t_end"]
                                  and o[1] == "FILLED")
            in_window = [t for t in ticks if oi["t_start"] <= t["due"] <= oi["t_end"]]
            still_error = ExchangeAccount.objects.filter(last_error__startswith="Circuit breaker open").count()
            faults["venue_outage"] = {
                "started_at": iso(oi["t_start"]), "seconds": oi["seconds"], "command_ok": oi["command_ok"],
                "breaker_opened": len(opened), "breaker_closed": len(closed),
                "accounts_opened": len({line["message"].split("account ")[1].split(":")[0] for line in opened}),
                "accounts_closed": len({line["message"].split("account ")[1].split()[0] for line in closed}),
                "accounts_still_open_at_end": still_error,
                "decisions_during_outage": dict(Counter(d[1] for d in window)),
                "orders_during_outage": dict(Counter(o[1] for o in w_orders)),
                "first_filled_order_after_outage_s": round(after_orders[0] - oi["t_end"], 1) if after_orders else None,
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
            }
        exits = [e for e in self.events if e["kind"] == "process_exited"]
        r["process_exits"] = [{"proc": e["proc"], "at_s": round(e["t"] - self.t0, 1), "exit_code": e["exit_code"],
                               "last_error": e["last_error"]} for e in exits]
        if "redis_restart" in faults:
            ri = self.redis_info
            faults["redis_restart"]["processes_that_died"] = [
                x for x in r["process_exits"] if ri["t_down"] - self.t0 - 1 <= x["at_s"] <= ri["t_up"] - self.t0 + 30]
        r["faults"] = faults
        codes = Counter(h["code"] for h in self.health)
        r["healthz"] = {"samples": len(self.health), "by_code": {str(k): v for k, v in codes.items()},
                        "failures": self._health_spans()}
        loads = [v for _, v in self.load]
        r["load_average_1m"] = {"mean": round(statistics.fmean(loads), 2) if loads else None,
                                "max": round(max(loads), 2) if loads else None}
        r["duration_seconds"] = round(self.t_beat_stop - self.t0, 1)
        decisions_per_min = r["ticks"]["decisions_total"] / max(1.0, (self.t_beat_stop - self.t0) / 60)
        r["throughput_decisions_per_minute"] = round(decisions_per_min, 1)
        r["events"] = [{**e, "t": iso(e["t"]), "t_rel": round(e["t"] - self.t0, 1)} for e in self.events]

    def _windows(self) -> list[tuple[str, float, float]]:
        out = []
        interval = self.args.interval
        if getattr(self, "kill_info", None):
            out.append(("kill_worker", self.kill_info["t"] - interval, self.kill_info["restarted_at"] + 30))
        if getattr(self, "redis_info", None):
            out.append(("redis_restart", self.redis_info["t_down"] - 1, self.redis_info["t_up"] + 30))
        if getattr(self, "outage_info", None):
            out.append(("venue_outage", self.outage_info["t_start"], self.outage_info["t_end"] + 30))
        return out

    @staticmethod
    def _which_window(t: float, windows: list[tuple[str, float, float]]) -> str:
        for name, lo, hi in windows:
            if lo <= t <= hi:
                return name
        return "none"

    def _health_spans(self) -> list[dict[str, Any]]:
        spans, current = [], None
        for h in self.health:
            bad = h["code"] != 200
            if bad and current is None:
                current = {"from_s": round(h["t"] - self.t0, 1), "code": h["code"], "failed": h["failed"],
                           "unknown": h["unknown"]}
            elif bad and current is not None:
                for key in ("failed", "unknown"):
                    for name in h.get(key) or []:
                        if name not in (current.get(key) or []):
                            current[key] = [*(current.get(key) or []), name]
            elif not bad and current is not None:
                current["to_s"] = round(h["t"] - self.t0, 1)
                spans.append(current)
                current = None
        if current is not None:
            current["to_s"] = None
            spans.append(current)
        return spans

    def report(self) -> Path:
        r = self.results
        s, t, lag, o = r["settings"], r["ticks"], r["tick_lag_seconds"], r["orders"]
        table("Run", [
            ("database", f"{r['database']} {r['database_version']}"),
            ("agents / interval", f"{s['agents']} / {s['interval_seconds']}s"),
            ("duration", f"{r['duration_seconds']}s"),
            ("layout", s["layout"]),
            ("decision workers x threads", f"{s['workers']} x {s['concurrency']}"),
            ("reconcile/default workers x threads", f"{s['ops_workers']} x {s['ops_concurrency']}"),
            ("processes restarted by the supervisor", len(r["process_exits"])),
            ("decisions / minute", r["throughput_decisions_per_minute"]),
            ("load average (1 min) mean / max", f"{r['load_average_1m']['mean']} / {r['load_average_1m']['max']}"),
            ("cpu seconds", ", ".join(f"{k} {v}" for k, v in r["cpu_seconds"].items())),
        ])
        table("Ticks (nothing lost = lost 0)", [
            ("due", t["due"]), ("sent by beat", t["sent"]), ("recorded (a Decision row)", t["recorded"]),
            ("LOST", t["lost"]), ("  not sent by beat", t["lost_not_sent_by_beat"]),
            ("  sent, never run", t["lost_sent_not_run"]),
            ("  expired in the queue (recorded as skipped)", t["lost_expired_recorded_as_skipped"]),
            ("  by window", t["lost_by_window"] or "-"),
            ("expired in the queue (worker log)", t["expired_in_queue"]),
            ("beat publish failures", t["beat_publish_failures"]),
            ("decisions by status", t["decisions_by_status"]),
            ("decision errors by window", json.dumps(t["decision_errors_by_window"])),
        ])
        table("Tick lag, seconds (scheduled -> decision started)", [
            (f"{name} p50 / p99 / max", f"{fmt(v['p50'])} / {fmt(v['p99'])} / {fmt(v['max'])}  (n={v['n']})")
            for name, v in lag.items()])
        table("Orders", [
            ("orders (db)", o["total"]), ("by status", o["by_status"]), ("orders at the venue", o["venue_orders"]),
            ("DUPLICATE client ids at the venue", o["duplicate_client_ids_at_venue"]),
            ("duplicate client ids in the db", o["duplicate_client_ids_in_db"]),
            ("venue orders unknown to the platform", o["venue_orders_unknown_to_platform"]),
            ("left PENDING / UNKNOWN", o["left_pending_or_unknown"]),
        ])
        for name, f in r["faults"].items():
            table(f"Fault: {name}", [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in f.items()])
        table("/healthz", [("samples by code", r["healthz"]["by_code"]),
                           *[(f"non-200 from {span['from_s']}s to {span['to_s']}s",
                              f"{span['code']} failed={span['failed']} unknown={span['unknown']}")
                             for span in r["healthz"]["failures"]]])
        r["finished_at"] = iso(now())
        r["load_at_end"] = list(os.getloadavg())
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / ("soak-quick.json" if r["quick"] else "soak.json")
        path.write_text(json.dumps(r, indent=2, default=str))
        print(f"\nFigures written to {path.relative_to(ROOT)}; logs in {self.tmp}"
              f"{'' if self.args.keep_tmp else ' (removed; --keep-tmp keeps them)'}")
        return path

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
