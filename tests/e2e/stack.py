"""The platform's real processes for end-to-end runs (the browser test and bench/):
an embedded Redis, daphne serving the ASGI app on a free port, and a Celery worker,
against a throwaway SQLite database in a temporary directory.

    with Stack(tmp_dir) as stack:
        stack.manage("shell", "-c", "...")
        stack.url  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
import embedded_redis  # noqa: E402


class Stack:
    def __init__(self, tmp: Path, *, worker: bool = True, concurrency: int = 4,
                 asgi: str = "tests.e2e.asgi:application", extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tmp)
        self.worker = worker
        self.concurrency = concurrency
        self.asgi = asgi
        self.port = embedded_redis.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.redis: subprocess.Popen | None = None
        redis_port = embedded_redis.free_port()
        self.redis_port = redis_port
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ALPHA_TEST_"))},
            "DJANGO_SETTINGS_MODULE": "alpha_platform.settings",
            "ALPHA_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{self.tmp / 'db.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CREDENTIALS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALPHA_VAR_DIR": str(self.tmp),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            **(extra_env or {}),
        }

    # -- lifecycle
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._start_redis()
        self.manage("migrate", "--noinput", "-v", "0")
        self._spawn("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), self.asgi])
        if self.worker:
            self._spawn("worker", [str(BIN / "celery"), "-A", "alpha_platform", "worker", "--pool", "threads",
                                   "--concurrency", str(self.concurrency), "--loglevel", "INFO",
                                   "--without-gossip", "--without-mingle", "--hostname", f"e2e-{self.port}@%h"])
        self._wait_http(f"{self.url}/login/")
        time.sleep(0.3)
        self._check_alive()  # the answer came from our daphne, not from a port squatter
        if self.worker:
            self._wait_log("worker", "ready.")

    def stop(self) -> None:
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=5)
        self.redis = None

    def stop_web(self) -> None:
        proc = self.processes.pop("web")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

    def start_web(self) -> None:
        """(Re)start daphne on the same port."""
        self._spawn("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), self.asgi])
        self._wait_http(f"{self.url}/login/")

    def _start_redis(self) -> None:
        """Our own redis-server, proven ours: on a shared machine another process may take
        the free port first, and a PING alone would then be answered by its server."""
        import redis

        for _ in range(5):
            proc = embedded_redis.start(self.redis_port)
            try:
                pid = redis.Redis(port=self.redis_port, socket_timeout=2).info("server")["process_id"]
            except redis.RedisError:
                pid = None
            if proc.poll() is None and pid == proc.pid:
                self.redis = proc
                return
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=5)
            self.redis_port = embedded_redis.free_port()
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        raise RuntimeError("could not start a redis-server of our own")

    # -- helpers
    def manage(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
                                input=input, capture_output=True, text=True, timeout=180)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, lines: int = 40) -> str:
        out = []
        for name in self.processes:
            text = self.log(name).splitlines()[-lines:]
            out.append(f"----- {name} (last {lines} lines) -----\n" + "\n".join(text))
        return "\n".join(out)

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def _wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer within {timeout}s\n{self.tails()}")

    def _wait_log(self, name: str, needle: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            if needle in self.log(name):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not log {needle!r} within {timeout}s\n{self.tails()}")
