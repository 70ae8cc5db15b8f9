"""An audit that cannot be lost, and a time limit the decision enforces itself.

A hostile model behind a local OpenAI-compatible server (the real ``openai`` client talks
to it) places an order in round 0 and then sends replies that used to crash the record step;
a worker "dies" mid-decision; the final save fails; the budget stops the agent; the model
answers slower than the tick's time limit; the sweep closes a decision still running; a
tick is delivered twice. In every case the Decision is closed (or closable), its ToolCalls
point at the orders it placed, and its spend is counted.
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from agents.models import Decision, ToolCall
from agents.services import _pricing_table, agent_decision_run, decisions_close_abandoned, llm_spend
from agents.tasks import agent_tick_task
from risk.models import RiskEvent, RiskProfile
from tests.factories import make_agent
from tests.fakes import hostile_replies as hostile
from tests.fakes.openai_server import USER_KEY
from trading.models import Order

KEY = USER_KEY
MODEL = "gpt-4o-mini"


@pytest.fixture
def llm(llm, settings):
    settings.LLM_TIMEOUT_SECONDS = 30
    return llm


def closing(fn):
    """A thread's target that closes the thread's own database connection when done (on
    PostgreSQL an open one keeps the test database from being dropped)."""
    def run():
        try:
            fn()
        finally:
            connection.close()
    return run


def gpt_agent(user, **kw):
    return make_agent(user, model_name=MODEL, symbols=["BTC/USDT"], instructions="Trade.", **kw)


def round0_cost(prompt=1200, completion=80):
    return D(_pricing_table().cost(MODEL, prompt, completion))


def assert_orders_audited(decision):
    """Round 0's order is FILLED and its ToolCall points at it; no order of the account lacks one."""
    call = ToolCall.objects.get(decision=decision, index=0)
    assert call.name == "open_long" and call.order is not None, (call.status, call.result)
    assert call.order.status == "FILLED" and call.order.client_order_id.endswith(f"d{decision.pk}-0")
    parents = Order.objects.filter(account=decision.agent.account, parent__isnull=True)
    assert parents.exists()
    assert not parents.filter(tool_calls__isnull=True).exists(), "an order without its tool call"


def run_swallowing(agent):
    """The old code let the record step's exception escape; what counts is what was recorded."""
    try:
        agent_decision_run(agent=agent)
    except Exception:
        pass
    return Decision.objects.get(agent=agent)


@pytest.mark.django_db
@pytest.mark.parametrize("second", ["negative_usage", "huge_usage", "nan_arguments", "symbol_as_list"])
def test_a_hostile_second_round_cannot_lose_the_first_rounds_order_or_spend(user, market, llm, second):
    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm), getattr(hostile, second)(llm), llm.forever(llm.reply("done")))
    decision = run_swallowing(agent)
    assert decision.status not in (Decision.Status.RUNNING, Decision.Status.SKIPPED), decision.error
    assert decision.finished_at is not None
    assert_orders_audited(decision)
    # Round 0's tokens and cost are in the Decision and in the budget's sum, whatever round 1 said.
    assert 1200 <= decision.prompt_tokens < 2 ** 31 and 80 <= decision.completion_tokens < 2 ** 31
    assert decision.cost_usd >= round0_cost() > 0
    assert llm_spend(user_id=user.pk) == decision.cost_usd
    # The stored audit reads back as JSON (no NaN), with round 1 in it.
    decision.refresh_from_db()
    assert len(decision.messages) >= 4


class WorkerKilled(BaseException):
    """Stands in for the worker process dying (SIGKILL): nothing after it runs."""


@pytest.mark.django_db
def test_a_worker_dying_in_round_one_leaves_the_order_its_tool_call_and_the_spend(user, market, llm, monkeypatch):
    from agents import llm as llm_module

    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm), llm.forever(llm.reply("done")))
    real, calls = llm_module.OpenAIChatClient.complete, []

    def dying(self, messages, tools, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise WorkerKilled()
        return real(self, messages, tools, **kw)

    monkeypatch.setattr(llm_module.OpenAIChatClient, "complete", dying)
    with pytest.raises(WorkerKilled):
        agent_decision_run(agent=agent)
    decision = Decision.objects.get(agent=agent)
    assert decision.status == Decision.Status.RUNNING  # nothing could close it: the process is gone
    assert_orders_audited(decision)
    assert ToolCall.objects.get(decision=decision, index=0).status == "ok"
    assert decision.prompt_tokens == 1200 and decision.cost_usd == round0_cost()
    assert llm_spend(user_id=user.pk) == round0_cost()
    # The sweep closes it past its deadline; the audit stays.
    assert decisions_close_abandoned(now=decision.deadline_at + timedelta(minutes=5)) == 1
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and decision.cost_usd == round0_cost()


@pytest.mark.django_db
def test_a_failing_final_save_still_closes_the_decision(user, market, llm):
    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm), llm.forever(llm.reply("done")))
    failed = []

    def fail_final_save(execute, sql, params, many, context):
        if sql.startswith('UPDATE "agents_decision"') and '"messages"' in sql:
            failed.append(sql[:40])
            raise DatabaseError("injected: the final save failed")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_final_save):
        decision = run_swallowing(agent)
    assert failed
    assert decision.status == Decision.Status.ERROR and decision.finished_at is not None
    assert "could not be saved" in decision.error and "injected" in decision.error
    assert_orders_audited(decision)
    assert decision.cost_usd >= round0_cost() > 0


@pytest.mark.django_db
def test_a_budget_stop_before_the_first_call_is_a_risk_event(user, market, llm):
    RiskProfile.objects.filter(user=user).update(monthly_llm_budget_usd=D("0"))
    agent = gpt_agent(user)
    decision = agent_decision_run(agent=agent)
    assert decision.status == Decision.Status.BUDGET_EXCEEDED and llm.requests == []
    event = RiskEvent.objects.get(user=user, kind=RiskEvent.Kind.BUDGET)
    assert not event.allowed and event.rule == "monthly_llm_budget" and event.actor == f"agent:{agent.pk}"
    assert D(event.details["cap_usd"]) == 0 and D(event.details["spent_usd"]) == 0
    assert event.details["decision_id"] == decision.pk
    assert f"risk event {event.pk}" in decision.error


@pytest.mark.django_db
def test_a_budget_stop_mid_decision_is_a_risk_event_and_the_decision_says_so(user, market, llm):
    RiskProfile.objects.filter(user=user).update(monthly_llm_budget_usd=round0_cost() / 2)
    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm), llm.forever(llm.reply("done")))
    decision = agent_decision_run(agent=agent)
    assert len(llm.requests) == 1  # round 1 was refused
    assert decision.status == Decision.Status.EXECUTED and "budget" in decision.summary
    event = RiskEvent.objects.get(user=user, kind=RiskEvent.Kind.BUDGET)
    assert D(event.details["spent_usd"]) == round0_cost() and D(event.details["cap_usd"]) == round0_cost() / 2
    assert f"risk event {event.pk}" in decision.error
    assert_orders_audited(decision)


# --------------------------------------------------------------------------- time limits and the lock
DELAY = 8.0  # the model's delay: well past the time limit below


def _wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_slow_model_is_cut_off_at_the_time_limit_and_the_lock_is_held_throughout(user, market, llm, settings):
    settings.AGENT_TICK_TIME_LIMIT = 4
    ttl = settings.AGENT_LOCK_TTL_SECONDS = 1.0  # renewed every ~0.33 s; unrenewed it would expire 4 times over
    agent = gpt_agent(user)
    llm.script(llm.forever(llm.delayed(llm.reply("hold"), DELAY)))
    redis, key = cache.client.get_client(write=True), cache.make_key(f"lock:agent:{agent.pk}")
    results = {}
    worker = threading.Thread(target=closing(lambda: results.setdefault("a", agent_tick_task.apply(
        args=[agent.pk], task_id="tick-a").get())))
    worker.start()
    assert _wait_for(lambda: redis.exists(key)), "the tick never took its lock"
    ticks, first = [], time.monotonic()
    while worker.is_alive():  # ticks of the same agent while it runs are skipped
        pk = agent_tick_task.apply(args=[agent.pk], task_id=f"tick-b{len(ticks)}").get()
        ticks.append((pk, time.monotonic() - first))
        time.sleep(0.1)
    worker.join(DELAY * 2)
    decision = Decision.objects.get(pk=results["a"])
    assert decision.status == Decision.Status.ERROR and "time limit of 4 s reached" in decision.error
    assert (decision.finished_at - decision.started_at).total_seconds() < DELAY  # it did not wait the model out
    assert decision.tick_id == "tick-a" and decision.deadline_at is not None
    # The last tick may have been sent between the worker's release of the lock and the loop seeing it end:
    # that tick rightly took the free lock and ran. Every earlier one must have been skipped.
    others = {d.pk: d for d in Decision.objects.filter(pk__in=[pk for pk, _ in ticks])}
    assert len(others) == len(ticks)
    ran = [pk for pk, _ in ticks if others[pk].status != Decision.Status.SKIPPED]
    assert ran in ([], [ticks[-1][0]]), ran
    for pk in ran:
        assert others[pk].started_at >= decision.finished_at  # it began only after the lock was released
    skipped = [(pk, at) for pk, at in ticks if pk not in ran]
    assert len(llm.requests) == 1 + len(ran)  # it reached the model; no skipped tick did
    assert skipped and skipped[-1][1] > 2.5 * ttl, skipped  # the lock outlived several TTLs
    assert not redis.exists(key)  # released at the end


@pytest.mark.django_db(transaction=True)
def test_a_decision_that_loses_its_lock_sends_no_order(user, market, llm, settings):
    settings.AGENT_LOCK_TTL_SECONDS = 0.6
    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm, delay=1.5), llm.forever(llm.reply("done")))
    results = {}
    worker = threading.Thread(target=closing(lambda: results.setdefault("a", agent_tick_task.apply(
        args=[agent.pk], task_id="tick-lost").get())))
    worker.start()
    assert _wait_for(lambda: llm.requests)
    # The lock is taken over (as if it had expired and another worker's tick had taken it).
    key = cache.make_key(f"lock:agent:{agent.pk}")
    cache.client.get_client(write=True).set(key, b"someone-else", px=60_000)
    worker.join(10)
    decision = Decision.objects.get(pk=results["a"])
    assert decision.status == Decision.Status.ERROR and "lock was lost" in decision.error
    call = ToolCall.objects.get(decision=decision)
    assert call.status == "error" and call.order is None and "not executed" in call.result["error"]
    assert not Order.objects.exists()
    assert cache.client.get_client(write=True).get(key) == b"someone-else"  # not released by the loser


@pytest.mark.django_db(transaction=True)
def test_a_late_save_never_rewrites_a_decision_the_sweep_closed(user, market, llm, settings):
    settings.AGENT_TICK_TIME_LIMIT = 30
    agent = gpt_agent(user)
    llm.script(llm.delayed(llm.reply("hold"), 1.5))
    worker = threading.Thread(target=closing(lambda: agent_decision_run(agent=agent)))
    worker.start()
    assert _wait_for(lambda: llm.requests)
    decision = Decision.objects.get(agent=agent)
    assert decision.status == Decision.Status.RUNNING
    assert decisions_close_abandoned(now=timezone.now() + timedelta(hours=1)) == 1
    worker.join(10)
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and "stopped before it finished" in decision.error
    assert decision.prompt_tokens > 0 and decision.cost_usd > 0  # the spend still counts


@pytest.mark.django_db
def test_a_redelivered_tick_makes_one_decision(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.forever(llm.reply("hold")))
    first = agent_tick_task.apply(args=[agent.pk], task_id="tick-1").get()
    again = agent_tick_task.apply(args=[agent.pk], task_id="tick-1").get()
    assert first == again and Decision.objects.filter(agent=agent).count() == 1
    assert len(llm.requests) == 1


@pytest.mark.django_db
@pytest.mark.django_db
def test_a_worker_dying_between_the_order_and_its_tool_call_update_is_linked_by_the_sweep(
        user, market, llm, monkeypatch):
    """The order is placed (FILLED) and the process dies before the tool call learns its id:
    whoever closes the decision (here the sweep) links the pending tool call to its order."""
    from agents import context

    agent = gpt_agent(user)
    llm.script(hostile.open_long(llm), llm.forever(llm.reply("done")))
    real = context.order_submit

    def placed_then_killed(**kw):
        real(**kw)
        raise WorkerKilled()

    monkeypatch.setattr(context, "order_submit", placed_then_killed)
    with pytest.raises(WorkerKilled):
        agent_decision_run(agent=agent)
    decision = Decision.objects.get(agent=agent)
    call = ToolCall.objects.get(decision=decision, index=0)
    assert call.status == ToolCall.Status.PENDING and call.order is None
    assert Order.objects.get(parent__isnull=True).status == "FILLED"

    assert decisions_close_abandoned(now=decision.deadline_at + timedelta(minutes=5)) == 1
    assert_orders_audited(decision)
    call.refresh_from_db()
    assert call.status == ToolCall.Status.ERROR and call.result["order_status"] == "FILLED"
    assert call.risk_event_id == call.order.risk_event_id is not None


def test_a_tick_redelivered_after_its_worker_died_closes_the_old_decision_and_runs_nothing(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.forever(llm.reply("hold")))
    started = timezone.now() - timedelta(minutes=10)
    dead = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.RUNNING, tick_id="tick-2",
                                   started_at=started, deadline_at=started + timedelta(seconds=120))
    assert agent_tick_task.apply(args=[agent.pk], task_id="tick-2").get() == dead.pk
    dead.refresh_from_db()
    assert dead.status == Decision.Status.ERROR and "delivered again" in dead.error
    assert Decision.objects.filter(agent=agent).count() == 1 and llm.requests == []
    assert not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_tick_delivered_twice_at_once_makes_one_decision_and_one_order(user, market, llm):
    agent = gpt_agent(user)
    rounds = 6
    script = []
    for _ in range(rounds):
        script += [hostile.open_long(llm, usd_notional=100, delay=0.2), llm.reply("done")]
    llm.script(*script)
    for n in range(rounds):
        barrier, results = threading.Barrier(2), []

        def deliver(n=n, barrier=barrier, results=results):
            try:
                barrier.wait()
                results.append(agent_tick_task.apply(args=[agent.pk], task_id=f"dup-{n}").get())
            finally:
                connection.close()  # this thread's own connection (PostgreSQL: else it outlives the test)

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        [t.start() for t in threads]
        [t.join(20) for t in threads]
        assert len(results) == 2 and results[0] == results[1], results
        assert Decision.objects.filter(tick_id=f"dup-{n}").count() == 1
    decisions = Decision.objects.filter(agent=agent)
    assert decisions.count() == rounds
    ran = decisions.exclude(status=Decision.Status.SKIPPED)
    assert ran.exists()
    # Each delivered tick placed at most one order (one client order id per tool call of its one decision).
    for decision in ran:
        assert ToolCall.objects.filter(decision=decision, order__isnull=False).count() <= 1
    parents = Order.objects.filter(parent__isnull=True)
    assert parents.count() <= ran.count()
    assert not parents.filter(tool_calls__isnull=True).exists()
