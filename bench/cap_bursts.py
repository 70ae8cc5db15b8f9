"""Cap bursts, longer (issue 12): runs tests/trading/test_cap_bursts.py with more bursts
per variant than the suite does (CAP_BURSTS, default 20 here) and prints the breach count
of each variant: bursts of 10 to 40 concurrent opening orders where two fit the user's
total exposure cap and three do not, on one or two accounts and three symbols, from
threads, the API, separate processes and agents' ticks (the control, one account and one
symbol, should never breach). The test module does the set-up; pytest-django makes the
test database (SQLite file, or ``test_<name>`` beside ``--database-url``).

    .venv/bin/python bench/cap_bursts.py [--bursts 20] [--only processes ...] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, print_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bursts", type=int, default=20, help="bursts per variant")
    p.add_argument("--only", action="append", default=[], help="a variant (repeatable); default all")
    p.add_argument("--database-url", default=None, help="PostgreSQL URL (pytest-django creates test_<name>)")
    args = p.parse_args()
    report = Path(tempfile.mkstemp(prefix="cap-bursts-", suffix=".jsonl")[1])
    env = {**os.environ, "CAP_BURSTS": str(args.bursts), "CAP_BURSTS_REPORT": str(report)}
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:logging", "--create-db",
           "tests/trading/test_cap_bursts.py"]
    if args.only:
        cmd += ["-k", " or ".join(args.only)]
    t0 = time.perf_counter()
    # check=False: a breach fails the tests, and that is a figure, not an error here
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    report.unlink(missing_ok=True)
    if not rows:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        return 1
    print_table(f"Cap bursts: {args.bursts} per variant on {rows[0]['database']} ({elapsed:.0f} s)",
                ["variant", "bursts", "breaches", "attempts", "worst exposure / cap", "outcomes"],
                [[r["variant"], r["bursts"], r["breaches"], r["attempts"], r["worst_exposure_over_cap"],
                  ", ".join(f"{k}: {v}" for k, v in sorted(r["outcomes"].items()))] for r in rows])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"cap_bursts-{rows[0]['database']}.json"
    out.write_text(json.dumps({"bursts": args.bursts, "seconds": round(elapsed, 1), "variants": rows}, indent=2))
    print(f"\nFigures written to {out.relative_to(ROOT)}")
    return 0 if all(r["breaches"] == 0 for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
