"""Issue 12, fault 3 on Binance USD-M: an order the venue executes after the client's
timeout, lists late, answers 5xx after executing, or fills only in part, loses and
duplicates nothing.

The platform's own road end to end: the API or ``order_submit`` -> the risk gate -> the
ccxt adapter the platform builds from its configuration (pointed at the fake, the client
timeout shortened to 1 s in a copy of ``config/exchanges.yaml``) -> the real ccxt client
-> ``tests.fakes.binance_server``; then ``account_reconcile`` settles what the answer did
not. Each test counts the fake's ``POST /fapi/v1/order``: exactly one per client order id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.ccxt import BinanceUsdmTrader
from exchanges.services import adapter_runtime, venue_spec
from risk.models import RiskEvent
from tests.factories import make_account
from tests.fakes.binance_server import FakeBinanceFutures
from trading.models import Order, Position
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32
ORDER = ("POST", "/fapi/v1/order")
CLIENT_TIMEOUT_MS = 1000
PENDING = "pending confirmation: the venue's answer was lost; do not resend, the platform will settle it"


def short_timeout_config(settings, tmp_path: Path, timeout_ms: int = CLIENT_TIMEOUT_MS) -> None:
    """The platform's configuration with the venues' client timeouts shortened (and ccxt's
    own request pacing, meant for the real venue, made quick)."""
    source = Path(settings.ALPHA_CONFIG_DIR)
    data = yaml.safe_load((source / "exchanges.yaml").read_text())
    testing = data.setdefault("environments", {}).setdefault("testing", {}).setdefault("exchanges", {})
    for venue in ("binance_futures", "hyperliquid"):
        rest = testing.setdefault(venue, {}).setdefault("network", {}).setdefault("rest_api", {})
        rest["timeout"] = timeout_ms
    testing["binance_futures"]["ccxt_options"] = {"rateLimit": 5}
    (tmp_path / "exchanges.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "llm_pricing.yaml").write_text((source / "llm_pricing.yaml").read_text())
    settings.ALPHA_CONFIG_DIR = tmp_path
    clear_config_cache()


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for the fake to do what it was scripted to do (not an assertion on time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the fake never got there")
        time.sleep(0.05)


@pytest.fixture
def fake(monkeypatch, settings, tmp_path):
    with FakeBinanceFutures(api_key=API_KEY, api_secret=API_SECRET) as server:
        for name in ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"):
            monkeypatch.setenv(name, server.url)
        short_timeout_config(settings, tmp_path)
        settings.RECONCILE_LOST_AFTER_LOOKUPS = 3
        settings.RECONCILE_LOST_AFTER_SECONDS = 30
        BinanceUsdmTrader.clear_market_cache()
        yield server
    clear_config_cache()
    BinanceUsdmTrader.clear_market_cache()


@pytest.fixture
def api(user):
    from tests.api.conftest import token_client

    return token_client(user)


@pytest.fixture
def account(user, fake):
    return make_account(user, venue="binance_futures", credentials={"api_key": API_KEY, "api_secret": API_SECRET})


def buy(account, quantity="0.002", **kw):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                        quantity=D(quantity), source="api", **kw).order


def assert_positions_match_the_venue(account, fake, symbol="BTC/USDT", venue_symbol="BTCUSDT"):
    amount = fake.position(venue_symbol).amount
    rows = list(Position.objects.filter(account=account, symbol=symbol, status="open"))
    if amount == 0:
        assert rows == []
    else:
        [row] = rows
        assert (row.side, row.size) == ("LONG" if amount > 0 else "SHORT", abs(amount))


def test_late_acceptance_through_the_api_is_202_pending_then_filled(api, account, fake):
    # The venue holds the request past the client's 1 s timeout and the look-ups (0.2, 0.6,
    # 1.4 s after it), then executes it.
    fake.inject("POST /fapi/v1/order", "accept_late", delay=3.0)
    response = api.post("/api/orders/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                         "position_side": "LONG", "quantity": "0.002",
                                         "client_order_id": "late-api-1"}, format="json")
    assert response.status_code == 202, response.data
    assert response.data["message"] == PENDING
    assert response.data["extra"]["order"]["status"] == "UNKNOWN"
    order = Order.objects.get(account=account, client_order_id="late-api-1")
    assert order.status == Order.Status.UNKNOWN and order.is_open

    wait_until(lambda: fake.order_by_client_id("BTCUSDT", "late-api-1"))
    report = account_reconcile(account=account)

    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.002")
    assert order.fills.count() >= 1 and sum(f.quantity for f in order.fills.all()) == D("0.002")
    assert fake.count(*ORDER) == 1 and len(fake.orders) == 1
    assert_positions_match_the_venue(account, fake)
    # The fill of ours explains the position: no "appeared without an order of ours".
    assert report.position_changes == [] and report.unknown_venue_orders == []
    assert not RiskEvent.objects.filter(kind="reconcile").exists()

    again = api.post("/api/orders/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                      "position_side": "LONG", "quantity": "0.002",
                                      "client_order_id": "late-api-1"}, format="json")
    assert again.status_code == 200 and again.data["status"] == "FILLED"
    assert fake.count(*ORDER) == 1


def test_an_order_listed_only_after_a_delay_is_never_failed_nor_lost_early(account, fake):
    fake.visibility_delay = 3.0  # executed at once; order queries see it 3 s later
    fake.inject("POST /fapi/v1/order", "accept_then_500")  # and a 5xx after executing
    order = buy(account, client_order_id="vis-1")
    assert order.status == Order.Status.UNKNOWN  # never FAILED "not placed" on "Order does not exist"

    for _ in range(3):  # passes while the venue does not list it yet: within the window, not lost
        account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.UNKNOWN and order.lookup_failures == 3

    wait_until(lambda: fake.visible(fake.order_by_client_id("BTCUSDT", "vis-1")))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.002")
    assert order.fills.exists() and order.lookup_failures == 0
    assert fake.count(*ORDER) == 1
    assert_positions_match_the_venue(account, fake)
    assert report.position_changes == []
    # Nor did the passes that saw the position before the order was listed: the order of
    # ours awaiting confirmation may explain it.
    assert not RiskEvent.objects.filter(kind="reconcile").exists()


def test_a_market_order_filled_in_part_with_its_answer_lost(account, fake):
    fake.set_liquidity("BTCUSDT", "0.002")  # the book holds 0.002: the rest of 0.005 expires
    fake.visibility_delay = 2.0
    fake.inject("POST /fapi/v1/order", "accept_then_drop")
    order = buy(account, "0.005", client_order_id="part-1")
    assert order.status == Order.Status.UNKNOWN

    wait_until(lambda: fake.visible(fake.order_by_client_id("BTCUSDT", "part-1")))
    account_reconcile(account=account)
    order.refresh_from_db()
    # Binance's answer for a market order the book could not fill: EXPIRED, executedQty 0.002.
    assert order.status == Order.Status.EXPIRED and order.executed_quantity == D("0.002")
    assert sum(f.quantity for f in order.fills.all()) == D("0.002")
    assert fake.count(*ORDER) == 1
    assert_positions_match_the_venue(account, fake)


def test_a_limit_order_filled_in_part_rests_partially_filled(account, fake):
    fake.set_liquidity("BTCUSDT", "0.001")
    fake.visibility_delay = 2.0
    fake.inject("POST /fapi/v1/order", "accept_late", delay=1.2)
    order = buy(account, "0.003", order_type="LIMIT", price=D(65100), client_order_id="part-2")
    assert order.status == Order.Status.UNKNOWN

    wait_until(lambda: (o := fake.order_by_client_id("BTCUSDT", "part-2")) and fake.visible(o))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_FILLED and order.executed_quantity == D("0.001")
    assert order.is_open and sum(f.quantity for f in order.fills.all()) == D("0.001")
    assert report.unknown_venue_orders == []  # the resting rest is ours
    assert fake.count(*ORDER) == 1
    assert_positions_match_the_venue(account, fake)

    fake.set_liquidity("BTCUSDT", None)
    fake.set_mark_price("BTCUSDT", "65050")  # the rest fills at its limit as maker
    account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.003")
    assert_positions_match_the_venue(account, fake)
    assert fake.count(*ORDER) == 1


def test_a_client_id_another_worker_already_sent_is_pending_not_failed(account, fake):
    # Another process sent the same client order id a moment ago; the venue refuses the
    # second as a duplicate (-4116) and does not list the first yet.
    fake.visibility_delay = 3.0
    other = BinanceUsdmTrader(spec=venue_spec(account), credentials=account.credentials(), runtime=adapter_runtime())
    try:
        other.open_long("BTC/USDT", D("0.002"), client_order_id="dup-1")
    finally:
        other.close()
    order = buy(account, client_order_id="dup-1")
    assert order.status == Order.Status.UNKNOWN  # not FAILED: the venue said an order with it exists

    wait_until(lambda: fake.visible(fake.order_by_client_id("BTCUSDT", "dup-1")))
    account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.002")
    assert len(fake.orders) == 1 and fake.position("BTCUSDT").amount == D("0.002")
    assert_positions_match_the_venue(account, fake)


def test_an_order_the_venue_never_took_is_lost_only_after_the_window(account, fake):
    fake.inject("POST /fapi/v1/order", "drop")  # connection closed before the venue took it
    order = buy(account, client_order_id="gone-1")
    assert order.status == Order.Status.UNKNOWN  # the client cannot know it was never taken

    for _ in range(4):
        account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.UNKNOWN and order.lookup_failures == 4  # younger than 30 s

    Order.objects.filter(pk=order.pk).update(submitted_at=timezone.now() - timedelta(seconds=31))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.LOST and report.orders_lost == 1
    assert fake.count(*ORDER) == 1 and fake.orders == {}  # never re-sent
    assert Position.objects.filter(account=account, status="open").count() == 0


def test_a_venue_429_is_not_sent_and_answered_503(api, account, fake):
    fake.inject("POST /fapi/v1/order", "429")  # the venue refused it before taking it
    response = api.post("/api/orders/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                         "position_side": "LONG", "quantity": "0.002"}, format="json")
    assert response.status_code == 503, response.data
    assert response.data["extra"]["rule"] == "not_sent"
    assert response.data["extra"]["order"]["status"] == "FAILED"
    assert fake.orders == {}
