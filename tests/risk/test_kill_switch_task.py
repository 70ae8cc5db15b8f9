"""The kill switch's trip and its flattening task.

The trip (the switch, its RiskEvent, the agents halted) is one transaction and returns
before any venue is touched; a Celery task queued on commit flattens the accounts one by
one, recording progress on the switch and announcing every step; a second pass never runs
alongside a first (a per-user lock), a pass that died is resumed by a later one, and a
failed one can be retried."""

import os
from decimal import Decimal as D

import pytest
import redis
from celery.exceptions import Retry
from django.urls import reverse

import risk.services as risk_services
import trading.services.kill_switch as ks
from agents.models import AgentConfig
from exchanges.services import trader_for_account
from risk.models import KillSwitch, RiskEvent
from tests.factories import make_account, make_agent
from trading.models import Order, Position
from trading.services import kill_switch_lift, kill_switch_trip, order_submit
from trading.tasks import flatten_lock, kill_switch_flatten_task, reconcile_all_task

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32


def buy(account, symbol="BTC/USDT", qty="0.02", **kw):
    order = order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=D(qty),
                         source="api", **kw).order
    assert order.status in ("FILLED", "NEW"), order.error
    return order


@pytest.fixture
def queued(monkeypatch):
    """The flatten tasks queued (ids), instead of sending them to the broker."""
    sent: list[int] = []
    monkeypatch.setattr(kill_switch_flatten_task, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def events(monkeypatch):
    """The kill_switch events the risk services announce, in order."""
    seen: list[dict] = []
    monkeypatch.setattr(risk_services, "send_to_user_on_commit",
                        lambda user_id, event, **kw: seen.append(event) if event["type"] == "kill_switch" else None)
    return seen


def test_the_trip_returns_before_flattening_and_queues_the_task_on_commit(user, market, queued,
                                                                         django_capture_on_commit_callbacks):
    paper, second = make_account(user, name="p1"), make_account(user, name="p2")
    agent = make_agent(user, paper)
    buy(paper)
    buy(second, "ETH/USDT", "0.5")
    resting = buy(paper, qty="0.01", order_type="LIMIT", price="40000")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
        assert queued == []  # nothing is queued before the trip commits

    # Recorded and halted at once; no venue touched: the positions and the order still stand.
    assert switch.active and RiskEvent.objects.filter(user=user, kind="kill_switch").exists()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED
    assert Position.objects.filter(owner=user, status="open").count() == 2
    assert trader_for_account(paper).get_open_orders() != []
    resting.refresh_from_db()
    assert resting.status == Order.Status.NEW
    switch.refresh_from_db()
    assert (switch.flatten_state, switch.flatten_accounts_total, switch.flatten_accounts_done) == ("queued", 2, 0)
    assert switch.summary["account_ids"] == [paper.pk, second.pk]

    for callback in callbacks:
        callback()
    assert queued == [switch.pk]
    kill_switch_flatten_task(switch.pk)  # the worker
    switch.refresh_from_db()
    assert (switch.flatten_state, switch.flatten_accounts_done, switch.flatten_orders_cancelled,
            switch.flatten_positions_closed, switch.flatten_errors) == ("done", 2, 1, 2, [])
    assert switch.flatten_started_at <= switch.flatten_finished_at and switch.flatten_attempts == 1
    assert not Position.objects.filter(owner=user, status="open").exists()


def test_a_broker_down_at_the_trip_leaves_it_queued_and_a_later_pass_queues_it(
        user, market, monkeypatch, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    make_account(user)
    sent = []

    def down(args, **kw):
        raise OperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(kill_switch_flatten_task, "apply_async", down)
    with django_capture_on_commit_callbacks(execute=True):
        switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)  # does not raise
    switch.refresh_from_db()
    assert switch.active and switch.flatten_state == "queued"

    monkeypatch.setattr(kill_switch_flatten_task, "apply_async", lambda args, **kw: sent.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        reconcile_all_task()
    assert sent == []  # queued a moment ago: the task may still be on its way
    KillSwitch.objects.filter(pk=switch.pk).update(updated_at=switch.updated_at.replace(year=2000))
    with django_capture_on_commit_callbacks(execute=True):
        reconcile_all_task()
    assert sent == [switch.pk]


def test_the_trip_is_one_transaction_with_the_agents_halt(user, market, queued, monkeypatch):
    """If the agents cannot be halted, the trip is not recorded either (and nothing queued)."""
    import agents.services

    make_agent(user, make_account(user))

    def broken(**kw):
        raise RuntimeError("schedule store down")

    monkeypatch.setattr(agents.services, "agents_halt_for_user", broken)
    with pytest.raises(RuntimeError):
        kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    assert not KillSwitch.objects.exists() and not RiskEvent.objects.filter(kind="kill_switch").exists()
    assert queued == []


def test_progress_is_recorded_and_announced_at_every_step(user, market, queued, events):
    accounts = [make_account(user, name=f"p{i}") for i in range(3)]
    for account in accounts:
        buy(account)
    buy(accounts[0], qty="0.01", order_type="LIMIT", price="40000")
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    assert [e["progress"]["state"] for e in events] == ["queued"]
    assert events[0]["progress"]["text"] == "Flattening queued: 3 accounts to flatten."

    kill_switch_flatten_task(switch.pk)

    progress = [e["progress"] for e in events[1:]]
    assert all(e["id"] == switch.pk and e["active"] for e in events)
    assert progress[0]["state"] == "running" and progress[0]["text"].startswith("Flattening 1 of 3 accounts")
    assert progress[-1]["state"] == "done" and progress[-1]["finished_at"] is not None
    # One event per order cancelled, per position closed and per account finished, in order.
    steps = [(p["accounts_done"], p["orders_cancelled"], p["positions_closed"]) for p in progress[1:-1]]
    assert steps == [(0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 2), (2, 1, 2), (2, 1, 3), (3, 1, 3)]
    assert progress[-1]["text"] == "Flattened 3 accounts: 1 order cancelled, 3 positions closed."


def test_a_failing_venue_does_not_stop_the_other_accounts_and_a_retry_finishes(
        user, market, binance, queued, client, monkeypatch, django_capture_on_commit_callbacks):
    paper = make_account(user, name="paper")
    venue = make_account(user, venue="binance_futures", name="binance",
                         credentials={"api_key": API_KEY, "api_secret": API_SECRET})
    other = make_account(user, name="paper-2")
    buy(paper)
    buy(other, "ETH/USDT", "0.5")
    binance.inject("/fapi/*", "503", times=None)  # the venue is down for every request

    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    kill_switch_flatten_task(switch.pk)

    switch.refresh_from_db()
    assert switch.flatten_state == "failed" and switch.flatten_accounts_done == 3
    assert switch.flatten_positions_closed == 2
    assert {e["account_id"] for e in switch.flatten_errors} == {venue.pk}
    assert not Position.objects.filter(account__in=[paper, other], status="open").exists()
    client.force_login(user)
    page = client.get(reverse("portal:kill_switch")).content.decode()
    assert "Retry flattening" in page and "Flattening failed on 1 of 3 accounts" in page

    # The venue is back (and, a minute later, the account's circuit breaker has closed):
    # the retry flattens the failed account only.
    binance.clear_faults()
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in store.scan_iter("*cb:*"):
        store.delete(key)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:kill_switch_retry"))
    assert queued == [switch.pk]
    switch.refresh_from_db()
    assert (switch.flatten_state, switch.flatten_accounts_done, switch.flatten_errors) == ("queued", 2, [])
    calls = []
    real = ks.account_flatten
    monkeypatch.setattr(ks, "account_flatten", lambda **kw: calls.append(kw["account"].pk) or real(**kw))
    kill_switch_flatten_task(switch.pk)
    switch.refresh_from_db()
    assert calls == [venue.pk]
    assert (switch.flatten_state, switch.flatten_accounts_done, switch.flatten_errors, switch.flatten_attempts) == (
        "done", 3, [], 2)
    assert "Retry flattening" not in client.get(reverse("portal:kill_switch")).content.decode()


def test_a_pass_never_runs_alongside_another_of_the_same_user(user, market, queued, monkeypatch):
    paper = make_account(user)
    buy(paper)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    # A second trip while it is on: the same switch, no second task.
    assert kill_switch_trip(user=user, label="again", reason="x").pk == switch.pk
    calls = []
    real = ks.account_flatten
    monkeypatch.setattr(ks, "account_flatten", lambda **kw: calls.append(kw["account"].pk) or real(**kw))

    # A pass holds the user's lock (a redelivered or re-queued task arrives meanwhile):
    # the newcomer flattens nothing and asks to run again later.
    running = flatten_lock(user.pk)
    assert running.acquire()
    with pytest.raises(Retry):
        kill_switch_flatten_task(switch.pk)
    assert calls == [] and Position.objects.filter(owner=user, status="open").exists()
    switch.refresh_from_db()
    assert switch.flatten_state == "queued" and switch.flatten_attempts == 0
    running.release()

    kill_switch_flatten_task(switch.pk)
    kill_switch_flatten_task(switch.pk)  # a duplicate delivery after it finished: nothing to do
    assert calls == [paper.pk]
    assert Order.objects.filter(owner=user, source=Order.Source.SYSTEM).count() == 1
    switch.refresh_from_db()
    assert switch.flatten_state == "done" and switch.flatten_attempts == 1


def test_a_pass_killed_mid_way_is_finished_by_a_later_pass(user, market, queued, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    """A worker dies after the first account: the row says running, one account done. The
    task is acks_late (the broker delivers it again) and reconcile_all queues a flattening
    that stopped moving; either way the next pass does the rest, not the first account again."""

    class WorkerKilled(BaseException):
        pass

    first, second = make_account(user, name="a"), make_account(user, name="b")
    buy(first)
    buy(second)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    calls = []
    real = ks.account_flatten

    def dying(**kw):
        calls.append(kw["account"].pk)
        if kw["account"].pk == second.pk and calls.count(second.pk) == 1:
            raise WorkerKilled
        return real(**kw)

    monkeypatch.setattr(ks, "account_flatten", dying)
    with pytest.raises(WorkerKilled):
        kill_switch_flatten_task(switch.pk)
    switch.refresh_from_db()
    assert (switch.flatten_state, switch.flatten_accounts_done) == ("running", 1)

    assert kill_switch_flatten_task.acks_late and kill_switch_flatten_task.reject_on_worker_lost
    KillSwitch.objects.filter(pk=switch.pk).update(updated_at=switch.updated_at.replace(year=2000))
    with django_capture_on_commit_callbacks(execute=True):
        reconcile_all_task()
    assert queued == [switch.pk]
    kill_switch_flatten_task(switch.pk)
    switch.refresh_from_db()
    assert calls == [first.pk, second.pk, second.pk]
    assert (switch.flatten_state, switch.flatten_accounts_done, switch.flatten_positions_closed,
            switch.flatten_attempts) == ("done", 2, 2, 2)
    assert not Position.objects.filter(owner=user, status="open").exists()


def test_a_lift_stops_the_flattening_before_the_next_account(user, market, queued, monkeypatch):
    first, second = make_account(user, name="a"), make_account(user, name="b")
    buy(first)
    buy(second)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    real = ks.account_flatten

    def lifted_after_first(**kw):
        report = real(**kw)
        kill_switch_lift(user=user, by=user)
        return report

    monkeypatch.setattr(ks, "account_flatten", lifted_after_first)
    kill_switch_flatten_task(switch.pk)
    switch.refresh_from_db()
    assert (switch.flatten_state, switch.flatten_accounts_done) == ("stopped", 1)
    assert Position.objects.filter(account=second, status="open").exists()
    assert not Position.objects.filter(account=first, status="open").exists()


def test_a_retry_needs_a_failed_pass_and_the_owner_or_the_permission(user, other_user, market, queued,
                                                                    django_capture_on_commit_callbacks):
    make_account(user)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    assert ks.kill_switch_flatten_retry(user=user, by=user) is None  # queued, not failed
    KillSwitch.objects.filter(pk=switch.pk).update(flatten_state="failed")
    with pytest.raises(PermissionError):
        ks.kill_switch_flatten_retry(user=user, by=other_user)
    with django_capture_on_commit_callbacks(execute=True):
        assert ks.kill_switch_flatten_retry(user=user, by=user).flatten_state == "queued"
    assert queued == [switch.pk]


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivered_the_same_flattening_at_once_flatten_once(user, market, queued, monkeypatch):
    """Two workers (threads here) run the task for the same trip at the same time: the one
    that arrives while the other flattens backs off (Retry) and touches no venue."""
    import threading

    from django.db import connection

    paper = make_account(user)
    buy(paper)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    assert queued == [switch.pk]  # committed for real here: the on-commit queueing ran
    inside, release = threading.Event(), threading.Event()
    calls, outcomes = [], []
    real = ks.account_flatten

    def slow(**kw):
        calls.append(kw["account"].pk)
        inside.set()
        release.wait(30)
        return real(**kw)

    monkeypatch.setattr(ks, "account_flatten", slow)

    def worker():
        try:
            kill_switch_flatten_task(switch.pk)
            outcomes.append("ran")
        except Retry:
            outcomes.append("retry")
        finally:
            connection.close()

    first = threading.Thread(target=worker)
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=worker)
    second.start()
    second.join(30)
    release.set()
    first.join(60)
    assert outcomes == ["retry", "ran"] and calls == [paper.pk]
    switch.refresh_from_db()
    assert switch.flatten_state == "done" and switch.flatten_attempts == 1
    assert Order.objects.filter(owner=user, source=Order.Source.SYSTEM).count() == 1


def test_the_admin_lists_the_progress_and_retries_a_failed_flattening(user, staff_user, market, client, queued,
                                                                      monkeypatch, django_capture_on_commit_callbacks):
    from celery import current_app

    make_account(user)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    client.force_login(staff_user)
    listing = client.get("/admin/risk/killswitch/").content.decode()
    assert "Flattening queued: 1 account to flatten." in listing
    assert 'data-events="kill_switch risk.event"' in listing  # the list follows the steps live
    KillSwitch.objects.filter(pk=switch.pk).update(flatten_state="failed")
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args, **kw: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/risk/killswitch/", {"action": "retry_flatten", "_selected_action": [switch.pk]})
    assert sent == [(kill_switch_flatten_task.name, [switch.pk])]
    switch.refresh_from_db()
    assert switch.flatten_state == "queued"
