"""The production web tier, as docker-compose.yml starts it (the same programs and
arguments, on loopback ports), each server with 2 workers: the HTTP server (WSGI) answers an
API request with a token and refuses a bad one; the websocket server (ASGI) accepts a
signed-in browser's connection and pushes to it (the push published from another process,
through the Channels layer in Redis, reaches the socket whichever worker holds it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

SEED = r"""
import json
from django.contrib.auth import get_user_model
from django.test import Client
from alpha_platform.web.api.auth import api_token_create

user = get_user_model().objects.create_user("web", "web@example.invalid", "web-pw-0123456789")
browser = Client()
browser.force_login(user)
print(json.dumps({"key": api_token_create(user=user, name="t").key, "user": user.pk,
                  "session": browser.cookies["sessionid"].value}))
"""

PUSH = r"""
from alpha_platform.common.realtime import send_to_user_on_commit
send_to_user_on_commit(USER, {"type": "probe", "n": 1}, staff=False)  # no transaction: sent now
"""


def _compose_command(service: str, port: int) -> list[str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["command"]
    assert command[0] == "gunicorn" and "-b" in command, command
    command = list(command)
    command[command.index("-b") + 1] = f"127.0.0.1:{port}"
    return [str(Path(sys.executable).parent / "gunicorn"), *command[1:]]


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def _start(service: str, port: int, env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(_compose_command(service, port), cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_workers(server: subprocess.Popen, url: str, log_path: Path, workers: int = 2) -> None:
    """Until the server answers (/api/ping/ without a token: 401) with every worker up."""
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, f"the server exited: {log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no answer within 60 s: {log_path.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(f"{url}/api/ping/", timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code == 401 and len(_children(server.pid)) == workers:
                return
        except OSError:
            pass
        time.sleep(0.2)


def _stop(server: subprocess.Popen | None) -> None:
    if server is not None and server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)


@pytest.mark.integration
@pytest.mark.slow
def test_production_servers_with_two_workers_serve_the_api_and_websockets(tmp_path):
    from websockets.sync.client import connect

    sys.path.insert(0, str(ROOT / "scripts"))
    import embedded_redis

    redis_port, web_port, ws_port = (embedded_redis.free_port() for _ in range(3))
    redis_proc = embedded_redis.start(redis_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(DJANGO_SETTINGS_MODULE="alpha_platform.settings", ALPHA_ENV="testing", DEBUG="false",
               ALPHA_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", WEB_CONCURRENCY="2", WS_CONCURRENCY="2",
               PYTHONUNBUFFERED="1")
    web = ws_server = None
    web_log, ws_log = tmp_path / "web.log", tmp_path / "ws.log"
    try:
        manage = [sys.executable, "manage.py"]
        subprocess.run(manage + ["migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        seed = json.loads(subprocess.run(manage + ["shell", "-c", SEED], cwd=ROOT, env=env, check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1])
        web, ws_server = _start("web", web_port, env, web_log), _start("ws", ws_port, env, ws_log)
        url = f"http://127.0.0.1:{web_port}"
        _wait_for_workers(web, url, web_log)
        _wait_for_workers(ws_server, f"http://127.0.0.1:{ws_port}", ws_log)

        # HTTP: the WSGI server, a token answered and a bad one refused, on either worker.
        for _ in range(4):
            request = urllib.request.Request(f"{url}/api/ping/", headers={"Authorization": f"Token {seed['key']}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200 and json.loads(response.read()) == {"ok": True}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/ping/",
                                                          headers={"Authorization": "Token not-a-key"}), timeout=10)
        assert refused.value.code == 401
        assert "gthread" in web_log.read_text()  # WSGI workers, not the ASGI ones

        # Websockets: the ASGI server, a signed-in browser's socket, and a push from elsewhere.
        with connect(f"ws://127.0.0.1:{ws_port}/ws/updates/?stream=user", open_timeout=10,
                     additional_headers={"Cookie": f"sessionid={seed['session']}",
                                         "Origin": f"http://127.0.0.1:{ws_port}"}) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello" and hello["user"] == "web"
            subprocess.run(manage + ["shell", "-c", PUSH.replace("USER", str(int(seed["user"])))], cwd=ROOT, env=env,
                           check=True)
            pushed = json.loads(ws.recv(timeout=10))
            assert pushed["type"] == "probe" and pushed["n"] == 1
    finally:
        _stop(web)
        _stop(ws_server)
        redis_proc.terminate()
        redis_proc.wait(10)
