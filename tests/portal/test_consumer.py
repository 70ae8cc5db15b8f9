"""The websocket consumer through the real ASGI application (origin check, session
authentication, URL routing) and the real Redis channel layer: a user's socket carries
their own events only, staff's carries everyone's, unauthenticated sockets are closed.

Events are produced by the real services (sent on commit), as in production."""

import json
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from agents.services import agent_pause
from alpha_platform.asgi import application
from alpha_platform.common.realtime import send_to_user_on_commit
from tests.factories import make_account, make_agent
from trading.services import order_submit

# Sessions and users are read from other threads (the consumer's): real commits needed.
pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(cookie: bytes | None = None, path="/ws/updates/", origin=ORIGIN):
    headers = [origin] if origin else []
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_until(comm, predicate, limit=20, timeout=3):
    """Read events until one matches (events of one change arrive in order, with others)."""
    seen = []
    for _ in range(limit):
        event = await comm.receive_json_from(timeout=timeout)
        seen.append(event)
        if predicate(event):
            return event, seen
    raise AssertionError(f"no matching event in {seen}")


async def drain(comm, timeout=0.3) -> list:
    events = []
    while not await comm.receive_nothing(timeout=timeout):
        events.append(await comm.receive_json_from())
    return events


def run(coro_fn, *args):
    return async_to_sync(coro_fn)(*args)


async def refused(comm):
    """Connect, expecting a refusal; then disconnect, as the server does after a close, so
    the application ends on its own. Left running, it was cancelled when the test's event
    loop closed, and the Redis channel layer's receive could keep that loop from closing
    (seen twice in clean-clone runs of the suite)."""
    connected, code = await comm.connect()
    await comm.disconnect()
    return connected, code


def test_unauthenticated_socket_is_closed():
    async def scenario():
        comm = communicator()
        connected, code = await refused(comm)
        assert connected is False and code == 4401
    run(scenario)


def test_foreign_origin_is_refused(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = communicator(cookie, origin=(b"origin", b"http://evil.example"))
        connected, _ = await refused(comm)
        assert connected is False
    run(scenario)


def test_two_users_never_see_each_others_events_and_staff_sees_both(user, other_user, staff_user, market):
    account_a, account_b = make_account(user, name="A"), make_account(other_user, name="B")
    agent_b = make_agent(other_user, account_b, name="B's agent")
    cookies = [session_cookie(u) for u in (user, other_user, staff_user)]

    async def scenario():
        a, b, staff = (communicator(c) for c in cookies)
        for comm, name in ((a, "alice"), (b, "bob"), (staff, "operator")):
            connected, _ = await comm.connect()
            assert connected
            hello = await comm.receive_json_from()
            assert hello["type"] == "hello" and hello["user"] == name

        # Alice's order: created, filled, position, balance, risk verdict — all to Alice.
        from channels.db import database_sync_to_async

        result = await database_sync_to_async(order_submit)(
            account=account_a, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
            source="portal")
        order_id = result.order.pk
        filled, seen = await receive_until(a, lambda e: e["type"] == "order" and e["action"] == "filled")
        assert filled["order"]["id"] == order_id and filled["order"]["status"] == "FILLED"
        seen += await drain(a)
        types = {e["type"] for e in seen}
        assert {"risk.event", "order", "position", "balance"} <= types
        assert any(e["type"] == "order" and e["action"] == "created" for e in seen)

        # Bob's agent changes state: only Bob (and staff) hear of it.
        await database_sync_to_async(agent_pause)(agent=agent_b)
        event, _ = await receive_until(b, lambda e: e["type"] == "agent")
        assert event["agent"]["id"] == agent_b.pk and event["agent"]["status"] == "paused"

        # Nothing of Bob's reached Alice, nothing of Alice's reached Bob.
        rest_a = await drain(a)
        assert all(e["type"] != "agent" for e in rest_a)
        rest_b = await drain(b)
        assert not any(e["type"] == "order" for e in rest_b)
        assert not any(e.get("order", {}).get("account_id") == account_a.pk for e in rest_b)

        # Staff's socket carried both users' events.
        staff_events = await drain(staff, timeout=0.5)
        assert any(e["type"] == "order" and e["order"]["id"] == order_id for e in staff_events)
        assert any(e["type"] == "agent" and e["agent"]["id"] == agent_b.pk for e in staff_events)
        for comm in (a, b, staff):
            await comm.disconnect()
    run(scenario)


def test_portal_stream_carries_only_the_operators_own_events(user, staff_user):
    cookie = session_cookie(staff_user)

    async def scenario():
        from channels.db import database_sync_to_async

        own = communicator(cookie, path="/ws/updates/?stream=user")
        assert (await own.connect())[0]
        hello = await own.receive_json_from()
        assert hello["groups"] == [f"user.{staff_user.pk}"]
        admin = communicator(cookie, path="/ws/updates/?stream=staff")
        assert (await admin.connect())[0]
        assert (await admin.receive_json_from())["groups"] == ["staff"]

        def send_both():
            from django.db import transaction

            with transaction.atomic():
                send_to_user_on_commit(user.pk, {"type": "decision", "decision": {"id": 1}})
                send_to_user_on_commit(staff_user.pk, {"type": "decision", "decision": {"id": 2}})
        await database_sync_to_async(send_both)()
        # The admin stream sees both, each once; the portal stream the operator's own only.
        got_admin = [await admin.receive_json_from(timeout=3) for _ in range(2)]
        assert sorted(e["decision"]["id"] for e in got_admin) == [1, 2]
        assert (await own.receive_json_from(timeout=3))["decision"]["id"] == 2
        assert await own.receive_nothing(timeout=0.3)
        assert await admin.receive_nothing(timeout=0.3)
        await own.disconnect()
        await admin.disconnect()
    run(scenario)


def test_staff_stream_is_refused_to_non_staff(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = communicator(cookie, path="/ws/updates/?stream=staff")
        connected, code = await refused(comm)
        assert connected is False and code == 4403
    run(scenario)


def test_nothing_is_sent_for_a_rolled_back_change(user):
    cookie = session_cookie(user)

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from()

        def rolled_back():
            from django.db import transaction

            try:
                with transaction.atomic():
                    send_to_user_on_commit(user.pk, {"type": "order", "action": "created", "order": {"id": 7}})
                    raise RuntimeError("boom")
            except RuntimeError:
                pass
        await database_sync_to_async(rolled_back)()
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
    run(scenario)


def test_ping_pong_heartbeat(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await comm.send_json_to({"type": "ping", "t": 123})
        assert await comm.receive_json_from() == {"type": "pong", "t": 123}
        await comm.disconnect()
    run(scenario)


def test_the_realtime_message_shape_reaches_the_socket(user):
    """The message shape realtime._send uses is what the consumer handles."""
    cookie = session_cookie(user)

    async def scenario():
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await get_channel_layer().group_send(f"user.{user.pk}", {"type": "platform.event",
                                                                 "event": {"type": "balance", "balance": {}}})
        assert (await comm.receive_json_from(timeout=3))["type"] == "balance"
        await comm.disconnect()
    run(scenario)


def _layer_reads_outlast_its_blocking_pop() -> bool:
    """channels_redis waits for messages with BZPOPMIN for ``brpop_timeout`` (5 s); the
    redis client must not time the read out first (redis-py 8 defaults socket_timeout to
    5 s), or every consumer idle that long dies with a TimeoutError."""
    from channels_redis.core import RedisChannelLayer
    from channels_redis.utils import create_pool
    from redis.asyncio.connection import Connection

    layer = get_channel_layer()
    default = Connection().socket_timeout
    timeouts = [create_pool(host).connection_kwargs.get("socket_timeout", default) for host in layer.hosts]
    return all(t is None or t > RedisChannelLayer.brpop_timeout + 1 for t in timeouts)


def test_the_layer_is_configured_to_outlast_its_blocking_pop():
    assert _layer_reads_outlast_its_blocking_pop()


def test_an_idle_socket_still_gets_events(user):
    cookie = session_cookie(user)

    async def scenario():
        import asyncio

        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await asyncio.sleep(6.5)  # longer than the layer's blocking read
        await get_channel_layer().group_send(f"user.{user.pk}", {"type": "platform.event",
                                                                 "event": {"type": "agent", "agent": {"id": 1}}})
        assert (await comm.receive_json_from(timeout=3))["type"] == "agent"
        await comm.disconnect()
    run(scenario)


# --------------------------------------------------------------------------- staff rights
def staff_without_permissions(*perms):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    staff = UserFactory(username="opsmith", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        staff.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return staff


def test_staff_stream_needs_watch_all_users_not_just_is_staff(user):
    staff = staff_without_permissions()
    cookie = session_cookie(staff)

    async def scenario():
        comm = communicator(cookie, path="/ws/updates/?stream=staff")
        connected, code = await refused(comm)
        assert connected is False and code == 4403
    run(scenario)


def test_staff_default_stream_without_the_permission_carries_only_their_own_events(user, market):
    staff = staff_without_permissions()
    account_a, own_account = make_account(user, name="A"), make_account(staff, name="S")
    cookie = session_cookie(staff)

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(cookie)
        assert (await comm.connect())[0]
        hello = await comm.receive_json_from()
        assert hello["groups"] == [f"user.{staff.pk}"]
        submit = database_sync_to_async(order_submit)
        alice = await submit(account=account_a, symbol="BTC/USDT", side="BUY", position_side="LONG",
                             quantity=D("0.01"), source="portal")
        mine = await submit(account=own_account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                            quantity=D("0.01"), source="portal")
        event, seen = await receive_until(comm, lambda e: e["type"] == "order" and e["order"]["id"] == mine.order.pk)
        seen += await drain(comm)
        assert not any(e.get("order", {}).get("id") == alice.order.pk for e in seen)
        assert not any(e.get("order", {}).get("account_id") == account_a.pk for e in seen)
        await comm.disconnect()
    run(scenario)


def test_watch_all_users_gives_the_staff_stream_without_superuser(user, market):
    staff = staff_without_permissions("trading.watch_all_users")
    account_a = make_account(user, name="A")
    cookie = session_cookie(staff)

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(cookie, path="/ws/updates/?stream=staff")
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from())["groups"] == ["staff"]
        alice = await database_sync_to_async(order_submit)(
            account=account_a, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
            source="portal")
        await receive_until(comm, lambda e: e["type"] == "order" and e["order"]["id"] == alice.order.pk)
        await comm.disconnect()
    run(scenario)


def test_live_events_of_an_operators_trip_and_lift_say_an_operator(user, market):
    from trading.services import kill_switch_lift, kill_switch_trip

    staff = staff_without_permissions("risk.add_killswitch", "risk.change_killswitch")
    make_account(user, name="A")
    cookie = session_cookie(user)

    async def scenario():
        from channels.db import database_sync_to_async

        comm = communicator(cookie, path="/ws/updates/?stream=user")
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await database_sync_to_async(kill_switch_trip)(user=user, label="admin:opsmith", reason="checks", by=staff)
        tripped, seen = await receive_until(comm, lambda e: e["type"] == "risk.event" and not e["allowed"])
        assert tripped["message"] == "Kill switch tripped by an operator: checks"
        await database_sync_to_async(kill_switch_lift)(user=user, by=staff)
        lifted, more = await receive_until(comm, lambda e: e["type"] == "risk.event" and e["allowed"])
        assert lifted["message"].startswith("Kill switch lifted by an operator")
        seen += more + await drain(comm)
        assert all("opsmith" not in json.dumps(e) for e in seen)
        await comm.disconnect()
    run(scenario)
