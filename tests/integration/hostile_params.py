"""The hostile run's parameters (tests/integration/test_hostile_run.py): its time limits,
the users and their caps, and the bounds its checks hold the platform to."""

from __future__ import annotations

from decimal import Decimal

TICK_LIMIT = 6  # AGENT_TICK_TIME_LIMIT of the run, seconds
# The deadline is proven by evidence, not by a duration: the late attack's reply is due
# LATE_REPLY s after the model server received its request (the server's own clock), and its
# decision must have ended before that (an unenforced deadline waits for the reply, which the
# client's 30 s LLM_TIMEOUT_SECONDS lets arrive). The other decisions get a wide sanity bound,
# TICK_LIMIT + TIME_MARGIN, still far below LATE_REPLY (an enforced deadline ends near 6 s,
# none near 25 s), so a loaded machine closing a decision late does not read as a breach.
TIME_MARGIN = 8.0  # what a decision may take beyond its limit (closing and recording on a loaded machine)
LATE_REPLY = 25.0  # the late attack answers after this long (> TICK_LIMIT + TIME_MARGIN + 10, < 30)
TICK_WAIT = 120.0  # how long a round waits for its ticks to end: a bound for a stuck tick, not a speed check
assert LATE_REPLY - (TICK_LIMIT + TIME_MARGIN) >= 10 and LATE_REPLY < 30
RACE_ROUNDS = 12
CLAIMED_DECISIONS = range(1, 35)  # at-d<N>-1 claimed ahead of the agents, N in here (index 0 is left
# alone: there each attack places its one legitimate order, whose record is checked)

CAP_NOTIONAL = Decimal("250")  # max_position_notional_usd of both users
CAP_LEVERAGE = 2  # max_leverage of both users (and of their agents)
SLIPPAGE = Decimal("1.02")  # a market order fills within the paper venue's slippage
STORED_BYTES_CAP = 512 * 1024  # a decision's messages / raw replies: model text is clipped in storage
REQUEST_BYTES_CAP = 512 * 1024  # one model request: the 1 MB reply is not carried into later rounds
TOKENS_CAP = 10**8  # a token count no real decision reaches
PASSWORD = "hostile-run-password-1"
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
FALLBACK_PRICE = {"BTC/USDT": Decimal("80000"), "ETH/USDT": Decimal("4000")}  # above the simulated walk

USERS = {
    "alice": {"username": "alicehx", "model": "gpt-4o-mini"},
    "bob": {"username": "bobhx", "model": "gpt-4.1-mini"},
}
STAFF = "malloryhx"
for _key, _user in USERS.items():
    _user.update(account=f"{_user['username']}-paper", agent=f"{_user['username']}-agent")
