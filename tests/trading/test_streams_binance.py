"""Fills and positions pushed from Binance USD-M: the real stream supervisor, ccxt.pro's
real user-data client, the fake venue's websocket side. A resting stop that the venue
triggers (set_mark_price) reaches the Order, Fill and Position rows through the stream,
with no reconciliation after the connection's catch-up; duplicated and dropped messages
and a reconnect lose and duplicate nothing (a catch-up follows each gap)."""

import time
from decimal import Decimal as D

import pytest

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.ccxt import CcxtTrader
from tests.factories import make_account
from tests.fakes.binance_server import FakeBinanceFutures
from tests.fakes.binance_ws import FakeBinanceUserStream
from tests.trading.streams_helpers import RunningStreams, wait_until
from trading.models import Fill, Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)
KEY, SECRET = "K1" * 32, "S1" * 32


@pytest.fixture
def venue(monkeypatch, settings):
    with FakeBinanceFutures(api_key=KEY, api_secret=SECRET) as rest, FakeBinanceUserStream(rest) as ws:
        monkeypatch.setenv("BINANCE_FAPI_URL", rest.url)
        settings.VENUE_STREAMS_BINANCE_WS_URL = ws.url
        settings.VENUE_STREAMS_GAP_GRACE_SECONDS = 0.5
        clear_config_cache()
        CcxtTrader.clear_market_cache()
        yield rest, ws
    clear_config_cache()
    CcxtTrader.clear_market_cache()


def protected_long(user):
    """An open long of 0.01 BTC at 65,000 with a venue-side stop at 60,000."""
    account = make_account(user, venue="binance_futures", credentials={"api_key": KEY, "api_secret": SECRET})
    entry = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                         source="api", stop_loss=D("60000"), leverage=5).order
    assert entry.status == Order.Status.FILLED
    stop = entry.attached_orders.get()
    assert stop.status == Order.Status.NEW
    assert Position.objects.get(account=account, status="open").size == D("0.01")
    return account, stop


def stop_filled(stop):
    stop.refresh_from_db()
    return stop.status == Order.Status.FILLED


def assert_closed_once(account, stop, rest):
    stop.refresh_from_db()
    [fill] = Fill.objects.filter(order=stop)  # one trade at the venue, one Fill row
    # The stop's execution is the order the venue's algo order became: the stream names that
    # order; a REST catch-up keeps the algo order's id and its actualOrderId.
    executed_as = {int(stop.exchange_order_id)} | (
        {int(stop.raw_data["actualOrderId"])} if stop.raw_data.get("actualOrderId") else set())
    [trade] = [t for t in rest.trades if t["orderId"] in executed_as]
    # The stream records the venue's trade id; a REST catch-up whose order look-up lists
    # no trades records the platform's aggregate of the execution instead.
    assert fill.trade_id in (str(trade["id"]), f"{stop.exchange_order_id}-agg")
    assert fill.quantity == D("0.01") and fill.price == D(trade["price"])
    assert stop.executed_quantity == D("0.01")
    wait_until(lambda: not Position.objects.filter(account=account, status="open").exists(), what="position closed")
    closed = Position.objects.get(account=account)
    assert closed.status == Position.Status.CLOSED and closed.size == 0
    assert rest.position("BTCUSDT").amount == 0


def test_venue_side_stop_reaches_order_and_position_through_the_stream(user, venue):
    rest, ws = venue
    account, stop = protected_long(user)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        catchups = streams.stat("catchups", account.pk)
        rest.set_mark_price("BTCUSDT", "59000")
        wait_until(lambda: stop_filled(stop), what="stop filled")
        assert_closed_once(account, stop, rest)
        time.sleep(1.0)  # past the pairing grace (0.5 s)
        # The stream alone: no catch-up (no reconciliation) after the connection's own.
        assert streams.stat("catchups", account.pk) == catchups
        assert streams.stat("gaps", account.pk) == 0


def test_duplicated_messages_change_nothing_twice(user, venue):
    rest, ws = venue
    account, stop = protected_long(user)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        ws.duplicate_next(10)
        rest.set_mark_price("BTCUSDT", "59000")
        wait_until(lambda: stop_filled(stop), what="stop filled")
        assert_closed_once(account, stop, rest)
        assert [m["e"] for m in ws.delivered[-6:]] == ["ORDER_TRADE_UPDATE"] * 2 + ["ACCOUNT_UPDATE"] * 2 + [
            "ORDER_TRADE_UPDATE"] * 2
        time.sleep(1.0)  # past the pairing grace (0.5 s): a duplicate is no gap
        assert streams.stat("gaps", account.pk) == 0


@pytest.mark.parametrize("lost", ["ORDER_TRADE_UPDATE:TRADE", "ACCOUNT_UPDATE"])
def test_a_dropped_message_is_detected_and_caught_up(user, venue, lost):
    rest, ws = venue
    account, stop = protected_long(user)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        ws.drop_next(1, lost)
        rest.set_mark_price("BTCUSDT", "59000")
        wait_until(lambda: streams.stat("gaps", account.pk) >= 1, what="a gap detected")
        wait_until(lambda: stop_filled(stop), what="stop filled after the catch-up")
        assert [m["e"] for m in ws.dropped] == [lost.split(":")[0]]
        assert_closed_once(account, stop, rest)


def test_fill_while_disconnected_arrives_through_the_catch_up_after_reconnecting(user, venue):
    rest, ws = venue
    account, stop = protected_long(user)
    with RunningStreams([account.pk], backoff_initial=1.0) as streams:
        streams.wait_connected(account.pk)
        ws.disconnect_all()
        rest.set_mark_price("BTCUSDT", "59000")  # no client connected: nobody hears it
        streams.wait_connected(account.pk, count=2)
        wait_until(lambda: stop_filled(stop), what="stop filled after reconnecting")
        assert streams.stat("disconnects", account.pk) >= 1 and ws.connections >= 2
        assert_closed_once(account, stop, rest)


def test_resting_limit_filled_at_the_venue_reaches_the_order(user, venue):
    rest, _ = venue
    account = make_account(user, venue="binance_futures", credentials={"api_key": KEY, "api_secret": SECRET})
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        order = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                             quantity=D("0.002"), order_type="LIMIT", price=D("64900"), source="api").order
        assert order.status == Order.Status.NEW
        rest.set_mark_price("BTCUSDT", "64800")
        wait_until(lambda: Order.objects.get(pk=order.pk).status == Order.Status.FILLED, what="limit filled")
        wait_until(lambda: Position.objects.filter(account=account, status="open", size=D("0.002")).exists(),
                   what="position opened")
        assert [f.trade_id for f in Fill.objects.filter(order=order)] == [str(rest.trades[-1]["id"])]
        assert streams.stat("catchups", account.pk) == 1  # the connection's own: the stream did it


def test_a_liquidation_by_the_venue_is_recorded_as_such(user, venue):
    rest, _ = venue
    account, stop = protected_long(user)
    with RunningStreams([account.pk]) as streams:
        streams.wait_connected(account.pk)
        # Binance's liquidation engine closes the position with an order of its own,
        # client id "autoclose-...", pushed like any other (ACCOUNT_UPDATE, then the trade).
        with rest._lock:
            rest._new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.010",
                             "reduceOnly": "true", "newClientOrderId": "autoclose-1796190000000"})
        wait_until(lambda: Position.objects.filter(account=account, status="liquidated").exists(),
                   what="position liquidated")
        assert not Position.objects.filter(account=account, status="open").exists()
        assert streams.stat("unmatched", account.pk) >= 1  # the venue's order, not ours
        stop.refresh_from_db()
        assert stop.status == Order.Status.NEW  # still resting: reconciliation's to settle
