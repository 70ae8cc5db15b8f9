"""The processes of the capacity benchmark and their control: a fake model server in a
child process, a Celery worker and beat started as the Procfile starts them, a CPU sampler,
and the Redis side (purge, queue depth, idle and ready waits, ticks and reconciles sent)."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import time
from pathlib import Path

from _common import (
    PYTHON,
    ROOT,
    Bench,
    machine_cpu_seconds,
    proc_cpu_seconds,
)

from .base import (
    KEY,
)

# --------------------------------------------------------------------------- (b) capacity
FAKE_LLM_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from http.server import ThreadingHTTPServer
ThreadingHTTPServer.request_queue_size = 1024  # a burst of new connections must not hit a 5-deep backlog
from tests.fakes.openai_server import FakeOpenAIServer
s = FakeOpenAIServer(api_key={key!r}).start()
s.script(s.forever(s.delayed(s.reply("hold"), {delay!r})))
open({urlfile!r}, "w").write(s.url)
served = 0
while True:
    time.sleep(5)
    with s._lock:
        served += len(s.requests)
        s.requests.clear()
    open({countfile!r}, "w").write(str(served))
"""


def spawn_fake_llm(b: Bench, delay: float) -> tuple[subprocess.Popen, str, Path]:
    urlfile, countfile = b.tmp / "llm.url", b.tmp / "llm.count"
    code = FAKE_LLM_CHILD.format(root=str(ROOT), key=KEY, delay=delay, urlfile=str(urlfile), countfile=str(countfile))
    proc = b.spawn([PYTHON, "-c", code], log="fake_llm.log")
    deadline = time.time() + 20
    while not urlfile.exists() or not urlfile.read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"fake model server did not start: {(b.tmp / 'fake_llm.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, urlfile.read_text(), countfile


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise RuntimeError(f"no {name} in the Procfile")


def worker_command(concurrency: int, hostname: str) -> list[str]:
    """The Procfile's worker line, with the bench's concurrency, a quiet log and its own name."""
    args = procfile_command("worker")
    out = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "$WORKER_CONCURRENCY":
            a = str(concurrency)
        if a == "--loglevel":
            out += ["--loglevel", "WARNING"]
            skip = True
            continue
        if a == "--hostname":
            out += ["--hostname", hostname]
            skip = True
            continue
        out.append(a)
    out[0] = str(Path(PYTHON).parent / out[0]) if out[0] == "celery" else out[0]
    return out


def beat_command() -> list[str]:
    args = procfile_command("beat")
    args = ["--loglevel" if a == "--loglevel" else a for a in args]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--loglevel":
            out += ["--loglevel", "WARNING"]
            skip = True
            continue
        out.append(a)
    out[0] = str(Path(PYTHON).parent / out[0]) if out[0] == "celery" else out[0]
    return out


def queues_of(cmd: list[str]) -> list[str]:
    if "-Q" in cmd:
        return cmd[cmd.index("-Q") + 1].split(",")
    return ["celery"]


class Sampler:
    """CPU seconds of the processes that matter over a step. PostgreSQL backends come and
    go (connections are recycled), so they are tracked pid by pid whenever ``poll`` runs."""

    def __init__(self, b: Bench, pids: dict[str, int]) -> None:
        self.b = b
        self.pids = pids
        db = b.database_url.rsplit("/", 1)[-1].split("?")[0]
        self.db_tag = f" {db} " if b.results.get("database") == "postgresql" else None
        self.backends: dict[int, list[float]] = {}  # pid -> [first seen cpu, last seen cpu]

    def poll(self) -> None:
        if self.db_tag is None:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and self.db_tag in cmd:
                cpu = proc_cpu_seconds(pid)
                if math.isnan(cpu):
                    continue
                seen = self.backends.setdefault(pid, [cpu, cpu])
                seen[1] = cpu

    def sample(self) -> dict[str, float]:
        self.poll()
        s = {name: proc_cpu_seconds(pid) for name, pid in self.pids.items()}
        if self.b.redis_proc is not None:
            s["redis"] = proc_cpu_seconds(self.b.redis_proc.pid)
        if self.db_tag is not None:
            s["postgres backends"] = sum(last - first for first, last in self.backends.values())
        busy, total = machine_cpu_seconds()
        s["machine busy"], s["machine total"] = busy, total
        s["bench process"] = time.process_time()
        s["wall"] = time.time()
        return s

    @staticmethod
    def cores(a: dict, b: dict) -> dict[str, float]:
        wall = b["wall"] - a["wall"]
        out = {k: (b[k] - a[k]) / wall for k in a if k not in ("wall", "machine total", "machine busy")}
        out["machine busy"] = (b["machine busy"] - a["machine busy"]) / wall
        return out


def background_cores(seconds: float = 5.0) -> float:
    """Cores the machine keeps busy while this benchmark's processes are idle (other users)."""
    b0, _ = machine_cpu_seconds()
    t0 = time.time()
    time.sleep(seconds)
    b1, _ = machine_cpu_seconds()
    return (b1 - b0) / (time.time() - t0)


def _redis():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def redis_commands() -> int:
    return int(_redis().info("stats")["total_commands_processed"])


def purge(queues: list[str]) -> int:
    from alpha_platform.celery import app

    n = 0
    with app.connection_for_write() as conn:
        for q in queues:
            try:
                n += conn.default_channel.queue_purge(q) or 0
            except Exception:  # noqa: BLE001  (a queue nobody declared yet)
                pass
    return n


def queue_depth(queues: list[str]) -> int:
    r = _redis()
    return sum(r.llen(q) for q in queues)


def wait_idle(timeout: float) -> bool:
    from agents.models import Decision

    deadline = time.time() + timeout
    while time.time() < deadline:
        if not Decision.objects.filter(status=Decision.Status.RUNNING).exists():
            return True
        time.sleep(0.5)
    return False


def wait_worker(proc, log: Path, timeout: float = 60.0) -> None:
    from alpha_platform.celery import app

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited: {log.read_text()[-3000:]}")
        try:
            if app.control.ping(timeout=1.0):
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not answer a ping within {timeout}s: {log.read_text()[-3000:]}")


def send_tick(agent_id: int, interval: int):
    """What django-celery-beat sends for an agent's PeriodicTask (expires = expire_seconds)."""
    from agents.tasks import agent_tick_task

    agent_tick_task.apply_async(args=[agent_id], kwargs={}, expires=interval,
                                headers={"periodic_task_name": f"agent-{agent_id}"})


def send_reconcile():
    from trading.tasks import reconcile_all_task

    reconcile_all_task.apply_async(expires=60, headers={"periodic_task_name": "reconcile-all-accounts"})
