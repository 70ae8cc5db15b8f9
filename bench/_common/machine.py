"""Processes and the machine: free ports, CPU seconds of processes and of the machine, what the
machine is (cores, model, Python)."""

from __future__ import annotations

import math
import os
import platform
import socket
from collections.abc import Callable
from typing import Any


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def cpu_of_processes(match: Callable[[str], bool]) -> float:
    """Sum of CPU seconds of the processes whose command line matches (e.g. postgres)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd and match(cmd):
            value = proc_cpu_seconds(int(entry))
            if not math.isnan(value):
                total += value
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _proc_field(path: str, prefix: str) -> str:
    """The value after the colon of the first line of a /proc file that starts with ``prefix``."""
    try:
        for line in open(path):
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine_info() -> dict[str, Any]:
    mem_kib = _proc_field("/proc/meminfo", "MemTotal").split()
    return {"cpus": os.cpu_count(), "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
            "memory": f"{int(mem_kib[0]) // 1024 // 1024} GiB" if mem_kib else "",
            "python": platform.python_version(), "platform": platform.platform(), "hostname": platform.node()}
