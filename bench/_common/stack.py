"""A benchmark run's private environment (``Bench``): the command line every script shares, a
temp dir, a fresh key, SQLite or a throw-away PostgreSQL database, an embedded redis-server,
Django set up and migrated, child processes, and the results written as JSON."""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .machine import (
    free_port,
    machine_info,
)
from .paths import (
    RESULTS_DIR,
    ROOT,
)
from .stats import (
    load,
)


# --------------------------------------------------------------------------- the bench env
def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (< 60 s)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL to benchmark against (a throw-away database is created "
                             "beside it and dropped at the end); default: SQLite in a temp dir")
    parser.add_argument("--redis-url", default=None, help="use this Redis (its db is FLUSHED); default: embedded")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions of each measurement (median reported)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (database, logs)")
    return parser


def create_temp_database(url: str, name: str) -> tuple[str, str]:
    """Create (afresh) database ``name`` on the PostgreSQL server of ``url``; return the
    server's admin URL and the new database's URL."""
    import psycopg

    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql", "pgsql") else parts.scheme
    admin = urlunsplit((scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin, urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def drop_temp_database(admin: str, name: str, *, tag: str) -> None:
    """Drop a database made by ``create_temp_database``, even with connections left open."""
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # keep cleaning up
        print(f"[{tag}] could not drop database {name}: {exc}", file=sys.stderr)


# Symbols added to the paper venue when a script asks for more than the three configured
# (only in the temp copy of the config the benchmark points ALPHA_CONFIG_DIR at).
EXTRA_PAPER_SYMBOLS = {
    "DOGE/USDT": {"start_price": 0.2, "annual_volatility": 1.0},
    "XRP/USDT": {"start_price": 0.6, "annual_volatility": 0.9},
    "AVAX/USDT": {"start_price": 35, "annual_volatility": 0.95},
}


class Bench:
    """One benchmark run's private environment. Use as a context manager."""

    def __init__(self, name: str, args: argparse.Namespace, *, extra_env: dict[str, str] | None = None,
                 extra_symbols: bool = False) -> None:
        self.name = name
        self.args = args
        self.extra_env = dict(extra_env or {})
        self.extra_symbols = extra_symbols
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.children: list[subprocess.Popen] = []
        self.redis_proc: subprocess.Popen | None = None
        self.temp_db: tuple[str, str] | None = None  # (admin url, db name)
        self.database_url = ""
        self.redis_url = ""
        self.env: dict[str, str] = {}
        self.results: dict[str, Any] = {
            "benchmark": name, "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "quick": bool(getattr(args, "quick", False)), "machine": machine_info(), "load_at_start": load(),
        }
        self._closed = False

    # -- lifecycle
    def __enter__(self) -> Bench:
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    def setup(self) -> None:
        from cryptography.fernet import Fernet

        env = os.environ
        env["DJANGO_SETTINGS_MODULE"] = "alpha_platform.settings"
        env["ALPHA_ENV"] = "testing"
        env["ALPHA_VAR_DIR"] = str(self.tmp / "var")
        env["CREDENTIALS_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        env.setdefault("LOG_LEVEL", "WARNING")
        env["NO_PROXY"] = "127.0.0.1,localhost"
        env["no_proxy"] = "127.0.0.1,localhost"
        env["DEBUG"] = "false"
        if self.extra_symbols:
            env["ALPHA_CONFIG_DIR"] = str(self._config_with_extra_symbols())
        if self.args.database_url:
            self.database_url = self._temp_postgres(self.args.database_url)
        else:
            self.database_url = f"sqlite:///{self.tmp / 'bench.sqlite3'}"
        env["DATABASE_URL"] = self.database_url
        if self.args.redis_url:
            self.redis_url = self.args.redis_url
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
        else:
            import embedded_redis

            port = free_port()
            self.redis_proc = embedded_redis.start(port)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        self.env = {k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "ALPHA_ENV", "ALPHA_VAR_DIR",
                                         "CREDENTIALS_ENCRYPTION_KEYS", "LOG_LEVEL", "DATABASE_URL", "REDIS_URL",
                                         "NO_PROXY", "no_proxy", "DEBUG")}
        if "ALPHA_CONFIG_DIR" in env and self.extra_symbols:
            self.env["ALPHA_CONFIG_DIR"] = env["ALPHA_CONFIG_DIR"]
        self.env.update(self.extra_env)

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django.db import connection

        self.results["database"] = connection.vendor
        self.results["database_version"] = ".".join(map(str, connection.Database.sqlite_version_info)) \
            if connection.vendor == "sqlite" else str(connection.cursor().connection.info.server_version)

    def _config_with_extra_symbols(self) -> Path:
        import yaml

        src = ROOT / "config"
        dst = self.tmp / "config"
        shutil.copytree(src, dst)
        path = dst / "exchanges.yaml"
        data = yaml.safe_load(path.read_text())
        gs = data["global_settings"]
        for symbol, params in EXTRA_PAPER_SYMBOLS.items():
            gs["symbol_mapping"]["internal_to_paper"][symbol] = symbol
            data["exchanges"]["paper"]["parameters"]["market_data"]["symbols"][symbol] = dict(params)
            if symbol not in gs["risk_management"]["allowed_symbols"]:
                gs["risk_management"]["allowed_symbols"].append(symbol)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return dst

    def _temp_postgres(self, url: str) -> str:
        name = f"bench_{self.name}_{os.getpid()}".lower()
        admin, db_url = create_temp_database(url, name)
        self.temp_db = (admin, name)
        return db_url

    def spawn(self, args: Sequence[str], *, env: dict[str, str] | None = None, log: str | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start a child in its own process group (stopped, with its children, on close)."""
        out = open(self.tmp / log, "ab") if log else subprocess.DEVNULL
        full_env = {**os.environ, **self.env, **(env or {})}
        proc = subprocess.Popen(list(args), cwd=str(cwd or ROOT), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15.0) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.children):
            try:
                self.stop(proc)
            except Exception as exc:  # keep cleaning up
                print(f"[bench] could not stop pid {proc.pid}: {exc}", file=sys.stderr)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self.temp_db is not None:
            drop_temp_database(*self.temp_db, tag="bench")
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
        if getattr(self.args, "keep_tmp", False):
            print(f"[bench] temp dir kept: {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- results
    def write_results(self, variant: str = "") -> Path:
        """var/bench/<name>[-<variant>][-quick].json"""
        self.results["finished_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.results["load_at_end"] = load()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        suffix = (f"-{variant}" if variant else "") + ("-quick" if self.results.get("quick") else "")
        path = RESULTS_DIR / f"{self.name}{suffix}.json"
        path.write_text(json.dumps(self.results, indent=2, default=_json_default))
        print(f"\nFigures written to {path.relative_to(ROOT)}  (load average at end: {self.results['load_at_end']})")
        return path

    def header(self, what: str) -> None:
        print(f"== {self.name}: {what}")
        print(f"   {self.results['started_at']}  database={self.results.get('database')} "
              f"{self.results.get('database_version', '')}  cpus={os.cpu_count()}  load={load()}"
              f"{'  (QUICK run)' if self.results['quick'] else ''}")
        sys.stdout.flush()


def _json_default(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
