"""One picture of a user's exposure under the risk lock (issue 12, faults 1, 2 and 4).

Figures from the testing profile (config/exchanges.yaml, global_settings.risk_management):
a paper account starts with 10,000 USD; per symbol 20% of equity (2,000 USD), per venue
30% (3,000 USD), total 50% (5,000 USD). Paper prices (the ``market`` fixture): BTC 50,000,
ETH 3,000, SOL 100. Exposure is gross notional at the mark (risk/policy.py).
"""

import threading
import time
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exchanges.adapters.base import OrderResult, OrderSide, OrderStatus, OrderType, PositionSide
from exchanges.adapters.base import Position as VenuePosition
from exchanges.adapters.errors import OrderStatusUnknown
from exchanges.services import trader_for_account
from risk.models import RiskProfile
from tests.factories import make_account
from trading.models import BalanceSnapshot, Order, Position
from trading.services import balance_snapshot_record, order_apply_result, order_submit, positions_sync
from trading.services.snapshot import LiveRead, risk_snapshot

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32


def buy(account, symbol, qty, **kw):
    return order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=D(qty),
                        source="api", **kw)


class LostAnswer:
    """The venue's answer to the order is lost and no look-up settles it."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        raise OrderStatusUnknown("answer lost")


class HeldAtVenue:
    """Every order is held on its way to the venue until ``release`` is set, so all the
    orders of a burst are in flight together when each one is checked."""

    def __init__(self, inner, release):
        self.inner, self.release = inner, release

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        self.release.wait(30)
        return self.inner.place_order(request)


# -- fault 1: orders in flight on other symbols ------------------------------------------

def test_an_unknown_market_order_on_another_symbol_counts(user, market):
    account = make_account(user)
    eth = buy(account, "ETH/USDT", "0.6", trader=LostAnswer(trader_for_account(account)))  # 1,800 USD
    assert eth.order.status == Order.Status.UNKNOWN
    sol = buy(account, "SOL/USDT", "18")  # 1,800 USD: 3,600 on paper > 3,000
    assert sol.order.status == Order.Status.REJECTED
    assert sol.verdict.rule == "exchange_exposure"
    assert D(sol.verdict.details["exposure"]) == D("3600")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("accounts", [1, 2])
def test_a_burst_across_symbols_and_accounts_never_passes_the_venue_cap(user, market, accounts):
    """Three MARKET orders of 1,350 USD on three symbols, all in flight at once: two fit
    the 3,000 USD venue cap (2,700), three do not (4,050)."""
    targets = [make_account(user, name=f"paper-{i}") for i in range(accounts)]
    orders = [("BTC/USDT", "0.027"), ("ETH/USDT", "0.45"), ("SOL/USDT", "13.5")]
    release = threading.Event()
    results, errors = [], []

    def submit(i):
        try:
            account = targets[i % accounts]
            symbol, qty = orders[i]
            results.append(buy(account, symbol, qty, trader=HeldAtVenue(trader_for_account(account), release)))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while Order.objects.count() < 3 and time.monotonic() < deadline and not errors:
        time.sleep(0.02)
    release.set()
    for t in threads:
        t.join(60)
    assert not errors
    statuses = sorted(r.order.status for r in results)
    assert statuses == [Order.Status.FILLED, Order.Status.FILLED, Order.Status.REJECTED]
    assert [r.verdict.rule for r in results if not r.accepted] == ["exchange_exposure"]
    open_notional = sum(p.size * p.mark_price for p in Position.objects.filter(owner=user, status="open"))
    assert open_notional <= D("3000")


def test_an_order_without_any_figure_refuses_rather_than_counting_as_zero(user, market):
    """An order in flight with no reference price and no mark of its symbol anywhere (an
    order recorded before reference prices existed): fail closed, with the rule named."""
    account = make_account(user)
    Order.objects.create(owner=user, account=account, source="api", client_order_id="legacy-1",
                         symbol="ETH/USDT", side="BUY", position_side="LONG", order_type="MARKET",
                         quantity=D("0.5"), status=Order.Status.UNKNOWN)
    result = buy(account, "BTC/USDT", "0.01")
    assert result.order.status == Order.Status.REJECTED
    assert result.verdict.rule == "exposure_unvalued"
    assert "legacy-1" in result.verdict.message


# -- fault 2: fills not yet in a Position row --------------------------------------------

class PositionsFailAfterFill:
    """The venue takes the order; from then on its position reads answer 503."""

    def __init__(self, inner, fake):
        self.inner, self.fake = inner, fake

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        result = self.inner.place_order(request)
        self.fake.inject("GET /fapi/*/positionRisk", "503", times=None)
        return result


def test_a_binance_fill_whose_position_read_failed_still_counts_on_paper(user, market, binance):
    """Equity 20,000 (paper 10,000 + Binance wallet 10,000), total cap 50% = 10,000 USD.
    0.1 BTC filled on Binance at ~65,000 (6,500) with its position read answering 503,
    then 0.13 BTC on paper at 50,000 (6,500): 13,000 > 10,000, refused."""
    RiskProfile.objects.filter(user=user).update(max_position_percent=D("1"), max_exchange_exposure_percent=D("1"),
                                                 max_position_notional_usd=D("100000"))
    paper = make_account(user)
    bnb = make_account(user, venue="binance_futures", credentials={"api_key": API_KEY, "api_secret": API_SECRET})
    balance_snapshot_record(account=paper, balance=trader_for_account(paper).get_balance())
    first = buy(bnb, "BTC/USDT", "0.1", trader=PositionsFailAfterFill(trader_for_account(bnb), binance))
    assert first.order.status == Order.Status.FILLED
    assert not Position.objects.filter(account=bnb).exists()  # the read failed: no row
    assert binance.position("BTCUSDT").amount == D("0.1")  # but the venue holds it
    # The balance read still answers (only positionRisk fails): as reconciliation records it.
    balance_snapshot_record(account=bnb, balance=trader_for_account(bnb).get_balance())
    second = buy(paper, "BTC/USDT", "0.13")
    assert second.order.status == Order.Status.REJECTED
    assert second.verdict.rule == "total_exposure"
    assert D("13000") <= D(second.verdict.details["exposure"]) <= D("13100")


def vp(size, at, symbol="BTC/USDT", mark="50000"):
    return VenuePosition(symbol=symbol, side=PositionSide.LONG, size=D(size), entry_price=D("50000"),
                         mark_price=D(mark), unrealized_pnl=D("0"), percentage_pnl=D("0"), leverage=D("1"),
                         margin=D("0"), timestamp=at, exchange="paper")


def test_an_unfolded_fill_on_another_account_counts_until_a_later_read_folds_it(user, market):
    a = make_account(user, name="a")
    b = make_account(user, name="b")
    order = Order.objects.create(owner=user, account=a, source="api", client_order_id="f-1", symbol="ETH/USDT",
                                 side="BUY", position_side="LONG", quantity=D("0.5"), executed_quantity=D("0.5"),
                                 executed_price=D("3000"), reference_price=D("3000"), status=Order.Status.FILLED)
    read = LiveRead(account=b, symbol="BTC/USDT", started_at=timezone.now(), price=D("50000"), positions=[])
    [reserved] = risk_snapshot(user=user, read=read).reserved
    assert (reserved.symbol, reserved.size, reserved.mark_price) == ("ETH/USDT", D("0.5"), D("3000"))
    # A position read that began before the fill was recorded does not fold it...
    positions_sync(account=a, venue_positions=[], read_started_at=order.updated_at - timedelta(seconds=1))
    assert Order.objects.get(pk=order.pk).position_folded_at is None
    # ...one that began after does, with the row: then it counts once, as the position.
    later = timezone.now()
    positions_sync(account=a, venue_positions=[vp("0.5", later, "ETH/USDT", "3000")], read_started_at=later)
    assert Order.objects.get(pk=order.pk).position_folded_at is not None
    snap = risk_snapshot(user=user, read=read)
    assert snap.reserved == ()
    assert [(p.symbol, p.size) for p in snap.positions] == [("ETH/USDT", D("0.5"))]


def test_other_accounts_are_valued_at_their_own_symbols_freshest_mark(user, market):
    a = make_account(user, name="a")
    b = make_account(user, name="b")
    old = timezone.now() - timedelta(minutes=5)
    positions_sync(account=a, venue_positions=[vp("1", old, "ETH/USDT", "2500")], read_started_at=old)
    Position.objects.filter(account=a).update(updated_at=old)
    # A fresher ETH figure: an order in flight on another account, checked at 3,000.
    Order.objects.create(owner=user, account=b, source="api", client_order_id="e-1", symbol="ETH/USDT",
                         side="BUY", position_side="LONG", order_type="LIMIT", quantity=D("0.1"),
                         price=D("2900"), reference_price=D("3000"), status=Order.Status.NEW)
    read = LiveRead(account=b, symbol="BTC/USDT", started_at=timezone.now(), price=D("50000"), positions=[])
    snap = risk_snapshot(user=user, read=read)
    [position] = snap.positions
    assert (position.symbol, position.mark_price) == ("ETH/USDT", D("3000"))
    [reserved] = snap.reserved
    assert (reserved.symbol, reserved.size, reserved.mark_price) == ("ETH/USDT", D("0.1"), D("3000"))


# -- positions written in venue order; fault 4 --------------------------------------------

def test_a_position_state_older_than_the_rows_is_ignored(user):
    account = make_account(user)
    t1 = timezone.now()
    t2 = t1 + timedelta(milliseconds=300)
    # The read of 0.08 (later) commits first, the read of 0.04 (earlier) second.
    positions_sync(account=account, venue_positions=[vp("0.08", t2)], read_started_at=t2)
    positions_sync(account=account, venue_positions=[vp("0.04", t1)], read_started_at=t1)
    assert Position.objects.get(account=account, status="open").size == D("0.08")
    # An older read that saw no position does not close the newer one either.
    positions_sync(account=account, venue_positions=[], read_started_at=t1)
    assert Position.objects.get(account=account, status="open").size == D("0.08")
    # A newer one does.
    t3 = t2 + timedelta(seconds=1)
    positions_sync(account=account, venue_positions=[], read_started_at=t3)
    assert not Position.objects.filter(account=account, status="open").exists()
    # And a state read before that close does not reopen it.
    positions_sync(account=account, venue_positions=[vp("0.08", t2)], read_started_at=t2)
    assert not Position.objects.filter(account=account, status="open").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_committing_out_of_order_keep_the_newer_state(user):
    """Two positions_sync calls in threads: the newer state (0.08, read later) is written
    first and held inside its transaction; the older one (0.04, read earlier) arrives
    meanwhile and commits last. The row keeps 0.08."""
    from django.db import transaction

    account = make_account(user)
    t1 = timezone.now()
    t2 = t1 + timedelta(milliseconds=300)
    newer_inside = threading.Event()
    errors = []

    def newer():
        try:
            with transaction.atomic():
                positions_sync(account=account, venue_positions=[vp("0.08", t2)], read_started_at=t2)
                newer_inside.set()
                time.sleep(0.3)
        except Exception as exc:
            errors.append(exc)
        finally:
            newer_inside.set()
            connection.close()

    def older():
        try:
            newer_inside.wait(10)
            positions_sync(account=account, venue_positions=[vp("0.04", t1)], read_started_at=t1)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=newer), threading.Thread(target=older)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert Position.objects.get(account=account, status="open").size == D("0.08")


@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_creating_the_open_row_never_raise(user):
    """Fault 4: two writers creating the same open Position row at once (PostgreSQL raised
    IntegrityError position_one_open_per_symbol_side). Several rounds, the row closed
    between rounds."""
    account = make_account(user)
    for round_ in range(5):
        barrier = threading.Barrier(2)
        errors = []
        base = timezone.now()

        def sync(size, offset, barrier=barrier, errors=errors, base=base):
            try:
                barrier.wait(10)
                at = base + timedelta(milliseconds=offset)
                positions_sync(account=account, venue_positions=[vp(size, at)], symbols=["BTC/USDT"],
                               read_started_at=at)
            except Exception as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=sync, args=("0.01", 1)), threading.Thread(target=sync, args=("0.02", 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, f"round {round_}: {errors}"
        assert Position.objects.get(account=account, status="open").size == D("0.02")
        closed_at = base + timedelta(milliseconds=3)
        positions_sync(account=account, venue_positions=[], read_started_at=closed_at)
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_through_order_submit_return_their_orders(user, market):
    """Fault 4 end to end: two orders on one account and symbol, released to the venue
    together, both fill; neither order_submit raises, and the row holds both fills. Six
    rounds (two accounts x three symbols), each creating a new open row: 2,200 USD in all,
    inside every cap but the order rate and the count of open positions, raised for this."""
    RiskProfile.objects.filter(user=user).update(max_orders_per_minute=100, max_open_positions=10)
    accounts = [make_account(user, name="a"), make_account(user, name="b")]
    for n, (account, (symbol, qty)) in enumerate(
            (a, o) for a in accounts for o in (("BTC/USDT", "0.005"), ("ETH/USDT", "0.05"), ("SOL/USDT", "1.5"))):
        release = threading.Event()
        results, errors = [], []

        def submit(account=account, symbol=symbol, qty=qty, release=release, results=results, errors=errors):
            try:
                results.append(buy(account, symbol, qty, trader=HeldAtVenue(trader_for_account(account), release)))
            except Exception as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while Order.objects.count() < 2 * (n + 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        release.set()
        for t in threads:
            t.join(60)
        assert not errors, f"{account.name} {symbol}: {errors}"
        assert [r.order.status for r in results] == [Order.Status.FILLED, Order.Status.FILLED]
        assert Position.objects.get(account=account, symbol=symbol, status="open").size == 2 * D(qty)


# -- bounded cost ---------------------------------------------------------------------------

def _populate(user, accounts, symbols):
    made = []
    for i in range(accounts):
        account = make_account(user, name=f"q-{i}")
        now = timezone.now()
        positions_sync(account=account, venue_positions=[vp("0.01", now, s, "100") for s in symbols],
                       read_started_at=now)
        for s in symbols:
            Order.objects.create(owner=user, account=account, source="api", client_order_id=f"q-{i}-{s}",
                                 symbol=s, side="BUY", position_side="LONG", quantity=D("0.01"),
                                 reference_price=D("100"), status=Order.Status.NEW)
            Order.objects.create(owner=user, account=account, source="api", client_order_id=f"f-{i}-{s}",
                                 symbol=s, side="BUY", position_side="LONG", quantity=D("0.01"),
                                 executed_quantity=D("0.01"), executed_price=D("100"),
                                 status=Order.Status.FILLED)
        BalanceSnapshot.objects.create(account=account, taken_at=now, total_balance=D("1000"),
                                       available_balance=D("1000"), margin_balance=D("1000"))
        made.append(account)
    return made


def _queries(user, account):
    read = LiveRead(account=account, symbol="BTC/USDT", started_at=timezone.now(), price=D("100"), positions=[])
    with CaptureQueriesContext(connection) as ctx:
        snap = risk_snapshot(user=user, read=read)
    return len(ctx.captured_queries), snap


def test_the_picture_costs_the_same_queries_for_one_or_many_accounts_and_symbols(user, other_user):
    [one] = _populate(user, 1, ["BTC/USDT"])
    small, _ = _queries(user, one)
    many = _populate(other_user, 5, ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    large, snap_large = _queries(other_user, many[0])
    print(f"risk_snapshot queries: 1 account x 1 symbol = {small}; 5 accounts x 3 symbols = {large}")
    assert small == large
    # Everything is in the picture: 4 other accounts x 3 positions; 15 orders in flight and
    # 15 unfolded fills (the target account's count as fills recorded since its read began
    # only, so its 3 fills recorded before this read are in its live positions).
    assert len(snap_large.positions) == 12
    assert len(snap_large.reserved) == 15 + 12


def test_a_later_execution_of_a_folded_order_counts_again_until_folded(user, market):
    a = make_account(user, name="a")
    b = make_account(user, name="b")
    order = Order.objects.create(owner=user, account=a, source="api", client_order_id="p-1", symbol="ETH/USDT",
                                 side="BUY", position_side="LONG", order_type="LIMIT", quantity=D("1"),
                                 price=D("3000"), executed_quantity=D("0.5"), reference_price=D("3000"),
                                 status=Order.Status.PARTIALLY_FILLED, position_folded_at=timezone.now())
    venue_says = OrderResult(order_id="9", client_order_id="p-1", symbol="ETH/USDT", side=OrderSide.BUY,
                             position_side=PositionSide.LONG, order_type=OrderType.LIMIT, quantity=D("1"),
                             price=D("3000"), status=OrderStatus.FILLED, executed_quantity=D("1"),
                             executed_price=D("3000"), fees=D("0"), timestamp=timezone.now(), exchange="paper")
    order_apply_result(order=order, result=venue_says)
    read = LiveRead(account=b, symbol="BTC/USDT", started_at=timezone.now(), price=D("50000"), positions=[])
    [reserved] = risk_snapshot(user=user, read=read).reserved
    assert (reserved.symbol, reserved.size) == ("ETH/USDT", D("1"))
