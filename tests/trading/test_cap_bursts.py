"""Caps under concurrency, counted the way the issue's reviewers counted them (issue 12,
faults 1 and 2): bursts of 10 to 40 opening orders released at once, each worth about
cap / 2.4 so that any two fit the user's total exposure cap and any three do not, spread
over several symbols and accounts, sent from threads, from the API, from separate
processes and beside agents' ticks. After each burst the exposure is read from the
venues' own books (the paper venue's stored book, the Binance fake's positions) at each
symbol's mark; a burst breaches when it is above the cap as RiskProfile defines it
(``max_total_exposure_percent`` of the equity across all the user's accounts). Zero
breaches are expected in every burst. Each burst has a fresh user, so bursts do not share
state. CAP_BURSTS=20 runs more bursts (bench/cap_bursts.py runs them and prints counts).
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.ccxt import CcxtTrader
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from tests.factories import UserFactory, make_account
from tests.fakes.binance_server import FakeBinanceFutures
from tests.trading.bursts import (
    LEVERAGE,
    PRICES,
    SYMBOLS,
    TOTAL_CAP,
    BurstResult,
    binance_book,
    binance_marks,
    burst_size,
    bursts,
    measure,
    outcome_of,
    paper_book,
    plan_slots,
    report,
    run_threads,
    set_cap_profile,
)
from trading.services import order_submit
from trading.services.positions import balance_snapshot_record

pytestmark = pytest.mark.slow  # 3 to 10 s a variant on SQLite
API_KEY, API_SECRET = "A1" * 32, "S2" * 32


def fresh_user(variant: str, i: int):
    user = UserFactory(username=f"b-{variant[:12]}-{i}")
    set_cap_profile(user)
    return user


def record_balances(accounts) -> Decimal:
    """Each account's balance as the platform records it after a fill, so the gate knows
    the equity of every account before the first order (as it would in a running system)."""
    equity = Decimal(0)
    for account in accounts:
        trader = trader_for_account(account)
        try:
            balance = trader.get_balance()
        finally:
            trader.close()
        balance_snapshot_record(account=account, balance=balance)
        equity += balance.margin_balance
    return equity


def submit_slot(slot, actor: str):
    account = ExchangeAccount.objects.select_related("owner").get(pk=slot.account_id)
    result = order_submit(account=account, symbol=slot.symbol, side="BUY", position_side="LONG",
                          quantity=slot.quantity, leverage=LEVERAGE, source="api", actor=actor)
    return result.order.status


class Threads:
    """order_submit from threads, on ``paper_accounts`` paper accounts x three symbols."""

    def __init__(self, variant: str, paper_accounts: int) -> None:
        self.variant, self.paper_accounts = variant, paper_accounts

    def accounts(self, user):
        return [make_account(user, name=f"paper-{k}") for k in range(self.paper_accounts)]

    def books(self, accounts):
        return [paper_book(a, PRICES) for a in accounts]

    def places(self, accounts):
        return [(a, s, PRICES[s]) for a in accounts for s in SYMBOLS]

    def fire(self, slots, n: int, i: int) -> list:
        return run_threads(n, lambda k: submit_slot(slots[k % len(slots)], f"burst-{i}-{k}"))

    def burst(self, i: int) -> BurstResult:
        user = fresh_user(self.variant, i)
        accounts = self.accounts(user)
        equity = record_balances(accounts)
        slots = plan_slots(self.places(accounts), TOTAL_CAP * equity)
        n = burst_size(i)
        outcomes = Counter(outcome_of(v) for v in self.fire(slots, n, i))
        return measure(self.variant, i, n, self.books(accounts), outcomes)

    def close(self) -> None:
        pass


class PaperAndBinance(Threads):
    """One paper account and one Binance USD-M account (the fake, which ccxt really talks
    to), three symbols each, each valued at its own venue's mark."""

    def __init__(self, variant: str, monkeypatch) -> None:
        super().__init__(variant, 1)
        self.monkeypatch = monkeypatch
        self.fake: FakeBinanceFutures | None = None

    def accounts(self, user):
        self.close()
        self.fake = FakeBinanceFutures(api_key=API_KEY, api_secret=API_SECRET).start()
        for name in ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"):
            self.monkeypatch.setenv(name, self.fake.url)
        clear_config_cache()
        CcxtTrader.clear_market_cache()
        return [make_account(user, name="paper-0"),
                make_account(user, venue="binance_futures", credentials={"api_key": API_KEY,
                                                                         "api_secret": API_SECRET})]

    def places(self, accounts):
        paper, binance = accounts
        marks = binance_marks(self.fake)
        return [(paper, s, PRICES[s]) for s in SYMBOLS] + [(binance, s, marks[s]) for s in SYMBOLS]

    def books(self, accounts):
        paper, binance = accounts
        return [paper_book(paper, PRICES), binance_book(binance, self.fake)]

    def close(self) -> None:
        if self.fake is not None:
            self.fake.stop()
            self.fake = None
        clear_config_cache()
        CcxtTrader.clear_market_cache()


class Api(Threads):
    """POST /api/orders/ from threads, each with its own client and the user's token."""

    def fire(self, slots, n: int, i: int) -> list:
        from rest_framework.test import APIClient

        from alpha_platform.web.api.auth import api_token_create

        account = ExchangeAccount.objects.get(pk=slots[0].account_id)
        key = api_token_create(user=account.owner, name=f"burst-{i}").key

        def post(k: int) -> str:
            slot = slots[k % len(slots)]
            client = APIClient()
            client.raise_request_exception = False  # an error escaping the view is the 500 a caller gets
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            resp = client.post("/api/orders/", {"account": slot.account_id, "symbol": slot.symbol, "side": "BUY",
                                                "position_side": "LONG", "quantity": str(slot.quantity),
                                                "leverage": LEVERAGE}, format="json")
            body = resp.json() if resp.get("Content-Type", "").startswith("application/json") else {}
            status = body.get("status") or (body.get("order") or {}).get("status") or ""
            return f"HTTP {resp.status_code} {status}".strip()

        return run_threads(n, post)


class Processes(Threads):
    """order_submit from three spawned processes (a few threads each) set up against the
    test's own database (a file for SQLite) and Redis, released together by an Event."""

    WORKERS = 3

    def __init__(self, variant: str, paper_accounts: int) -> None:
        super().__init__(variant, paper_accounts)
        from tests.trading.bursts.worker import serve

        ctx = multiprocessing.get_context("spawn")
        self.go, self.results = ctx.Event(), ctx.Queue()
        self.jobs = [ctx.Queue() for _ in range(self.WORKERS)]
        db_name = str(connection.settings_dict["NAME"])
        prices = {k: str(v) for k, v in PRICES.items()}
        self.procs = [ctx.Process(target=serve, args=(db_name, prices, q, self.results, self.go), daemon=True)
                      for q in self.jobs]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            kind, _pid = self.results.get(timeout=120)
            assert kind == "ready"

    def fire(self, slots, n: int, i: int) -> list:
        self.go.clear()
        shares = [[] for _ in self.procs]
        for k in range(n):
            slot = slots[k % len(slots)]
            shares[k % len(shares)].append((slot.account_id, slot.symbol, str(slot.quantity), LEVERAGE))
        for q, share in zip(self.jobs, shares, strict=True):
            q.put(share)
        armed = [self.results.get(timeout=120) for _ in self.procs]
        assert all(kind == "armed" for kind, _ in armed), armed
        self.go.set()
        outcomes: list[str] = []
        for _ in self.procs:
            kind, values = self.results.get(timeout=180)
            assert kind == "done"
            outcomes.extend(values)
        return outcomes

    def close(self) -> None:
        for q in self.jobs:
            q.put(None)
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()


class OneSymbol(Threads):
    """The control: one account, one symbol, which held on the old code too (the issue's
    reviewers: 2,400 attempts, no breach). A harness that counted breaches here would be
    counting its own mistakes."""

    def places(self, accounts):
        return [(accounts[0], "BTC/USDT", PRICES["BTC/USDT"])]


class AgentsMixed(Threads):
    """Agents' ticks among the threads: two agents per paper account, each a model behind
    the fake OpenAI server (the real openai client talks to it) that opens a BTC long worth
    one slot; the other attempts are order_submit calls on every symbol of both accounts."""

    AGENTS_PER_ACCOUNT = 2

    def __init__(self, variant: str, llm) -> None:
        super().__init__(variant, 2)
        self.llm, self.scripted, self.agents = llm, False, []

    def accounts(self, user):
        from tests.factories import make_agent

        accounts = super().accounts(user)
        self.agents = [make_agent(user, account, name=f"agent-{account.pk}-{j}", model_name="gpt-4o-mini",
                                  symbols=["BTC/USDT"], instructions="Trade.", max_tool_rounds=1)
                       for account in accounts for j in range(self.AGENTS_PER_ACCOUNT)]
        return accounts

    def fire(self, slots, n: int, i: int) -> list:
        from agents.models import AgentConfig
        from agents.services import agent_decision_run
        from tests.fakes.hostile_replies import ORDER_DEFAULTS
        from trading.models import Order

        if not self.scripted:  # every burst's user starts with the same equity, so one script serves all
            btc = next(s for s in slots if s.symbol == "BTC/USDT")
            self.llm.script(self.llm.forever(self.llm.tool_calls(("open_long", {
                **ORDER_DEFAULTS, "symbol": "BTC/USDT", "usd_notional": float(btc.notional), "leverage": 3}),
                delay=0.05)))
            self.scripted = True
        agent_ids = [a.pk for a in self.agents]
        asked = len(self.llm.requests) + len(agent_ids)

        def agents_deciding() -> None:
            # An agent's tick reads the market and builds its prompt before it orders; the
            # other attempts wait until every agent has asked its model, so the agents'
            # orders and theirs meet at the gate.
            deadline = time.monotonic() + 60
            while len(self.llm.requests) < asked and time.monotonic() < deadline:
                time.sleep(0.005)

        def work(k: int):
            if k < len(agent_ids):
                agent = AgentConfig.objects.select_related("owner", "account").get(pk=agent_ids[k])
                decision = agent_decision_run(agent=agent)
                statuses = list(Order.objects.filter(actor=f"agent:{agent.pk}").values_list("status", flat=True))
                return f"agent {','.join(statuses) or 'no order: ' + decision.status}"
            agents_deciding()
            return submit_slot(slots[k % len(slots)], f"burst-{i}-{k}")

        return run_threads(max(n, len(agent_ids) + 1), work)


VARIANTS = ("one_account_one_symbol", "one_account_three_symbols", "two_paper_accounts", "paper_and_binance",
            "api_threads", "processes", "agents_mixed")


def runner_for(variant: str, request):
    if variant == "one_account_one_symbol":
        return OneSymbol(variant, 1)
    if variant == "one_account_three_symbols":
        return Threads(variant, 1)
    if variant == "agents_mixed":
        return AgentsMixed(variant, request.getfixturevalue("llm"))
    if variant == "two_paper_accounts":
        return Threads(variant, 2)
    if variant == "paper_and_binance":
        return PaperAndBinance(variant, request.getfixturevalue("monkeypatch"))
    if variant == "api_threads":
        return Api(variant, 2)
    return Processes(variant, 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variant", VARIANTS)
def test_bursts_of_opening_orders_never_breach_the_total_exposure_cap(variant, market, request):
    runner = runner_for(variant, request)
    try:
        results = [runner.burst(i) for i in range(bursts())]
    finally:
        runner.close()
    print(report(results))
    breached = [r.line() for r in results if r.breached]
    assert not breached, f"{len(breached)} of {len(results)} bursts breached the cap:\n" + "\n".join(breached)
    escaped = [r.line() for r in results if any(k.startswith(("raised", "HTTP 5")) for k in r.outcomes)]
    assert not escaped, "errors escaped to the caller:\n" + "\n".join(escaped)
