"""The soak's small parts: where things are, figures and tables, timestamps, one child
process in its own process group (``Proc``), and reading a JSON-lines log."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = ROOT / "var" / "bench"
PYTHON = sys.executable
BIN = Path(sys.executable).parent
for _p in (ROOT, ROOT / "scripts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

DEFAULT_PG = "postgres://alpha:alpha@127.0.0.1:5432/alpha"
BEAT_STOP_MARGIN = 10.0
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


# --------------------------------------------------------------------------- small helpers
def now() -> float:
    return time.time()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def stats(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values), "mean": statistics.fmean(values)}


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows) if rows else 10
    print(f"\n{title}")
    print("  " + "-" * (width + 40))
    for key, value in rows:
        print(f"  {key.ljust(width)}  {fmt(value)}")
    sys.stdout.flush()


def iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- processes
class Proc:
    """One child in its own process group, logging to a file (appended across restarts)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, role: str = "") -> None:
        self.name, self.args, self.env, self.log, self.role = name, args, env, log, role
        self.popen: subprocess.Popen | None = None
        self.starts: list[float] = []
        self.intentional = False  # stopped on purpose: the supervisor leaves it down

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> Proc:
        out = open(self.log, "ab")
        self.popen = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        out.close()
        self.starts.append(now())
        return self

    def send_signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        if not self.alive():
            return
        self.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    if not path.exists():
        return lines
    with open(path, "rb") as f:
        for raw in f:
            if not raw.startswith(b"{"):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            try:
                line["_t"] = dt.datetime.fromisoformat(line["time"].replace("Z", "+00:00")).timestamp()
            except (KeyError, ValueError, AttributeError):
                continue
            lines.append(line)
    return lines
