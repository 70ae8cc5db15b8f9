"""The production web server, as docker-compose.yml starts it (the same program and
arguments, on a loopback port), with 2 workers: both workers are up, an API request with a
token is answered, and the websocket consumer accepts a signed-in browser's connection
and pushes to it (the push published from another process, through the Channels layer in
Redis, reaches the socket whichever worker holds it)."""

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


def _compose_web_command(port: int) -> list[str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    assert command[0] == "gunicorn" and "-b" in command, command
    command = list(command)
    command[command.index("-b") + 1] = f"127.0.0.1:{port}"
    return [str(Path(sys.executable).parent / "gunicorn"), *command[1:]]


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


@pytest.mark.integration
@pytest.mark.slow
def test_production_server_with_two_workers_serves_the_api_and_websockets(tmp_path):
    from websockets.sync.client import connect

    sys.path.insert(0, str(ROOT / "scripts"))
    import embedded_redis

    redis_port, web_port = embedded_redis.free_port(), embedded_redis.free_port()
    redis_proc = embedded_redis.start(redis_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(DJANGO_SETTINGS_MODULE="alpha_platform.settings", ALPHA_ENV="testing", DEBUG="false",
               ALPHA_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1")
    server = None
    log_path = tmp_path / "web.log"
    try:
        manage = [sys.executable, "manage.py"]
        subprocess.run(manage + ["migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        seed = json.loads(subprocess.run(manage + ["shell", "-c", SEED], cwd=ROOT, env=env, check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1])
        with open(log_path, "ab") as log:
            server = subprocess.Popen(_compose_web_command(web_port), cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{web_port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"the server exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer within 60 s: {log_path.read_text()[-3000:]}"
            try:
                urllib.request.urlopen(f"{url}/api/ping/", timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and len(_children(server.pid)) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert len(_children(server.pid)) == 2, "two worker processes under the master"

        request = urllib.request.Request(f"{url}/api/ping/", headers={"Authorization": f"Token {seed['key']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json.loads(response.read()) == {"ok": True}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/ping/",
                                                          headers={"Authorization": "Token not-a-key"}), timeout=10)
        assert refused.value.code == 401

        with connect(f"ws://127.0.0.1:{web_port}/ws/updates/?stream=user", open_timeout=10,
                     additional_headers={"Cookie": f"sessionid={seed['session']}",
                                         "Origin": f"http://127.0.0.1:{web_port}"}) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello" and hello["user"] == "web"
            subprocess.run(manage + ["shell", "-c", PUSH.replace("USER", str(int(seed["user"])))], cwd=ROOT, env=env,
                           check=True)
            pushed = json.loads(ws.recv(timeout=10))
            assert pushed["type"] == "probe" and pushed["n"] == 1
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
        redis_proc.terminate()
        redis_proc.wait(10)
