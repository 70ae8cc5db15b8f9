"""Profiling the worker under load: a py-spy recording, its summary (self and inclusive
shares), and the frames classified by what they are (platform, model client, database, ...)."""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

from _common import (
    ROOT,
    summarize,
)


def py_spy_record(path: str, pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen([path, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate",
                             "50", "--gil", "--nonblocking", "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)


def summarize_profile(raw: Path, top: int = 25) -> dict:
    """Collapsed stacks -> share of GIL-holding samples per function (self and inclusive),
    the platform's own functions and the libraries' alike."""
    if not raw.exists():
        return {}
    total = 0
    self_c: Counter = Counter()
    incl_c: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            c = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";")[1:]]  # first is the thread
        if not frames:
            continue
        total += c
        self_c[_frame(frames[-1])] += c
        for f in {_frame(f) for f in frames}:
            incl_c[f] += c
    if not total:
        return {"samples": 0}
    return {"samples": total,
            "self": [(f, c / total) for f, c in self_c.most_common(top)],
            "inclusive": [(f, c / total) for f, c in incl_c.most_common(top * 3)]}


def _frame(f: str) -> str:
    f = re.sub(r":\d+\)$", ")", f.strip())
    f = f.replace(str(ROOT) + "/", "").replace(".venv/lib/python3.11/site-packages/", "")
    return re.sub(r"/root/\.pyenv/versions/[^/]+/lib/python3\.\d+/", "", f)


def classify(decisions: list[dict], enq: dict[int, list[float]], interval: int) -> dict:
    """One row per (agent, cycle): ok / late / skipped / error / missing, and the lag."""
    by_agent = defaultdict(list)
    for d in decisions:
        by_agent[d["agent_id"]].append(d)
    counts = Counter()
    lags = []
    for agent_id, times in enq.items():
        ds = sorted(by_agent.get(agent_id, []), key=lambda d: d["started"])
        for t in times:
            end = t + interval
            window = [d for d in ds if t <= d["started"] < end]
            done = [d for d in window if d["status"] in ("held", "executed", "rejected")]
            if done:
                d = done[0]
                lag = d["finished"] - t if d["finished"] else math.inf
                lags.append(lag)
                counts["ok" if d["finished"] and d["finished"] <= end else "late"] += 1
            elif any(d["status"] == "running" for d in window):
                counts["late"] += 1
            elif any(d["status"] == "error" for d in window):
                counts["error"] += 1
            elif any(d["status"] == "skipped" for d in window):
                counts["skipped"] += 1
            else:
                counts["missing"] += 1
    due = sum(len(v) for v in enq.values())
    counts["due"] = due
    counts["missed"] = due - counts["ok"]
    finite = [x for x in lags if math.isfinite(x)]
    return {"counts": dict(counts), "lag_s": summarize(finite)}


def classify_beat(decisions: list[dict], agent_ids: list[int], t0: float, t1: float, interval: int) -> dict:
    """Real beat: no enqueue times, so judge by each agent's decisions in [t0, t1): the gap
    between consecutive non-skipped decisions (a missed tick shows as a gap of ~2 intervals)."""
    by_agent = defaultdict(list)
    for d in decisions:
        by_agent[d["agent_id"]].append(d)
    counts = Counter()
    gaps = []
    expected = (t1 - t0) / interval
    for agent_id in agent_ids:
        ds = sorted((d for d in by_agent.get(agent_id, []) if t0 <= d["started"] < t1), key=lambda d: d["started"])
        good = [d for d in ds if d["status"] in ("held", "executed", "rejected")]
        counts["ok"] += len(good)
        counts["skipped"] += sum(1 for d in ds if d["status"] == "skipped")
        counts["error"] += sum(1 for d in ds if d["status"] == "error")
        for a, c in zip(good, good[1:]):
            gaps.append(c["started"] - a["started"])
        counts["missed"] += max(0, round(expected) - len(good))
    counts["due"] = round(expected) * len(agent_ids)
    return {"counts": dict(counts), "gap_s": summarize(gaps)}
