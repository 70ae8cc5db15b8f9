"""Schema-driven fuzz run of the REST API: schemathesis against the running app's
/api/schema/, authenticated with a real API token.

    .venv/bin/python scripts/fuzz_api.py [--max-examples 20] [--timeout 420] [--seed N]

Starts everything it needs and stops it again: an embedded Redis, a throwaway SQLite
database in a temporary directory (migrated, with a user, a paper account, a few
positions and a token), and the ASGI server (daphne) on a free loopback port. Checks:
no server error (5xx) and every response conforms to the schema. Exits non-zero on any
failure. Needs schemathesis (4.x) in the virtualenv.

Outside venues are pointed at a closed local port, so accounts the fuzzer creates on
Binance or Hyperliquid fail fast instead of reaching the internet.

``api_server()`` is also used by bench/api_latency.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))

import embedded_redis  # noqa: E402

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once

SEED = r"""
import json, sys
from decimal import Decimal
from django.contrib.auth import get_user_model
from alpha_platform.web.api.auth import api_token_create
from alpha_platform.web.models import ApiToken
from exchanges.services import exchange_account_create
from trading.services import order_submit

username, token_id = sys.argv[1], int(sys.argv[2])
user = get_user_model().objects.create_user(username, f"{username}@example.invalid", "not-used-" + username * 2)
account = exchange_account_create(owner=user, name="paper", venue="paper", credentials={})
positions = []
for symbol, qty in (("BTC/USDT", "0.01"), ("ETH/USDT", "0.1"), ("SOL/USDT", "1")):
    result = order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG",
                          quantity=Decimal(qty), source="api", actor="seed")
    positions.append(result.order.status)
issued = api_token_create(user=user, name=username)
if token_id:
    # A token id far from the small ids the fuzzer tries, so it does not revoke its own token.
    ApiToken.objects.filter(pk=issued.token.pk).update(id=token_id)
print(json.dumps({"key": issued.key, "account": account.pk, "orders": positions}))
"""


@dataclass
class ApiServer:
    url: str
    token: str
    account_id: int
    workdir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    def answered() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
        except urllib.error.HTTPError:
            return  # it answers (401 without a token)

    try:
        Retrying(retry=retry_if_exception_type(OSError), stop=stop_after_delay(timeout),
                 wait=wait_fixed(0.1))(answered)
    except RetryError:
        raise RuntimeError(f"{url} did not answer within {timeout}s") from None


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def api_server(*, username: str = "fuzz", token_id: int = 0, env_overrides: dict[str, str] | None = None,
               quiet: bool = True) -> Iterator[ApiServer]:
    """Redis, a fresh SQLite database and daphne, all stopped and removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="alpha-api-"))
    redis_proc = daphne = None
    try:
        redis_port, web_port = embedded_redis.free_port(), _free_port()
        redis_proc = embedded_redis.start(redis_port)
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
        env.update({
            "DJANGO_SETTINGS_MODULE": "alpha_platform.settings",
            "ALPHA_ENV": "development",
            "DEBUG": "false",
            "ALPHA_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CREDENTIALS_ENCRYPTION_KEYS": "",
            "LOG_LEVEL": "WARNING",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "BINANCE_FAPI_URL": CLOSED, "BINANCE_FAPI_TESTNET_URL": CLOSED,
            "HYPERLIQUID_API_URL": CLOSED, "HYPERLIQUID_TESTNET_API_URL": CLOSED,
            **(env_overrides or {}),
        })
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run(manage + ["migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
        seeded = subprocess.run(manage + ["shell", "-c", SEED.replace("sys.argv[1], int(sys.argv[2])",
                                                                   f"{username!r}, {int(token_id)}")],
                                check=True, env=env, cwd=ROOT, capture_output=True, text=True)
        seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        log = open(workdir / "daphne.log", "w")  # noqa: SIM115 - closed with the directory
        daphne = subprocess.Popen([str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(web_port),
                                   "alpha_platform.asgi:application"],
                                  env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{web_port}"
        _wait_http(f"{url}/api/ping/", 30, daphne)
        if not quiet:
            print(f"API at {url} (data in {workdir})", flush=True)
        yield ApiServer(url=url, token=seed["key"], account_id=seed["account"], workdir=workdir)
    except BaseException:
        log_file = workdir / "daphne.log"
        if log_file.exists():
            sys.stderr.write("--- daphne.log (tail) ---\n" + log_file.read_text()[-4000:] + "\n")
        raise
    finally:
        _stop(daphne)
        _stop(redis_proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=20, help="test cases per operation and phase")
    parser.add_argument("--timeout", type=float, default=420, help="hard limit for the schemathesis run, seconds")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed (random if not given)")
    parser.add_argument("--workers", default="2")
    args = parser.parse_args()

    st = BIN / "st"
    if not st.exists():
        print("schemathesis is not installed: .venv/bin/pip install schemathesis", file=sys.stderr)
        return 2
    started = time.monotonic()
    # High request rates: the fuzzer must not spend its budget on 429s (still documented).
    rates = {"API_THROTTLE_USER": "100000/min", "API_THROTTLE_ORDERS": "100000/min"}
    with api_server(username="fuzz", token_id=7_340_033, env_overrides=rates, quiet=False) as server:
        command = [str(st), "run", f"{server.url}/api/schema/",
                   "--header", f"Authorization: Token {server.token}",
                   # The fuzzer reuses ids it has seen: it would revoke its own token.
                   "--exclude-operation-id", "auth_tokens_revoke",
                   "--checks", "not_a_server_error,response_schema_conformance",
                   "--phases", "examples,coverage,fuzzing",
                   "--max-examples", str(args.max_examples),
                   "--workers", args.workers,
                   "--request-timeout", "30",
                   "--suppress-health-check", "all",
                   "--no-shrink",
                   "--output-sanitize", "true"]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "SCHEMATHESIS_TELEMETRY": "false"}
        try:
            # From the throwaway directory: schemathesis keeps a cache in its working directory.
            code = subprocess.run(command, env=env, timeout=args.timeout, cwd=server.workdir).returncode
        except subprocess.TimeoutExpired:
            print(f"schemathesis did not finish within {args.timeout}s", file=sys.stderr)
            code = 3
    print(f"fuzz run: {'clean' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
