"""The paper venue's own fill events: a stop resting in the paper book executes when the
price crosses it (the book settles on the stream's next read), and the Order, Fill and
Position rows follow through the stream, with no reconciliation after the connection's
catch-up. And the browser's socket (the real ASGI app, the real Redis channel layer)
receives the position event."""

from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from alpha_platform.asgi import application
from tests.factories import make_account
from tests.trading.streams_helpers import RunningStreams, wait_until
from trading.models import Fill, Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


def protected_long(user):
    account = make_account(user)
    entry = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.02"),
                         source="api", stop_loss=D("45000")).order
    assert entry.status == Order.Status.FILLED
    stop = entry.attached_orders.get()
    assert stop.status == Order.Status.NEW
    return account, stop


def test_paper_stop_reaches_order_and_position_through_the_stream(user, market):
    account, stop = protected_long(user)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        catchups = streams.stat("catchups", account.pk)
        market.set("BTC/USDT", "44000")
        wait_until(lambda: Order.objects.get(pk=stop.pk).status == Order.Status.FILLED, what="stop filled")
        wait_until(lambda: not Position.objects.filter(account=account, status="open").exists(),
                   what="position closed")
        assert streams.stat("catchups", account.pk) == catchups  # the stream alone
    stop.refresh_from_db()
    assert stop.executed_quantity == D("0.02")
    assert sum(f.quantity for f in Fill.objects.filter(order=stop)) == D("0.02")
    closed = Position.objects.get(account=account)
    assert closed.status == Position.Status.CLOSED and closed.size == 0


def test_the_browser_socket_receives_the_position_event_pushed_by_the_stream(user, market):
    account, stop = protected_long(user)
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario(streams):
        comm = WebsocketCommunicator(application, "/ws/updates/",
                                     headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)])
        connected, _ = await comm.connect()
        assert connected
        try:
            from asgiref.sync import sync_to_async

            await sync_to_async(market.set)("BTC/USDT", "44000")
            seen = []
            for _ in range(50):
                event = await comm.receive_json_from(timeout=10)
                seen.append(event)
                if event.get("type") == "position" and event["position"]["status"] == "closed":
                    return event, seen
            raise AssertionError(f"no closed position event in {seen}")
        finally:
            await comm.disconnect()

    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        event, seen = async_to_sync(scenario)(streams)
    position = event["position"]
    assert (position["account_id"], position["symbol"], position["side"]) == (account.pk, "BTC/USDT", "LONG")
    filled = [e for e in seen if e.get("type") == "order" and e["order"]["id"] == stop.pk]
    assert filled and filled[-1]["order"]["status"] == "FILLED"
