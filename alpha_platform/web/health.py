"""/healthz: the database, Redis, the last beat tick and a worker ping, each with its age.

    GET /healthz                       every check; 200 when all pass, 503 otherwise
    GET /healthz?checks=database,redis  only these (the web container's own liveness)
    python -m alpha_platform.web.health [--checks beat]   the same in-process: exit 0 / 1
    python -m alpha_platform.web.health --url http://127.0.0.1:8000/healthz?checks=database,redis
                                       over HTTP, as a container health check does

Body: ``{"status": "ok"|"fail", "failed": [...], "unknown": [...], "checks": {...}}``.

- database: ``SELECT 1`` on a fresh connection (closed afterwards), with its latency.
- redis: ``PING`` with its latency.
- beat: the age of the newest heartbeat beat published (alpha_platform/web/tasks.py);
  stale after HEALTH_BEAT_MAX_AGE_SECONDS.
- worker: per queue, the age of the newest heartbeat a worker ran; stale after
  HEALTH_WORKER_MAX_AGE_SECONDS (nobody consumes that queue, or it is backed up). When
  beat itself is down no heartbeats are sent, so the workers are asked directly
  (``control.ping``) instead of being blamed for beat's silence.

- streams (opt-in: not in the default set, since reconciliation keeps fills arriving without
  it): whether some ``venue_streams`` process holds the deployment's lock, and its TTL.
  ``python -m alpha_platform.web.health --checks streams`` is the streams container's check.

When Redis is down, beat and worker cannot be judged: they are reported as ``unknown``
(ok: null), not as failed, so the 503 names the dependency that is actually down.
Every probe runs under HEALTH_CHECK_TIMEOUT_SECONDS (about 1 s); errors are reduced to
the exception's type and a redacted message, never a URL or a password.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from django.http import JsonResponse

CHECKS = ("database", "redis", "beat", "worker")
OPTIONAL_CHECKS = ("streams",)  # asked for by name only
DATABASE_ALIAS = "default"
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="healthz")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def _settings() -> Any:
    from django.conf import settings

    return settings


def _timeout() -> float:
    return float(getattr(_settings(), "HEALTH_CHECK_TIMEOUT_SECONDS", 1.0))


def _safe_error(exc: BaseException) -> str:
    from alpha_platform.common.logging import redact

    text = " ".join(str(exc).split())[:200]
    text = _URL_PASSWORD.sub(r"\1****@", text)
    return f"{type(exc).__name__}: {redact(text)}" if text else type(exc).__name__


def _bounded(fn: Callable[[], Any], timeout: float | None = None) -> tuple[bool, float, Any]:
    """Run ``fn`` in a helper thread for at most ``timeout`` seconds: (ok, ms, value-or-error)."""
    timeout = _timeout() if timeout is None else timeout
    t0 = time.perf_counter()
    future = _executor.submit(fn)
    try:
        value = future.result(timeout=timeout)
    except FutureTimeout:
        return False, round((time.perf_counter() - t0) * 1000, 1), f"timed out after {timeout:g}s"
    except Exception as exc:
        return False, round((time.perf_counter() - t0) * 1000, 1), _safe_error(exc)
    return True, round((time.perf_counter() - t0) * 1000, 1), value


# --------------------------------------------------------------------------- the checks
def check_database(alias: str | None = None) -> dict[str, Any]:
    from django.db import connections

    def probe() -> None:
        # A connection of this helper thread, closed at once: the probe really connects,
        # and leaves nothing open behind it.
        connection = connections[alias or DATABASE_ALIAS]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        finally:
            connection.close()

    ok, ms, value = _bounded(probe, timeout=max(_timeout(), 1.0) * 2)  # a connect + a query
    result: dict[str, Any] = {"ok": ok, "latency_ms": ms}
    if not ok:
        result["error"] = value
    return result


def check_redis(url: str | None = None) -> dict[str, Any]:
    from alpha_platform.web.tasks import redis_client

    ok, ms, value = _bounded(lambda: redis_client(url).ping())
    result: dict[str, Any] = {"ok": ok, "latency_ms": ms}
    if not ok:
        result["error"] = value
    return result


def check_streams(url: str | None = None) -> dict[str, Any]:
    """Whether a venue_streams process holds the deployment's lock (it renews it every third
    of VENUE_STREAMS_LOCK_TTL_SECONDS; a dead holder's lock expires)."""
    from alpha_platform.web.tasks import redis_client
    from trading.management.commands.venue_streams import LOCK_KEY

    ok, ms, value = _bounded(lambda: redis_client(url).pttl(LOCK_KEY))
    if not ok:
        return {"ok": None, "latency_ms": ms, "error": value}
    held = isinstance(value, int) and value > 0
    result: dict[str, Any] = {"ok": held, "lock_ttl_ms": value if held else None}
    if not held:
        result["error"] = "no venue_streams process holds the lock (fills arrive by reconciliation only)"
    return result


def _queues() -> list[str]:
    queues = getattr(_settings(), "CELERY_TASK_QUEUES", None) or ()
    names = [getattr(q, "name", str(q)) for q in queues]
    return names or [getattr(_settings(), "CELERY_TASK_DEFAULT_QUEUE", "celery")]


def _read_heartbeats(url: str | None = None) -> dict[str, dict[str, dict[str, Any] | None]]:
    from alpha_platform.web.tasks import beat_key, redis_client, worker_key

    queues = _queues()
    raw = redis_client(url).mget([beat_key(q) for q in queues] + [worker_key(q) for q in queues])

    def parse(value: Any) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            data = json.loads(value)
            float(data["at"])
            return data
        except (ValueError, KeyError, TypeError):
            return None

    return {"beat": {q: parse(v) for q, v in zip(queues, raw[:len(queues)])},
            "worker": {q: parse(v) for q, v in zip(queues, raw[len(queues):])}}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def check_beat(heartbeats: dict[str, Any], now: float) -> dict[str, Any]:
    limit = float(getattr(_settings(), "HEALTH_BEAT_MAX_AGE_SECONDS", 60.0))
    times = [hb["at"] for hb in heartbeats["beat"].values() if hb]
    last = max(times) if times else None
    age = None if last is None else round(max(0.0, now - last), 1)
    result: dict[str, Any] = {"ok": age is not None and age <= limit, "last_tick_at": _iso(last),
                              "age_seconds": age, "max_age_seconds": limit}
    if age is None:
        result["error"] = "beat has not sent a heartbeat yet (is celery beat running?)"
    elif age > limit:
        result["error"] = f"the last heartbeat beat sent is {age:.0f}s old (limit {limit:.0f}s)"
    return result


def ping_workers(timeout: float | None = None) -> list[str]:
    """Names of the workers that answer a broadcast ping (empty when none does)."""
    from alpha_platform.celery import app

    timeout = _timeout() if timeout is None else timeout
    replies = app.control.ping(timeout=timeout, limit=1) or []
    return sorted(name for reply in replies for name in reply)


def check_worker(heartbeats: dict[str, Any], now: float, *, beat_ok: bool) -> dict[str, Any]:
    limit = float(getattr(_settings(), "HEALTH_WORKER_MAX_AGE_SECONDS", 60.0))
    queues: dict[str, Any] = {}
    stale: list[str] = []
    for queue, hb in heartbeats["worker"].items():
        age = None if hb is None else round(max(0.0, now - float(hb["at"])), 1)
        queues[queue] = {"age_seconds": age, "worker": (hb or {}).get("worker"),
                         "lag_seconds": (hb or {}).get("lag_seconds")}
        if age is None or age > limit:
            stale.append(queue)
    ages = [q["age_seconds"] for q in queues.values() if q["age_seconds"] is not None]
    # The age of the worker side is that of its stalest queue.
    result: dict[str, Any] = {"ok": not stale, "age_seconds": None if len(ages) < len(queues) else max(ages),
                              "max_age_seconds": limit, "queues": queues}
    if not stale:
        return result
    # Stale heartbeats: ask the workers directly (this tells "no worker" from "beat is down"
    # and from "a queue is not consumed / backed up").
    ok, ms, value = _bounded(ping_workers, timeout=_timeout() + 0.5)
    answered = value if ok else []
    result["ping"] = {"ok": bool(answered), "latency_ms": ms, "workers": answered[:10]}
    if not ok:
        result["ping"]["error"] = value
    if not beat_ok:
        # Beat sends the heartbeats: with beat down only the ping can speak for the workers.
        result["ok"] = bool(answered)
        result["note"] = "beat is down, so heartbeats are not sent: judged by a live ping"
        if not answered:
            result["error"] = "no worker answered a ping"
        return result
    result["ok"] = False
    result["stale_queues"] = stale
    result["error"] = (f"no worker ran a heartbeat from {', '.join(stale)} within {limit:.0f}s"
                       + (" (workers answer a ping: the queue is not consumed or is backed up)" if answered
                          else "; no worker answered a ping"))
    return result


def run_checks(names: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    names = [n for n in (names or CHECKS) if n in CHECKS + OPTIONAL_CHECKS]
    checks: dict[str, Any] = {}
    if "database" in names:
        checks["database"] = check_database()
    redis_ok = True
    if {"redis", "beat", "worker", "streams"} & set(names):
        redis = check_redis()
        redis_ok = redis["ok"]
        if "redis" in names:
            checks["redis"] = redis
    if {"beat", "worker"} & set(names):
        heartbeats = None
        if redis_ok:
            ok, _ms, value = _bounded(_read_heartbeats)
            heartbeats = value if ok else None
            error = None if ok else value
        else:
            error = "unknown: Redis is unreachable"
        now = time.time()
        if heartbeats is None:
            for name in ("beat", "worker"):
                if name in names:
                    checks[name] = {"ok": None, "error": error}
        else:
            beat = check_beat(heartbeats, now)
            if "beat" in names:
                checks["beat"] = beat
            if "worker" in names:
                checks["worker"] = check_worker(heartbeats, now, beat_ok=bool(beat["ok"]))
    if "streams" in names:
        checks["streams"] = check_streams() if redis_ok else {"ok": None, "error": "unknown: Redis is unreachable"}
    failed = [n for n, c in checks.items() if c["ok"] is False]
    unknown = [n for n, c in checks.items() if c["ok"] is None]
    return {"status": "ok" if not failed and not unknown else "fail", "failed": failed, "unknown": unknown,
            "checks": checks, "time": datetime.now(UTC).isoformat(timespec="seconds")}


def healthz(request):
    wanted = request.GET.get("checks")
    names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else None
    if names and not set(names) <= set(CHECKS + OPTIONAL_CHECKS):
        return JsonResponse({"status": "fail", "error": "unknown check; choose from "
                             f"{', '.join(CHECKS + OPTIONAL_CHECKS)}"},
                            status=400)
    report = run_checks(names)
    response = JsonResponse(report, status=200 if report["status"] == "ok" else 503)
    response["Cache-Control"] = "no-store"
    return response


def _probe_host(allowed_hosts: str) -> str:
    """A Host header the server accepts: the first ALLOWED_HOSTS entry, made concrete."""
    for host in (h.strip() for h in allowed_hosts.split(",")):
        if host and host != "*":
            return host.lstrip(".").removeprefix("*.") or "localhost"
    return "localhost"


def probe_url(url: str, *, timeout: float = 5.0) -> tuple[int, str]:
    """GET /healthz as a health check does from inside the web container: with a Host
    from ALLOWED_HOSTS and X-Forwarded-Proto: https (so production's HTTPS redirect does
    not answer instead). Returns (status, body); 0 when nothing answered."""
    import os
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={
        "Host": _probe_host(os.environ.get("ALLOWED_HOSTS", "localhost")), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    """``python -m alpha_platform.web.health [--checks beat,worker] [--url URL]``: print the
    report, exit 0 when every selected check passes (container and systemd health checks)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--checks", default=",".join(CHECKS),
                        help="comma-separated: " + ",".join(CHECKS + OPTIONAL_CHECKS))
    parser.add_argument("--url", help="ask a running web process instead (e.g. http://127.0.0.1:8000/healthz)")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.url:
        status, body = probe_url(args.url, timeout=args.timeout)
        print(status, body[:2000])
        return 0 if status == 200 else 1

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alpha_platform.settings")
    django.setup()
    report = run_checks([n.strip() for n in args.checks.split(",") if n.strip()])
    print(json.dumps(report))
    return 0 if report["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
