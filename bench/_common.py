"""Shared set-up for the benchmark scripts under bench/ (not a test module, not imported
by the platform).

Each script is standalone (``.venv/bin/python bench/<name>.py [--quick]``). ``Bench``
prepares a private environment BEFORE Django is imported: a temp dir (ALPHA_VAR_DIR),
a fresh Fernet key, SQLite in the temp dir (or a throw-away database created next to
the PostgreSQL ``--database-url`` given), an embedded redis-server on a free port
(unless ``--redis-url``), then ``django.setup()`` and ``migrate``. Everything it started
(child process groups, the temp database, the temp dir) is stopped/removed on exit,
normal or not. Figures are printed as tables and written as JSON to var/bench/<name>.json
(var/ is git-ignored).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "var" / "bench"
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

# Symbols added to the paper venue when a script asks for more than the three configured
# (only in the temp copy of the config the benchmark points ALPHA_CONFIG_DIR at).
EXTRA_PAPER_SYMBOLS = {
    "DOGE/USDT": {"start_price": 0.2, "annual_volatility": 1.0},
    "XRP/USDT": {"start_price": 0.6, "annual_volatility": 0.9},
    "AVAX/USDT": {"start_price": 35, "annual_volatility": 0.95},
}


# --------------------------------------------------------------------------- statistics
def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0, "median": math.nan, "p99": math.nan, "mean": math.nan, "min": math.nan, "max": math.nan}
    return {"n": len(samples), "median": statistics.median(samples), "p99": percentile(samples, 99),
            "mean": statistics.fmean(samples), "min": min(samples), "max": max(samples)}


def median_of(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(0, digits - 1 - int(math.log10(abs(value))))}f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  " + "  ".join("-" * w for w in widths))
    for row in cells:
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    sys.stdout.flush()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def cpu_of_processes(match: Callable[[str], bool]) -> float:
    """Sum of CPU seconds of the processes whose command line matches (e.g. postgres)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd and match(cmd):
            value = proc_cpu_seconds(int(entry))
            if not math.isnan(value):
                total += value
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _proc_field(path: str, prefix: str) -> str:
    """The value after the colon of the first line of a /proc file that starts with ``prefix``."""
    try:
        for line in open(path):
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine_info() -> dict[str, Any]:
    mem_kib = _proc_field("/proc/meminfo", "MemTotal").split()
    return {"cpus": os.cpu_count(), "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
            "memory": f"{int(mem_kib[0]) // 1024 // 1024} GiB" if mem_kib else "",
            "python": platform.python_version(), "platform": platform.platform(), "hostname": platform.node()}


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


# --------------------------------------------------------------------------- fixtures (after setup)
def make_user(username: str):
    """A user (its RiskProfile is made by the risk app's signal)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, f"{username}@example.invalid", "bench-pw-0123456789")


def make_paper_account(owner, name: str):
    from exchanges.services import exchange_account_create

    return exchange_account_create(owner=owner, name=name, venue="paper", credentials={})


def relax_risk(user, **overrides: Any):
    """Limits that do not get in the way of a benchmark that trades in a loop (rate,
    cooldown, symbols), through the service, so the profile is what the platform would hold."""
    from decimal import Decimal

    from django.conf import settings  # noqa: F401  (Django is set up)

    from alpha_platform.common.config import get_config
    from risk.models import RiskProfile
    from risk.services import risk_profile_update

    changes: dict[str, Any] = dict(max_orders_per_minute=30000, max_orders_per_hour=1_000_000,
                                   loss_cooldown_seconds=0, max_open_positions=50,
                                   daily_loss_limit_percent=Decimal("1"),
                                   allowed_symbols=sorted(get_config().symbol_map("paper")))
    changes.update(overrides)
    return risk_profile_update(profile=RiskProfile.objects.get(user=user), **changes)


def make_agent(owner, account, name: str, symbols: list[str], **kw: Any):
    from agents.services import agent_create

    return agent_create(owner=owner, account=account, name=name, symbols=symbols, **kw)


class QueryCounter:
    """``with QueryCounter() as q:`` counts SQL statements by verb (and paper-book writes)
    on the default connection of the current thread."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._cm = None

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper() if sql else "?"
        self.counts[verb] = self.counts.get(verb, 0) + 1
        if verb == "UPDATE" and "exchanges_paperaccountstate" in sql:
            self.counts["paper_book_writes"] = self.counts.get("paper_book_writes", 0) + 1
        self.counts["total"] = self.counts.get("total", 0) + 1
        return execute(sql, params, many, context)

    def __enter__(self) -> QueryCounter:
        from django.db import connection

        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class Probe:
    """Accumulate the time spent in wrapped functions, per thread, between ``start()`` and
    ``take()`` (monkeypatched in this process only; the platform's code is not changed)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.patches: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        probe = self

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                acc = getattr(probe.local, "acc", None)
                if acc is not None:
                    acc[label] += (time.perf_counter() - t0) * 1000

        self.patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    def start(self) -> None:
        from collections import defaultdict

        self.local.acc = defaultdict(float)

    def take(self) -> dict[str, float]:
        acc, self.local.acc = getattr(self.local, "acc", None) or {}, None
        return dict(acc)

    def undo(self) -> None:
        for owner, name, original in reversed(self.patches):
            setattr(owner, name, original)
        self.patches.clear()


def fresh_account(label: str, *, relaxed: bool = True):
    """A new user with one paper account (and, by default, relaxed risk limits)."""
    user = make_user(f"u-{label}")
    if relaxed:
        relax_risk(user)
    return make_paper_account(user, f"paper-{label}")


# --------------------------------------------------------------------------- the paper book
SYMBOL = "BTC/USDT"
QTY = Decimal("0.001")


class LiveBookStore:
    """No persistence at all: the live PaperBook object is handed out again (no copy, no
    serialisation). Not safe for real use (a failed block is not rolled back); it shows the
    engine's own cost, the floor under both real stores."""

    def __init__(self) -> None:
        self._books: dict = {}
        self._lock = threading.Lock()

    def book(self, account_ref, *, starting_balance):
        from contextlib import contextmanager

        from exchanges.adapters.paper import PaperBook

        @contextmanager
        def cm():
            with self._lock:
                book = self._books.get(account_ref)
                if book is None:
                    book = self._books[account_ref] = PaperBook.new(account_ref, Decimal(starting_balance))
                yield book

        return cm()

    def load(self, account_ref):
        return self._books.get(account_ref)

    def delete(self, account_ref):
        self._books.pop(account_ref, None)


STORES = ("engine", "memory", "django")


def trader_with_store(account, store: str):
    from exchanges.adapters.paper import MemoryPaperStore
    from exchanges.adapters.registry import create_trader
    from exchanges.adapters.resilience import AdapterRuntime
    from exchanges.services import trader_for_account, venue_spec

    if store == "django":
        return trader_for_account(account)  # the platform's runtime: DjangoPaperStore
    paper_store = MemoryPaperStore() if store == "memory" else LiveBookStore()
    return create_trader(venue_spec(account), credentials=account.credentials(),
                         runtime=AdapterRuntime(paper_store=paper_store))


def book_bytes(trader) -> int:
    import json

    book = trader.store.load(trader.account_ref)
    return len(json.dumps(book.to_dict())) if book else 0


def place_alternating(trader, n: int, tag: str) -> list[float]:
    """n market orders, BUY (open long) and SELL (close it) in turn; seconds per order."""
    from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide

    lat: list[float] = []
    for i in range(n):
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        req = OrderRequest(symbol=SYMBOL, side=side, position_side=PositionSide.LONG, order_type=OrderType.MARKET,
                           quantity=QTY, client_order_id=f"b-{tag}-{i}", reduce_only=side == OrderSide.SELL)
        t0 = time.perf_counter()
        result = trader.place_order(req)
        lat.append(time.perf_counter() - t0)
        if str(getattr(result.status, "value", result.status)) != "FILLED":
            raise RuntimeError(f"order {i} not filled: {result.status} {result.raw_data.get('note')}")
    return lat


def prefill_book(account, store: str, trader, history: int, tag: str) -> int:
    """Give the account's book ``history`` closed orders (and their fills) before the
    measurement: trade them through a no-persistence trader, then seed the store with
    the resulting book. Returns the seeded book's JSON size in bytes."""
    import json

    from exchanges.models import PaperAccountState

    if history <= 0:
        return 0
    engine_trader = trader_with_store(account, "engine")
    place_alternating(engine_trader, history, f"pre-{tag}")
    doc = engine_trader.store.load(engine_trader.account_ref).to_dict()
    if store == "engine":
        trader.store._books[trader.account_ref] = engine_trader.store.load(engine_trader.account_ref)
    elif store == "memory":
        trader.store._docs[trader.account_ref] = doc
    else:
        trader.get_balance()  # creates the row
        PaperAccountState.objects.filter(account_ref=trader.account_ref).update(book=doc)
    return len(json.dumps(doc))
