"""Latency of GET /api/positions/ under concurrent clients, beside a minimal DRF endpoint
(GET /api/ping/, same authentication, throttling and middleware) measured in the same run.

    .venv/bin/python bench/api_latency.py [--clients 32] [--requests 1600] [--json]

Starts its own embedded Redis, a throwaway SQLite database in a temporary directory
(migrated; a user with a paper account holding three positions, made through the
services; an API token) and the ASGI server (daphne) on a free loopback port; stops and
removes all of it at the end. Each client is a thread with its own requests.Session
(keep-alive). Reports median and p99 per endpoint and their ratio; the difference is
what the positions endpoint itself costs (queries and serialization).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from fuzz_api import api_server  # noqa: E402  (the same server set-up as the fuzz run)

ENDPOINTS = {"positions": "/api/positions/", "ping": "/api/ping/"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[index]


def drive(url: str, token: str, *, clients: int, total: int) -> tuple[list[float], float]:
    """``total`` GETs of ``url`` spread over ``clients`` threads, all released together."""
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        session = requests.Session()
        session.trust_env = False  # loopback: no proxy
        session.headers["Authorization"] = f"Token {token}"
        own = latencies[index]
        try:
            start.wait()
            for _ in range(per_client[index]):
                t0 = time.perf_counter()
                response = session.get(url, timeout=60)
                own.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
        except Exception as exc:  # reported, not swallowed
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests to {url}; first: {errors[0]}")
    return [s for own in latencies for s in own], wall


def figures(samples: list[float], wall: float) -> dict[str, float]:
    return {"requests": len(samples), "median_ms": statistics.median(samples) * 1000,
            "p99_ms": percentile(samples, 99) * 1000, "mean_ms": statistics.fmean(samples) * 1000,
            "throughput_rps": len(samples) / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=1600, help="requests per endpoint")
    parser.add_argument("--warmup", type=int, default=64, help="requests per endpoint before measuring")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    began = time.monotonic()
    # Throttling stays on (it is part of every request's cost) with a rate the run cannot reach.
    with api_server(username="bench", env_overrides={"API_THROTTLE_USER": "100000000/min"}) as server:
        check = requests.get(server.url + ENDPOINTS["positions"], timeout=30,
                             headers={"Authorization": f"Token {server.token}"},
                             proxies={"http": "", "https": ""}).json()
        if check.get("count", 0) < 1:
            raise RuntimeError(f"the seeded positions are missing: {check}")
        for name, path in ENDPOINTS.items():
            drive(server.url + path, server.token, clients=args.clients, total=args.warmup)
        # Alternate halves so drift (caches, the database file) touches both endpoints alike;
        # the figures are over the pooled samples of both halves.
        pooled: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in ENDPOINTS}
        for _ in range(2):
            for name, path in ENDPOINTS.items():
                samples, wall = drive(server.url + path, server.token, clients=args.clients,
                                      total=args.requests // 2)
                pooled[name] = (pooled[name][0] + samples, pooled[name][1] + wall)
        results = {name: figures(*pooled[name]) for name in ENDPOINTS}
        positions_count = check["count"]
    ratio = {"median": results["positions"]["median_ms"] / results["ping"]["median_ms"],
             "p99": results["positions"]["p99_ms"] / results["ping"]["p99_ms"]}
    summary = {"clients": args.clients, "positions_in_response": positions_count, "results": results,
               "ratio_positions_to_ping": ratio, "seconds": round(time.monotonic() - began, 1)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"GET latency under {args.clients} concurrent clients (daphne, SQLite, {positions_count} positions)")
    print(f"{'endpoint':<18}{'requests':>9}{'median ms':>11}{'p99 ms':>9}{'mean ms':>9}{'req/s':>8}")
    for name, path in ENDPOINTS.items():
        r = results[name]
        print(f"{path:<18}{r['requests']:>9}{r['median_ms']:>11.1f}{r['p99_ms']:>9.1f}{r['mean_ms']:>9.1f}"
              f"{r['throughput_rps']:>8.0f}")
    print(f"positions / ping: median x{ratio['median']:.2f}, p99 x{ratio['p99']:.2f}  "
          f"(run took {summary['seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
