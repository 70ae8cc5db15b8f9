"""Fills pushed from Hyperliquid: the official SDK's websocket (orderUpdates, userFills)
against the fake's websocket side. A venue-side stop reaches the Order, Fill and
Position rows through the stream (positions read over REST after the fill, as the user
channels carry none); duplicated and dropped messages and a reconnect lose and duplicate
nothing (a catch-up follows each gap)."""

import time
from decimal import Decimal as D

import pytest
from eth_account import Account

from alpha_platform.common.config import clear_config_cache
from tests.factories import make_account
from tests.fakes.hyperliquid_server import HyperliquidFakeServer
from tests.fakes.hyperliquid_ws import FakeHyperliquidWs
from tests.trading.streams_helpers import RunningStreams, wait_until
from trading.models import Fill, Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def venue(monkeypatch, settings):
    with HyperliquidFakeServer() as rest, FakeHyperliquidWs(rest) as ws:
        for name in ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL"):
            monkeypatch.setenv(name, rest.url)
        settings.VENUE_STREAMS_HYPERLIQUID_WS_BASE_URL = ws.http_url
        settings.VENUE_STREAMS_GAP_GRACE_SECONDS = 0.5
        clear_config_cache()
        yield rest, ws
    clear_config_cache()


def protected_long(user, rest):
    main, agent = Account.create(), Account.create()
    rest.fund(main.address, "10000")
    rest.approve_agent(main.address, agent.address)
    account = make_account(user, venue="hyperliquid", credentials={
        "private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address})
    mark = rest.marks["BTC"]
    entry = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                         source="api").order
    assert entry.status == Order.Status.FILLED
    stop = order_submit(account=account, symbol="BTC/USDT", side="SELL", position_side="LONG", quantity=D("0.01"),
                        source="api", order_type="STOP_MARKET", stop_price=(mark * D("0.9")).quantize(D("1")),
                        reduce_only=True).order
    assert stop.status == Order.Status.NEW and stop.venue_client_order_id
    return account, stop, mark


def trigger(rest, mark):
    rest.set_mark("BTC", (mark * D("0.85")).quantize(D("1")))


def assert_closed_once(account, stop, rest):
    wait_until(lambda: Order.objects.get(pk=stop.pk).status == Order.Status.FILLED, what="stop filled")
    wait_until(lambda: not Position.objects.filter(account=account, status="open").exists(), what="position closed")
    stop.refresh_from_db()
    assert stop.executed_quantity == D("0.01")
    assert sum(Fill.objects.filter(order=stop).values_list("quantity", flat=True)) == D("0.01")
    assert Position.objects.get(account=account).status == Position.Status.CLOSED


def test_venue_side_stop_reaches_order_and_position_through_the_stream(user, venue):
    rest, ws = venue
    account, stop, mark = protected_long(user, rest)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        catchups = streams.stat("catchups", account.pk)
        trigger(rest, mark)
        assert_closed_once(account, stop, rest)
        [fill] = Fill.objects.filter(order=stop)
        [venue_account] = rest.accounts.values()
        assert fill.trade_id == str(venue_account.fills[-1]["tid"])  # the venue's trade id
        time.sleep(1.0)  # past the pairing grace (0.5 s)
        assert streams.stat("catchups", account.pk) == catchups and streams.stat("gaps", account.pk) == 0


def test_duplicated_messages_change_nothing_twice(user, venue):
    rest, ws = venue
    account, stop, mark = protected_long(user, rest)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        ws.duplicate_next(10)
        trigger(rest, mark)
        assert_closed_once(account, stop, rest)
        time.sleep(1.0)
        assert streams.stat("gaps", account.pk) == 0


@pytest.mark.parametrize("lost", ["userFills", "orderUpdates"])
def test_a_dropped_message_is_detected_and_caught_up(user, venue, lost):
    rest, ws = venue
    account, stop, mark = protected_long(user, rest)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        ws.drop_next(1, lost)
        trigger(rest, mark)
        wait_until(lambda: streams.stat("gaps", account.pk) >= 1, what="a gap detected")
        assert_closed_once(account, stop, rest)
        assert [m["channel"] for m in ws.dropped] == [lost]


def test_fill_while_disconnected_arrives_through_the_catch_up_after_reconnecting(user, venue):
    rest, ws = venue
    account, stop, mark = protected_long(user, rest)
    with RunningStreams([account.pk], backoff_initial=1.0) as streams:
        streams.wait_connected(account.pk)
        ws.disconnect_all()
        trigger(rest, mark)
        streams.wait_connected(account.pk, count=2)
        assert_closed_once(account, stop, rest)
        assert streams.stat("disconnects", account.pk) >= 1 and ws.connections >= 2
