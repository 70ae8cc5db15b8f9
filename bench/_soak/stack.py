"""The soak's stack: the database (a throw-away PostgreSQL database, or SQLite), the
environment of production settings, Redis, daphne, the Celery workers and beat, the supervisor
that restarts what exits, and the agents with their staggered first ticks."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

from _common import (  # noqa: E402
    create_temp_database,
    free_port,  # noqa: E402  (bench/ is on sys.path: the script's own folder)  # (bench/ is on sys.path: the script's own folder)
    )

from .base import (
    BIN,
    DEFAULT_PG,
    PYTHON,
    ROOT,
    SYMBOLS,
    Proc,
    now,
)


class StackMixin:
    """Starts and supervises the real processes, and creates the agents."""

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
