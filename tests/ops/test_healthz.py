"""/healthz: 200 with every dependency up; 503 naming the one that is down, for each in turn.

The first tests run in-process against the suite's own Redis (heartbeats written by hand,
a throw-away Redis server stopped for real, a database alias that cannot be opened). The
last one starts the real processes (daphne, a Celery worker, Celery beat, Redis, and the
database behind a TCP proxy when it is PostgreSQL), then stops each in turn.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet

from alpha_platform.web import health
from alpha_platform.web.tasks import beat_key, redis_client, worker_key

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("decisions", "reconcile", "celery")


def _write_heartbeats(*, beat_age: float | None, worker_age: float | None, queues=QUEUES) -> None:
    client = redis_client()
    now = time.time()
    for queue in queues:
        if beat_age is not None:
            client.set(beat_key(queue), json.dumps({"at": now - beat_age, "host": "test"}))
        if worker_age is not None:
            client.set(worker_key(queue), json.dumps({"at": now - worker_age, "worker": "w@test",
                                                      "lag_seconds": 0.01}))


def _get(client, path="/healthz"):
    response = client.get(path)
    return response.status_code, response.json()


@pytest.fixture
def http(client, db):
    return client


def test_ok_when_every_dependency_is_up(http):
    _write_heartbeats(beat_age=3, worker_age=4)
    status, body = _get(http)
    assert status == 200, body
    assert body["status"] == "ok" and body["failed"] == [] and body["unknown"] == []
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "beat", "worker"}
    assert checks["database"]["ok"] and checks["database"]["latency_ms"] >= 0
    assert checks["redis"]["ok"] and checks["redis"]["latency_ms"] >= 0
    assert checks["beat"]["ok"] and 2 <= checks["beat"]["age_seconds"] <= 10 and checks["beat"]["last_tick_at"]
    assert checks["worker"]["ok"] and 3 <= checks["worker"]["age_seconds"] <= 10
    assert set(checks["worker"]["queues"]) == set(QUEUES)
    assert "ping" not in checks["worker"]  # fresh heartbeats: no broadcast needed


def test_beat_stopped_is_a_503_naming_beat(http, monkeypatch):
    _write_heartbeats(beat_age=600, worker_age=600)
    monkeypatch.setattr(health, "ping_workers", lambda timeout=None: ["w@test"])
    status, body = _get(http)
    assert status == 503
    assert body["failed"] == ["beat"], body
    assert body["checks"]["beat"]["age_seconds"] >= 600
    # The workers are alive (they answer a ping): beat's silence is not blamed on them.
    worker = body["checks"]["worker"]
    assert worker["ok"] is True and worker["ping"]["workers"] == ["w@test"] and "beat is down" in worker["note"]


def test_beat_that_never_ran_is_a_503(http, monkeypatch):
    monkeypatch.setattr(health, "ping_workers", lambda timeout=None: ["w@test"])
    status, body = _get(http)
    assert status == 503 and body["failed"] == ["beat"]
    assert body["checks"]["beat"]["age_seconds"] is None and "not sent a heartbeat" in body["checks"]["beat"]["error"]


def test_worker_stopped_is_a_503_naming_worker(http):
    # Beat keeps sending, nobody runs the heartbeats, and (no worker in this test) nobody
    # answers the live ping either.
    _write_heartbeats(beat_age=1, worker_age=None)
    t0 = time.monotonic()
    status, body = _get(http)
    assert time.monotonic() - t0 < 5  # bounded: the ping waits about one second
    assert status == 503 and body["failed"] == ["worker"], body
    worker = body["checks"]["worker"]
    assert worker["stale_queues"] == list(QUEUES) and worker["ping"]["ok"] is False
    assert "no worker answered" in worker["error"]


def test_one_queue_without_a_consumer_fails_the_worker_check(http, monkeypatch):
    _write_heartbeats(beat_age=1, worker_age=2, queues=("reconcile", "celery"))
    _write_heartbeats(beat_age=1, worker_age=None, queues=("decisions",))
    monkeypatch.setattr(health, "ping_workers", lambda timeout=None: ["w@test"])
    status, body = _get(http)
    assert status == 503 and body["failed"] == ["worker"]
    assert body["checks"]["worker"]["stale_queues"] == ["decisions"]
    assert "not consumed or is backed up" in body["checks"]["worker"]["error"]


def test_redis_stopped_is_a_503_naming_redis(http, settings):
    sys.path.insert(0, str(ROOT / "scripts"))
    import embedded_redis

    port = embedded_redis.free_port()
    proc = embedded_redis.start(port)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    try:
        _write_heartbeats(beat_age=1, worker_age=1)
        status, body = _get(http)
        assert status == 200, body
        proc.terminate()
        proc.wait(10)
        t0 = time.monotonic()
        status, body = _get(http)
        assert time.monotonic() - t0 < 5
        assert status == 503
        assert body["failed"] == ["redis"] and body["unknown"] == ["beat", "worker"], body
        assert body["checks"]["redis"]["ok"] is False and "Connection" in body["checks"]["redis"]["error"]
        assert body["checks"]["beat"]["ok"] is None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_database_stopped_is_a_503_naming_database(client, django_db_blocker, monkeypatch, tmp_path):
    # A database that cannot be opened, as its own alias (outside the test transaction).
    from django.db import connections

    broken = dict(connections["default"].settings_dict)
    broken.update(ENGINE="django.db.backends.sqlite3", NAME=str(tmp_path / "missing-dir" / "db.sqlite3"),
                  OPTIONS={}, CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False)
    connections.settings["healthz-broken"] = broken
    monkeypatch.setattr(health, "DATABASE_ALIAS", "healthz-broken")
    _write_heartbeats(beat_age=1, worker_age=1)
    try:
        with django_db_blocker.unblock():
            status, body = _get(client)
    finally:
        del connections.settings["healthz-broken"]
    assert status == 503 and body["failed"] == ["database"], body
    assert "OperationalError" in body["checks"]["database"]["error"]


def test_selected_checks_and_unknown_names(http):
    status, body = _get(http, "/healthz?checks=database,redis")
    assert status == 200 and set(body["checks"]) == {"database", "redis"}
    status, body = _get(http, "/healthz?checks=database,nope")
    assert status == 400


def test_streams_is_asked_for_by_name_and_follows_the_deployment_lock(http, settings):
    from trading.management.commands.venue_streams import LOCK_KEY

    _write_heartbeats(beat_age=3, worker_age=4)
    assert "streams" not in _get(http)[1]["checks"]  # not in the default set
    status, body = _get(http, "/healthz?checks=streams")
    assert status == 503 and body["failed"] == ["streams"] and "reconciliation" in body["checks"]["streams"]["error"]
    # Held the way venue_streams holds it (a Redis lock with a TTL it renews).
    lock = redis_client().lock(LOCK_KEY, timeout=settings.VENUE_STREAMS_LOCK_TTL_SECONDS, thread_local=False)
    assert lock.acquire(blocking=False)
    try:
        status, body = _get(http, "/healthz?checks=streams")
        assert status == 200 and 0 < body["checks"]["streams"]["lock_ttl_ms"] <= settings.VENUE_STREAMS_LOCK_TTL_SECONDS * 1000
    finally:
        lock.release()
    assert _get(http, "/healthz?checks=streams")[0] == 503  # the holder went away


def test_errors_never_carry_a_password():
    exc = ConnectionError("Error connecting to redis://:s3cr3t-pw@redis.internal:6379/0 password=hunter2")
    text = health._safe_error(exc)
    assert "s3cr3t-pw" not in text and "hunter2" not in text and "redis.internal" in text


# --------------------------------------------------------------------------- real processes
class TcpProxy:
    """A TCP forwarder the test can stop (the dependency behind it looks down: refused,
    and every open connection is cut) and start again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: socket.socket | None = None
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except (OSError, ValueError) as e:
        return 0, {"error": str(e)}


def _wait_for(port: int, predicate, what: str, timeout: float, logs) -> dict:
    deadline = time.time() + timeout
    status, body = 0, {}
    while time.time() < deadline:
        status, body = _healthz(port)
        if predicate(status, body):
            return body
        time.sleep(1)
    pytest.fail(f"/healthz never showed {what} within {timeout:.0f}s; last: {status} {json.dumps(body)}\n{logs()}")


@pytest.mark.integration
@pytest.mark.slow
def test_real_processes_each_dependency_stopped_in_turn(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import embedded_redis

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    redis_port = embedded_redis.free_port()
    redis_proc = embedded_redis.start(redis_port)
    web_port = _free_port()
    pg_url = os.environ.get("DATABASE_URL", "")
    proxy = temp_db = None
    if pg_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urlsplit(pg_url)
        admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
        temp_db = (admin, f"healthz_{os.getpid()}")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{temp_db[1]}"')
            conn.execute(f'CREATE DATABASE "{temp_db[1]}"')
        proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
        proxy.start()
        netloc = parts.netloc.rsplit("@", 1)
        creds = netloc[0] + "@" if len(netloc) == 2 else ""
        database_url = f"postgres://{creds}127.0.0.1:{proxy.port}/{temp_db[1]}"
        sqlite_dir = None
    else:
        sqlite_dir = tmp_path / "db"
        sqlite_dir.mkdir()
        database_url = f"sqlite:///{sqlite_dir / 'db.sqlite3'}"
    env.update(DJANGO_SETTINGS_MODULE="alpha_platform.settings", ALPHA_ENV="testing",
               ALPHA_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=database_url,
               CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", LOG_FORMAT="json", DB_CONN_MAX_AGE="0",
               HEALTH_HEARTBEAT_SECONDS="1", HEALTH_BEAT_MAX_AGE_SECONDS="6", HEALTH_WORKER_MAX_AGE_SECONDS="6",
               RECONCILE_INTERVAL_SECONDS="3600", PYTHONUNBUFFERED="1")
    bin_dir = Path(sys.executable).parent
    procs: dict[str, subprocess.Popen] = {}
    commands = {
        "web": [str(bin_dir / "daphne"), "-b", "127.0.0.1", "-p", str(web_port), "alpha_platform.asgi:application"],
        "worker": [sys.executable, "-m", "celery", "-A", "alpha_platform", "worker", "--pool", "threads",
                   "--concurrency", "2", "-Q", "decisions,reconcile,celery", "--loglevel", "INFO",
                   "--hostname", f"healthz-{os.getpid()}@%h"],
        "beat": [sys.executable, "-m", "celery", "-A", "alpha_platform", "beat", "--loglevel", "INFO", "--pidfile="],
    }

    def start(name: str) -> None:
        log = open(tmp_path / f"{name}.log", "ab")
        procs[name] = subprocess.Popen(commands[name], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

    def kill(name: str, sig=signal.SIGKILL) -> None:
        proc = procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(20)

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("*.log")))

    ok = lambda s, b: s == 200 and b.get("status") == "ok"  # noqa: E731
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=300)
        for name in ("web", "worker", "beat"):
            start(name)
        _wait_for(web_port, ok, "200 with everything up", 120, logs)

        kill("worker")
        body = _wait_for(web_port, lambda s, b: s == 503 and b.get("failed") == ["worker"], "503 worker", 60, logs)
        assert body["checks"]["worker"]["ping"]["ok"] is False
        start("worker")
        _wait_for(web_port, ok, "200 after the worker came back", 120, logs)

        kill("beat")
        body = _wait_for(web_port, lambda s, b: s == 503 and b.get("failed") == ["beat"], "503 beat", 60, logs)
        assert body["checks"]["worker"]["ok"] is True  # judged by the live ping
        start("beat")
        _wait_for(web_port, ok, "200 after beat came back", 120, logs)

        redis_proc.terminate()
        redis_proc.wait(10)
        body = _wait_for(web_port, lambda s, b: s == 503 and b.get("failed") == ["redis"], "503 redis", 60, logs)
        assert body["unknown"] == ["beat", "worker"]
        redis_proc = embedded_redis.start(redis_port)
        # Nobody restarts anything: the worker and beat reconnect by themselves.
        _wait_for(web_port, ok, "200 after Redis came back", 120, logs)

        if proxy is not None:
            proxy.stop()
        else:
            sqlite_dir.rename(tmp_path / "db-away")
        body = _wait_for(web_port, lambda s, b: s == 503 and b.get("failed") == ["database"], "503 database",
                         60, logs)
        assert "Error" in body["checks"]["database"]["error"]
        if proxy is not None:
            proxy.start()
        else:
            (tmp_path / "db-away").rename(sqlite_dir)
        _wait_for(web_port, ok, "200 after the database came back", 120, logs)
    finally:
        for name in list(procs):
            try:
                kill(name, signal.SIGTERM)
            except Exception:
                pass
        if redis_proc.poll() is None:
            redis_proc.terminate()
        if proxy is not None:
            proxy.stop()
        if temp_db is not None:
            import psycopg

            with psycopg.connect(temp_db[0], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{temp_db[1]}" WITH (FORCE)')
