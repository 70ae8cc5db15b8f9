"""The production HTTP server under load: gunicorn with N WSGI worker processes (the command
of docker-compose.yml's "web" and deploy/systemd/alpha-web.service) on loopback, driven by
wrk, for three endpoints in the same run (--server asgi: the websocket server's ASGI
workers answering HTTP instead; --server daphne: the one process before issue 17):

  bare       a plain Django HttpResponse (bench/web_tier_urls.py only, not in the product):
             the floor of the server, Django's handler and the middleware
  ping       GET /api/ping/: the minimal authenticated DRF view (token, IsAuthenticated,
             the per-user throttle in Redis)
  positions  GET /api/positions/: the positions list (3 open positions, paginated)

    .venv/bin/python bench/web_tier.py [--quick] [--workers N] [--connections 32]
        [--duration 10] [--database-url postgres://...] [--server wsgi|asgi|daphne]

Production-like settings (ALPHA_ENV=production, DEBUG off, JSON logs at WARNING), SQLite in
a temp dir by default, PostgreSQL when --database-url (or DATABASE_URL) is given, an
embedded Redis. The user throttle stays on at a per-second rate the run cannot reach
("100000/s": DRF keeps one timestamp per request of the window in Redis, so a per-minute
rate this high would make every request carry a list 60x longer than production's 600/min
ever holds).

Prints requests per second and p50/p99 latency for each endpoint and their ratio to the
bare view; the server's CPU per request (all workers, /proc) under load; and the CPU per
request measured in-process (time.process_time over N Django test-client requests, the
same settings) for each endpoint. wrk runs single-threaded so it takes as little of the
machine as it can; without wrk a Python client (threads, keep-alive) is used, and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from _common import Bench, base_parser, free_port, percentile, print_table, proc_cpu_seconds, ratio

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENDPOINTS = {"bare": "/bench/bare/", "ping": "/api/ping/", "positions": "/api/positions/"}
# The layouts compared (--server): "wsgi" is production's HTTP server (docker-compose.yml's
# "web"); "asgi" is the ASGI server's (compose "ws") answering HTTP as it does in `make run`;
# "daphne" is the one process the platform ran before issue 17.
LAYOUTS = {
    "wsgi": (["gunicorn", "-c", "python:alpha_platform.gunicorn_conf"], "alpha_platform.wsgi:application",
             "gunicorn + {n} WSGI workers (gthread)"),
    "asgi": (["gunicorn", "-c", "python:alpha_platform.gunicorn_ws_conf"], "alpha_platform.asgi:application",
             "gunicorn + {n} uvicorn workers (ASGI)"),
    "daphne": (["daphne"], "alpha_platform.asgi:application", "daphne, one process"),
}

SEED_POSITIONS = (("BTC/USDT", "0.01"), ("ETH/USDT", "0.1"), ("SOL/USDT", "1"))


def seed() -> str:
    """A user with a paper account holding three open positions (made by orders through the
    services), and an API token; returns the token's key."""
    from decimal import Decimal

    from _common import make_paper_account, make_user

    from alpha_platform.web.api.auth import api_token_create
    from trading.services import order_submit

    user = make_user("bench")
    account = make_paper_account(user, "paper")
    for symbol, qty in SEED_POSITIONS:
        order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG",
                     quantity=Decimal(qty), source="api", actor="bench")
    return api_token_create(user=user, name="bench").key


# --------------------------------------------------------------------------- in-process CPU
def in_process_cpu(key: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    """CPU ms per request of each endpoint through Django's test client (no server, no
    network): the best and the median of ``repeats`` rounds of ``n`` requests."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    out: dict[str, dict[str, float]] = {}
    for name, path in ENDPOINTS.items():
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code} {response.content[:200]!r}")
        for _ in range(max(20, n // 10)):
            client.get(path)
        rounds = []
        for _ in range(repeats):
            t0 = time.process_time()
            for _ in range(n):
                client.get(path)
            rounds.append((time.process_time() - t0) / n * 1000)
        out[name] = {"best_ms": min(rounds), "median_ms": sorted(rounds)[len(rounds) // 2]}
    return out


# --------------------------------------------------------------------------- the server
def server_pids(master: subprocess.Popen) -> list[int]:
    """The gunicorn master and its workers."""
    pids = [master.pid]
    try:
        for task in os.listdir(f"/proc/{master.pid}/task"):
            children = Path(f"/proc/{master.pid}/task/{task}/children").read_text().split()
            pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def start_server(bench: Bench, workers: int, server: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    program, app, _ = LAYOUTS[server]
    if server == "daphne":
        command = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), app]
    else:
        command = [str(BIN / program[0]), *program[1:], "-b", f"127.0.0.1:{port}", app]
    proc = bench.spawn(command,
                       env={"WEB_CONCURRENCY": str(workers), "WS_CONCURRENCY": str(workers), "PYTHONPATH": str(Path(__file__).parent)},
                       log="web.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}): {(bench.tmp / 'web.log').read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + ENDPOINTS["bare"], timeout=1)
            if server == "daphne" or len(server_pids(proc)) > workers:  # every worker is up
                return proc, url
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within 60 s: {(bench.tmp / 'web.log').read_text()[-3000:]}")


# --------------------------------------------------------------------------- load generators
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, key: str, *, connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s",
                          "-H", f"Authorization: Token {key}", url],
                         capture_output=True, text=True, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
               "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
               "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
               "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        raise RuntimeError(f"{url}: failed requests under wrk:\n{out}")
    return figures


def run_python_client(url: str, key: str, *, connections: int, duration: float) -> dict[str, float]:
    """Threads with keep-alive connections (http.client), for machines without wrk: it
    takes far more CPU per request than wrk, so the server's figures are lower."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    samples: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    stop_at = time.monotonic() + duration

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        own = samples[i]
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            conn.request("GET", parts.path, headers={"Authorization": f"Token {key}"})
            response = conn.getresponse()
            response.read()
            own.append((time.perf_counter() - t0) * 1000)
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
                return
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{url}: {len(errors)} failed requests; first: {errors[0]}")
    flat = [s for own in samples for s in own]
    return {"rps": len(flat) / wall, "p50_ms": percentile(flat, 50), "p99_ms": percentile(flat, 99),
            "requests": len(flat)}


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="server workers (default: one per core)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--duration", type=float, default=None, help="seconds per endpoint and round")
    parser.add_argument("--server", choices=list(LAYOUTS), default="wsgi",
                        help="wsgi: production's HTTP server; asgi: the websocket server's workers; daphne: before issue 17")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk is there")
    args = parser.parse_args()
    if args.database_url is None and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        args.database_url = os.environ["DATABASE_URL"]
    workers = 1 if args.server == "daphne" else args.workers or len(os.sched_getaffinity(0))
    duration = args.duration or (4.0 if args.quick else 10.0)
    rounds = args.repeats or 2
    cpu_n = 200 if args.quick else 600
    use_wrk = shutil.which("wrk") is not None and not args.python_client

    production = {
        "DJANGO_SETTINGS_MODULE": "web_tier_settings",
        "ALPHA_ENV": "production", "DEBUG": "false", "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING",
        "DJANGO_SECRET_KEY": "bench-" + "k" * 60, "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback (TLS ends at the proxy in production)
        "API_THROTTLE_USER": "100000/s",
    }
    with Bench("web_tier", args, extra_env=production) as bench:
        layout = LAYOUTS[args.server][2].format(n=workers)
        bench.header(f"{layout}, {args.connections} connections, "
                     f"{'wrk -t1' if use_wrk else 'Python client (wrk not found: apt-get install wrk)'}")
        key = seed()
        cpu = in_process_cpu(key, cpu_n, 5)
        from django.db import connections

        connections.close_all()
        server, url = start_server(bench, workers, args.server)
        drive = run_wrk if use_wrk else run_python_client
        for path in ENDPOINTS.values():  # warm every worker's caches and connections
            drive(url + path, key, connections=args.connections, duration=1)
        pooled: dict[str, list[dict[str, float]]] = {name: [] for name in ENDPOINTS}
        server_cpu: dict[str, float] = {name: 0.0 for name in ENDPOINTS}
        for _ in range(rounds):  # alternate, so drift in the machine's load touches all alike
            for name, path in ENDPOINTS.items():
                pids = server_pids(server)
                before = sum(proc_cpu_seconds(p) for p in pids)
                figures = drive(url + path, key, connections=args.connections, duration=duration)
                server_cpu[name] += sum(proc_cpu_seconds(p) for p in pids) - before
                pooled[name].append(figures)
        results = {}
        for name, runs in pooled.items():
            requests = sum(r["requests"] for r in runs)
            results[name] = {
                "rps": sum(r["rps"] for r in runs) / len(runs),
                "p50_ms": sorted(r["p50_ms"] for r in runs)[len(runs) // 2],
                "p99_ms": max(r["p99_ms"] for r in runs),
                "requests": requests,
                "server_cpu_ms_per_request": server_cpu[name] / requests * 1000 if requests else float("nan"),
                "in_process_cpu_ms": cpu[name]["best_ms"], "in_process_cpu_ms_median": cpu[name]["median_ms"],
            }
        bare = results["bare"]
        for name, r in results.items():
            r["rps_ratio_to_bare"] = ratio(r["rps"], bare["rps"])
            r["p50_ratio_to_bare"] = ratio(r["p50_ms"], bare["p50_ms"])
        print_table(f"Under load ({rounds} rounds x {duration:g} s per endpoint; p50 the median round's, "
                    f"p99 the worst round's)",
                    ["endpoint", "req/s", "p50 ms", "p99 ms", "req/s / bare", "p50 / bare",
                     "server CPU ms/req", "in-process CPU ms/req"],
                    [[ENDPOINTS[n], r["rps"], r["p50_ms"], r["p99_ms"], r["rps_ratio_to_bare"],
                      r["p50_ratio_to_bare"], r["server_cpu_ms_per_request"], r["in_process_cpu_ms"]]
                     for n, r in results.items()])
        print(f"\nIn-process CPU: best of 5 rounds of {cpu_n} test-client requests (median of the rounds: "
              + ", ".join(f"{n} {c['median_ms']:.2f}" for n, c in cpu.items()) + " ms)")
        bench.results.update({"server": args.server, "workers": workers, "connections": args.connections, "duration_s": duration,
                              "rounds": rounds, "load_generator": "wrk -t1" if use_wrk else "python",
                              "endpoints": results})
        bench.write_results("-".join(([] if args.server == "wsgi" else [args.server])
                                     + (["pg"] if args.database_url else [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
