"""The paper venue against an independent oracle (``reference``): the reference model first
checked on Binance's worked liquidation-price examples, then a hypothesis state machine that
drives random orders and price moves through both and compares every figure after each step."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, Phase, assume, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.adapters.errors import InsufficientFunds
from tests.exchanges.paper import reference as ref
from tests.exchanges.paper.support import T0, Clock, ScriptedMarket, make_trader

# --------------------------------------------------------------------------- the oracle itself
ETH_BRACKET = (ref.Bracket(D(0), ref.INF, 10, D("0.10"), D("135365.00")),)
BTC_BRACKET = (ref.Bracket(D(0), ref.INF, 20, D("0.025"), D("16300.00")),)
WB = D("1535443.01")


@pytest.mark.parametrize(("qty", "entry", "brackets", "tmm1", "upnl1", "expected"), [
    (D("3683.979"), D("1456.84"), ETH_BRACKET, D(0), D(0), D("1114.78")),  # isolated ETH
    (D("109.488"), D("32481.98"), BTC_BRACKET, D(0), D(0), D("18778.73")),  # isolated BTC
    (D("3683.979"), D("1456.84"), ETH_BRACKET, D("71200.81144"), D("-56354.57"), D("1153.26")),  # cross
    (D("109.488"), D("32481.98"), BTC_BRACKET, D("356512.508"), D("-448192.89"), D("26316.89")),  # cross
])
def test_reference_lp_reproduces_binance_worked_examples(qty, entry, brackets, tmm1, upnl1, expected):
    assert ref.tick(ref.liquidation_price(WB, tmm1, upnl1, qty, entry, brackets)) == expected


def test_reference_maintenance_is_continuous_across_brackets():
    tiers = (ref.Bracket(D(0), D(50000), 20, D("0.01"), D(0)),
             ref.Bracket(D(50000), ref.INF, 10, D("0.025"), D(750)))  # cum = 50000 x (0.025 - 0.01)
    below, above = ref.maintenance(tiers, D(1), D("49999.99")), ref.maintenance(tiers, D(1), D(50000))
    assert abs(above - below) < D("0.01")


def test_reference_account_matches_the_engine_test_examples():
    acct = ref.Account(ref.Venue(), {"BTC/USDT": 20}, {"BTC/USDT": D(60000)})
    acct.market("l", "BTC/USDT", "BUY", D("0.5"))  # 60012, fee 15.003
    assert acct.wallet == D("9984.997")
    assert ref.tick(acct.liquidation_price("BTC/USDT")) == D("40243.22")
    acct = ref.Account(ref.Venue(), {"BTC/USDT": 1}, {"BTC/USDT": D(60000)})
    with pytest.raises(ref.Refused):
        acct.market("too-big", "BTC/USDT", "BUY", D("0.2"))  # 12002.4 + 6.0012 > 10000
    acct.market("fits", "BTC/USDT", "BUY", D("0.16"))
    assert acct.available() == D("393.27904")


def test_reference_liquidates_at_the_lp_and_cancels_orders():
    acct = ref.Account(ref.Venue(), {"BTC/USDT": 20}, {"BTC/USDT": D(60000)})
    acct.market("l", "BTC/USDT", "BUY", D("0.5"))
    acct.limit("b", "BTC/USDT", "BUY", D("0.01"), D("30000"))
    events = acct.move("BTC/USDT", D("40000"), 60)
    assert [e.kind for e in events] == ["liquidation"]
    liq = acct.fills[-1]
    assert liq.liquidation and liq.price == D("40243.22") and not acct.positions
    assert acct.orders["b"].status == "CANCELLED"


# --------------------------------------------------------------------------- found mismatches
def test_limit_inside_the_slippage_fills_at_once_as_taker():
    clock = Clock()
    market = ScriptedMarket(clock, BTC="60000")
    trader = make_trader(market, clock)
    result = trader.place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.01"), price=D("60006"), client_order_id="x"))  # market 60000, market + 2 bps 60012
    acct = ref.Account(ref.Venue(), {"BTC/USDT": 1}, {"BTC/USDT": D("60000")})
    expected = acct.limit("x", "BTC/USDT", "BUY", D("0.01"), D("60006"))
    assert expected.status == "FILLED" and expected.fills[0].price == D("60006") and not expected.fills[0].maker
    clock.advance(5)
    order = trader.store.load(trader.account_ref).find_order(client_order_id="x")
    assert result.status == "FILLED", "rested instead of filling"
    assert [(f.price, f.maker, f.fee) for f in order.fills] == [(D("60006"), False, D("0.30003000"))]


# --------------------------------------------------------------------------- the state machine
PRICES = {"BTC/USDT": D("60000"), "ETH/USDT": D("3000"), "SOL/USDT": D("150")}
SYMBOLS = st.sampled_from(sorted(PRICES))
SIDES = st.sampled_from(["BUY", "SELL"])
GAP = D(2)  # events closer than this (seconds) are ambiguous at one-second leaves
MARGIN_SLACK = D("0.5")  # order margin checks this close to the line are not compared
AGG = D("0.0000001")  # aggregates: sums of a few terms each rounded to 1e-8


def _qty(notional: int, price: D) -> D:
    return (D(notional) / price).quantize(D("0.000001"), rounding="ROUND_DOWN")


class PaperOracle(RuleBasedStateMachine):
    @initialize(lev=st.fixed_dictionaries({s: st.sampled_from([1, 3, 10, 20]) for s in PRICES}))
    def setup(self, lev):
        self.clock = Clock()
        keys = {s.split("/")[0]: str(p) for s, p in PRICES.items()}
        self.market = ScriptedMarket(self.clock, **keys)
        self.trader = make_trader(self.market, self.clock)
        for s, v in lev.items():
            self.trader.set_leverage(s, v)
        self.ref = ref.Account(ref.Venue(), lev, PRICES)
        self.n = 0

    def _cid(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.n}"

    def _clear(self, acct: ref.Account, symbol: str, side: str, qty: D, price: D, maker: bool) -> None:
        need = acct.required(symbol, side, qty, price, maker)
        assume(need == -ref.INF or abs(need - acct.available()) > MARGIN_SLACK)

    def _submit_limit(self, cid: str, symbol: str, side: str, qty: D, price: D) -> None:
        request = OrderRequest(symbol=symbol, side=OrderSide(side), order_type=OrderType.LIMIT,
                               position_side=PositionSide.LONG if side == "BUY" else PositionSide.SHORT,
                               quantity=qty, price=price, client_order_id=cid)
        self._submit(cid, request, lambda a: a.limit(cid, symbol, side, qty, price))

    def _submit(self, cid: str, request: OrderRequest, attempt) -> None:
        """Run ``attempt`` on a clone of the reference; the engine must agree on refusal."""
        trial = self.ref.clone()
        try:
            attempt(trial)
            refused = False
        except ref.Refused:
            refused = True
        if refused:
            before = self._snapshot()
            with pytest.raises(InsufficientFunds):
                self.trader.place_order(request)
            assert self._snapshot() == before, "a refused order changed the book"
            return
        self.trader.place_order(request)
        self.ref = trial

    def _snapshot(self):
        book = self.trader.store.load(self.trader.account_ref)
        return book.to_dict() if book else None

    # -- rules ----------------------------------------------------------------------------
    @rule(symbol=SYMBOLS, side=SIDES, notional=st.integers(6, 120000))
    def market_order(self, symbol, side, notional):
        price = self.ref.prices[symbol]
        qty = _qty(notional, price)
        assume(qty * price >= 5)
        self._clear(self.ref, symbol, side, qty, self.ref.venue.slipped(price, side), False)
        cid = self._cid("m")
        request = OrderRequest(symbol=symbol, side=OrderSide(side), order_type=OrderType.MARKET,
                               position_side=PositionSide.LONG if side == "BUY" else PositionSide.SHORT,
                               quantity=qty, client_order_id=cid)
        self._submit(cid, request, lambda a: a.market(cid, symbol, side, qty))

    @rule(symbol=SYMBOLS, side=SIDES, notional=st.integers(6, 60000), bps=st.integers(20, 800))
    def resting_limit(self, symbol, side, notional, bps):
        mark = self.ref.prices[symbol]
        off = D(bps) / D(10000)
        price = ref.tick(mark * (1 - off) if side == "BUY" else mark * (1 + off))
        qty = _qty(notional, price)
        assume(qty * price >= 5)
        self._clear(self.ref, symbol, side, qty, price, True)
        cid = self._cid("lim")
        self._submit_limit(cid, symbol, side, qty, price)

    @rule(symbol=SYMBOLS, side=SIDES, notional=st.integers(6, 60000), bps=st.integers(-6, 30))
    def marketable_limit(self, symbol, side, notional, bps):
        """A limit at or through the market (bps beyond it; below 2 the limit bounds the fill)."""
        mark = self.ref.prices[symbol]
        off = D(bps) / D(10000)
        price = ref.tick(mark * (1 + off) if side == "BUY" else mark * (1 - off))
        qty = _qty(notional, price)
        assume(qty * price >= 5)
        fill = min(self.ref.venue.slipped(mark, side), price) if side == "BUY" else \
            max(self.ref.venue.slipped(mark, side), price)
        self._clear(self.ref, symbol, side, qty, fill, False)
        cid = self._cid("mlim")
        self._submit_limit(cid, symbol, side, qty, price)

    @rule(symbol=SYMBOLS, side=SIDES, notional=st.integers(6, 60000), bps=st.integers(20, 500),
          sl=st.integers(20, 500), tp=st.integers(20, 500))
    def limit_with_protection(self, symbol, side, notional, bps, sl, tp):
        """A resting opening limit with an attached stop-loss and take-profit."""
        pos = self.ref.qty(symbol)
        assume(pos == 0 or (pos > 0) == (side == "BUY"))
        mark = self.ref.prices[symbol]
        sign = -1 if side == "BUY" else 1
        price = ref.tick(mark * (1 + sign * D(bps) / D(10000)))
        stop = ref.tick(price * (1 + sign * D(sl) / D(10000)))
        take = ref.tick(price * (1 - sign * D(tp) / D(10000)))
        qty = _qty(notional, price)
        assume(qty * price >= 5 and qty * stop >= 5 and qty * take >= 5)
        self._clear(self.ref, symbol, side, qty, price, True)
        cid = self._cid("plim")
        request = OrderRequest(symbol=symbol, side=OrderSide(side), order_type=OrderType.LIMIT,
                               position_side=PositionSide.LONG if side == "BUY" else PositionSide.SHORT,
                               quantity=qty, price=price, client_order_id=cid, stop_loss=stop, take_profit=take)
        self._submit(cid, request, lambda a: a.limit(cid, symbol, side, qty, price,
                                                     stop_loss=stop, take_profit=take))

    @precondition(lambda self: bool(self.ref.positions))
    @rule(data=st.data(), kind=st.sampled_from(["STOP_MARKET", "TAKE_PROFIT_MARKET"]),
          bps=st.integers(20, 800), frac=st.sampled_from([D("0.3"), D("1"), D("1.5")]))
    def protective(self, data, kind, bps, frac):
        symbol = data.draw(st.sampled_from(sorted(self.ref.positions)))
        pos = self.ref.positions[symbol].quantity
        side = "SELL" if pos > 0 else "BUY"
        mark = self.ref.prices[symbol]
        off = D(bps) / D(10000)
        below = (kind == "STOP_MARKET") == (pos > 0)
        stop = ref.tick(mark * (1 - off) if below else mark * (1 + off))
        qty = (abs(pos) * frac).quantize(D("0.000001"), rounding="ROUND_DOWN")
        assume(qty * stop >= 5)
        cid = self._cid("sl" if kind == "STOP_MARKET" else "tp")
        request = OrderRequest(symbol=symbol, side=OrderSide(side), order_type=OrderType(kind),
                               position_side=PositionSide.LONG if pos > 0 else PositionSide.SHORT,
                               quantity=qty, stop_price=stop, reduce_only=True, client_order_id=cid)
        self.trader.place_order(request)
        self.ref.trigger_order(cid, symbol, side, kind, qty, stop)

    @precondition(lambda self: any(o.is_open and o.parent is None for o in self.ref.orders.values()))
    @rule(data=st.data())
    def cancel(self, data):
        cid = data.draw(st.sampled_from(sorted(c for c, o in self.ref.orders.items()
                                               if o.is_open and o.parent is None)))
        self.trader.cancel_order(self.ref.orders[cid].symbol, client_order_id=cid)
        self.ref.cancel(cid)

    @rule(symbol=SYMBOLS, bps=st.integers(-1500, 1500), seconds=st.integers(3, 50))
    def move(self, symbol, bps, seconds):
        p0 = self.ref.prices[symbol]
        p1 = ref.tick(p0 * (1 + D(bps) / D(10000)))
        trial = self.ref.clone()
        start = trial.now
        events = trial.move(symbol, p1, seconds)
        times = [start] + [e.at for e in events]
        assume(all(b - a >= GAP for a, b in zip(times, times[1:])))
        assume(all(start + seconds - e.at >= 1 or e.at == start + seconds for e in events))
        self.market.set(symbol, str(p0), after=0)
        self.market.set(symbol, str(p1), after=seconds)
        self.clock.advance(seconds)
        self.trader.get_balance()  # touch: plays the path
        self.ref = trial
        for e in events:
            event(e.kind if e.kind == "liquidation" else self.ref.orders[e.cid].order_type)

    @rule(seconds=st.integers(1, 30))
    def wait(self, seconds):
        self.clock.advance(seconds)
        self.ref.now += seconds

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def agrees(self):
        if not hasattr(self, "ref"):
            return
        r = self.ref
        balance = self.trader.get_balance()
        positions = {p.symbol: p for p in self.trader.get_positions()}
        book = self.trader.store.load(self.trader.account_ref)
        assert book is not None
        # fills, in order
        engine_fills = []
        for f in book.fills:
            order = book.orders.get(f.order_id)
            cid = order.client_order_id if order is not None and not f.liquidation else "liq"
            engine_fills.append((cid, f.symbol, f.side, f.quantity, f.price, ref.money(f.fee),
                                 ref.money(f.realized_pnl), f.maker, f.liquidation))
        ref_fills = [("liq" if f.liquidation else f.cid, f.symbol, f.side, f.quantity, f.price, f.fee,
                      ref.money(f.realized_pnl), f.maker, f.liquidation) for f in r.fills]
        assert engine_fills == ref_fills
        for f, rf in zip(book.fills, r.fills):
            expected = T0 + timedelta(seconds=float(rf.at))
            assert abs((f.timestamp - expected).total_seconds()) <= 1.0 + 1e-6, (f, rf)
        # wallet and the ledger identity
        assert ref.money(book.wallet_balance) == ref.money(r.wallet)
        realized = sum((f.realized_pnl for f in book.fills), D(0))
        fees = sum((f.fee for f in book.fills), D(0))
        assert ref.money(book.wallet_balance) == ref.money(book.starting_balance + realized - fees)
        # positions
        assert {s: (p.quantity, p.entry_price) for s, p in book.positions.items()} == \
            {s: (p.quantity, p.entry) for s, p in r.positions.items()}
        for s, p in positions.items():
            assert ref.money(p.unrealized_pnl) == ref.money(r.upnl(s)), s
            lp = r.liquidation_price(s)
            assert p.liquidation_price == (ref.tick(lp) if lp is not None else None), s
        # account
        assert ref.money(balance.total_balance) == ref.money(r.wallet)
        # sums of per-position figures the engine rounds to 8 places one by one
        assert abs(balance.margin_balance - r.margin_balance()) <= AGG, "margin balance"
        assert abs(D(balance.raw_data["available_unclamped"]) - r.available()) <= AGG, "available"
        assert abs(D(balance.raw_data["order_margin"]) - r.order_margin()) <= AGG, "order margin"
        assert abs(balance.maintenance_margin - r.total_maintenance()) <= AGG, "maintenance"
        # orders
        by_cid = {o.client_order_id: o for o in book.orders.values()}
        for cid, o in r.orders.items():
            if cid.startswith("liq-"):
                continue
            assert by_cid[cid].status == o.status, cid


PaperOracle.TestCase.settings = settings(
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", 40)), stateful_step_count=25, deadline=None, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target] if os.environ.get("ORACLE_NO_SHRINK")
    else list(Phase),
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
test_paper_oracle = PaperOracle.TestCase


class LiquidationOracle(PaperOracle):
    """The same comparison at 20x with positions near the account's limit, so that moves
    reach liquidation prices."""

    @initialize(lev=st.just({s: 20 for s in PRICES}))
    def setup(self, lev):
        super().setup(lev)

    @rule(symbol=SYMBOLS, side=SIDES, frac=st.integers(30, 95))
    def big_market_order(self, symbol, side, frac):
        notional = int(self.ref.available() * 20 * frac / 100) if self.ref.available() > 0 else 0
        assume(notional >= 6)
        self.market_order(symbol, side, notional)


LiquidationOracle.TestCase.settings = settings(PaperOracle.TestCase.settings,
                                              max_examples=int(os.environ.get("ORACLE_EXAMPLES", 60)))
test_liquidation_oracle = LiquidationOracle.TestCase


def test_two_liquidations_the_non_moving_loser_first():
    """ETH long losing 6 %, BTC long falling: at the moment the account meets its maintenance
    margin ETH (not the moving BTC) loses most and is closed first at its LP; BTC later."""
    clock = Clock()
    market = ScriptedMarket(clock, BTC="60000", ETH="3000")
    trader = make_trader(market, clock)
    acct = ref.Account(ref.Venue(), {"BTC/USDT": 20, "ETH/USDT": 20},
                       {"BTC/USDT": D("60000"), "ETH/USDT": D("3000")})
    for symbol in ("BTC/USDT", "ETH/USDT"):
        trader.set_leverage(symbol, 20)
    for symbol, qty in (("BTC/USDT", D("0.333333")), ("ETH/USDT", D("33.333333"))):
        trader.place_order(OrderRequest(symbol=symbol, side=OrderSide.BUY, position_side=PositionSide.LONG,
                                        order_type=OrderType.MARKET, quantity=qty, client_order_id=symbol))
        acct.market(symbol, symbol, "BUY", qty)
    for symbol, start, end, seconds in (("ETH/USDT", "3000", "2820", 20), ("BTC/USDT", "60000", "54000", 20),
                                        ("BTC/USDT", "54000", "45900", 40)):
        market.set(symbol, start, after=0)
        market.set(symbol, end, after=seconds)
        clock.advance(seconds)
        trader.get_balance()
        acct.move(symbol, D(end), seconds)
    book = trader.store.load(trader.account_ref)
    got = [(f.symbol, f.price, f.fee, f.realized_pnl, f.liquidation) for f in book.fills]
    assert got == [(f.symbol, f.price, f.fee, f.realized_pnl, f.liquidation) for f in acct.fills]
    assert [f.symbol for f in acct.fills if f.liquidation] == ["ETH/USDT", "BTC/USDT"]
    assert book.wallet_balance == acct.wallet == D("72.95583621")
