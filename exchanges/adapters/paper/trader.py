"""``PaperTrader``: the ExchangeTrader of the built-in paper venue. Django-free.

Each call opens the account's book through the runtime's ``paper_store`` (locked for the
call, saved on success), first lets the engine catch up with the price path since the
last call, then does its work. With no store in the runtime a process-local
``MemoryPaperStore`` is used (scripts, tests), shared by every trader in the process.

Runtime hooks (``runtime.extra``): ``now`` (a callable returning an aware datetime: tests
move time with it), ``market`` (any PriceSource, replacing the configured one) and
``starting_balance`` (overrides the config for a new book), ``outage`` (a callable or
a bool: while true every call fails as NotProcessed, an ExchangeUnavailable).

Faults and the circuit breaker: every venue call runs through ``resilience.Guard``, like
the real adapters, so failures count towards the account's circuit breaker (config
``circuit_breaker``). A simulated outage is switched on for every process that shares the
runtime's counter store (Redis in the platform) by setting ``OUTAGE_KEY`` there, e.g.
``manage.py paper_outage --seconds 90``, or for one process by the ``PAPER_OUTAGE``
environment variable. The book lives in a database transaction, so a failed call changed
nothing: reads are not retried and a failed order is known not to have been placed. The
paper venue's configured rate limits are not enforced (benchmarks measure the platform).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from alpha_platform.common.money import ZERO, to_decimal
from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    Balance,
    BaseTrader,
    Candle,
    FillInfo,
    FundingPayment,
    MarginMode,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    SymbolRules,
    Ticker,
    VenueSpec,
    utcnow,
)
from exchanges.adapters.errors import (
    InvalidOrderError,
    NotProcessed,
    OperationalError,
    OrderNotFound,
    UnknownSymbol,
)
from exchanges.adapters.paper.engine import PaperEngine
from exchanges.adapters.paper.margin import Marks, PositionView
from exchanges.adapters.paper.market import (
    CcxtPublicMarket,
    PriceSource,
    SimulatedMarket,
)
from exchanges.adapters.paper.memory import MemoryPaperStore
from exchanges.adapters.paper.rules import PaperRules, money
from exchanges.adapters.paper.store import PaperBook, PaperOrder, PaperStore
from exchanges.adapters.resilience import AdapterRuntime, Guard

_PROCESS_STORE = MemoryPaperStore()
OUTAGE_KEY = "paper:outage"  # in the runtime's counter store; its value is the reason
PERCENT = Decimal("0.01")


def build_market(config: Mapping[str, Any], *, symbol_map: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = utcnow, cache: Any = None) -> PriceSource:
    """The price source a paper venue's config asks for (``parameters.market_data``)."""
    rules = PaperRules.from_venue_config(config)
    md = (config.get("parameters") or {}).get("market_data") or {}
    source = str(md.get("source") or "simulated").lower()
    if source == "ccxt":
        return CcxtPublicMarket(str(md.get("ccxt_id") or "binanceusdm"), cache=cache,
                                price_tick=rules.price_tick, clock=clock)
    if source != "simulated":
        raise OperationalError(f"paper market_data.source must be simulated or ccxt, not {source!r}")
    symbol_map = symbol_map or {}
    symbols = {symbol_map.get(k, k): v for k, v in (md.get("symbols") or {}).items()}
    kwargs: dict[str, Any] = {}
    if md.get("epoch"):
        epoch = md["epoch"]
        kwargs["epoch"] = epoch if isinstance(epoch, datetime) else datetime.fromisoformat(str(epoch))
    return SimulatedMarket(md.get("seed", 0), symbols, price_tick=rules.price_tick,
                           quantity_step=rules.quantity_step, clock=clock, **kwargs)


class PaperTrader(BaseTrader):
    # Nothing to reuse between calls (the book lives in the store): built per call.
    CAPABILITIES: ClassVar[dict[str, Any]] = {"long_lived": False}

    def __init__(self, *, spec: VenueSpec, credentials: Credentials | None = None, runtime: Any = None) -> None:
        super().__init__(spec=spec, credentials=credentials or Credentials({}), runtime=runtime)
        extra: Mapping[str, Any] = getattr(runtime, "extra", None) or {}
        config = spec.config
        params = config.get("parameters") or {}
        self.rules = PaperRules.from_venue_config(config, venue=spec.venue)
        self.store: PaperStore = getattr(runtime, "paper_store", None) or _PROCESS_STORE
        self.account_ref = spec.account_ref or f"{spec.venue}:default"
        self._clock: Callable[[], datetime] = extra.get("now") or utcnow
        self.starting_balance = to_decimal(extra.get("starting_balance") or params.get("starting_balance", 10000))
        self._market: PriceSource | None = extra.get("market")
        self._cache = getattr(runtime, "cache", None)
        self._engine: PaperEngine | None = None
        self._outage_hook = extra.get("outage")
        base = runtime if isinstance(runtime, AdapterRuntime) else AdapterRuntime()
        # No read retries and no back-off: a failed call rolled the book's transaction back.
        self._guard = Guard(dataclasses.replace(base, read_retries=0, backoff_base=0.0), venue=spec.venue,
                            account_ref=self.account_ref, venue_config={**config, "rate_limits": {}})

    # -- plumbing -------------------------------------------------------------------------
    @property
    def market(self) -> Any:
        if self._market is None:
            self._market = build_market(self.spec.config, symbol_map=self.spec.symbol_map,
                                        clock=self._now, cache=self._cache)
        return self._market

    @property
    def engine(self) -> PaperEngine:
        if self._engine is None:
            self._engine = PaperEngine(self.rules, self.market)
        return self._engine

    def _now(self) -> datetime:
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    @contextmanager
    def _book(self) -> Iterator[tuple[PaperBook, datetime]]:
        now = self._now()
        with self.store.book(self.account_ref, starting_balance=self.starting_balance) as book:
            self.engine.sync(book, now)
            yield book, now

    def _check_outage(self) -> None:
        hook = self._outage_hook
        reason = (hook() if callable(hook) else hook) or os.environ.get("PAPER_OUTAGE") \
            or self._guard.runtime.store.get(OUTAGE_KEY)
        if reason:
            # Refused before the book is touched: certainly not placed (NotProcessed), unlike a
            # real venue's bare 5xx after which the order may exist.
            raise NotProcessed(f"paper: simulated outage ({reason if isinstance(reason, str) else 'on'})",
                               venue=self.spec.venue)

    def _read(self, fn: Callable[[], Any], *, kind: str = "requests") -> Any:
        """A venue call through the Guard: the outage switch, then the call."""
        def call() -> Any:
            self._check_outage()
            return fn()
        return self._guard.read(call, kind=kind)

    def _venue_symbol(self, symbol: str) -> str:
        venue_symbol = self.normalize_symbol(symbol)
        known = getattr(self.market, "symbols", None)
        if known is not None and venue_symbol not in known:
            raise UnknownSymbol(f"{symbol} has no market data on {self.spec.venue}", venue=self.spec.venue)
        return venue_symbol

    # -- orders ---------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> OrderResult:
        def send() -> OrderResult:
            self._check_outage()
            venue_symbol = self._venue_symbol(request.symbol)
            with self._book() as (book, now):
                order = self.engine.place_order(book, dataclasses.replace(request, symbol=venue_symbol), now)
                return self._result(book, order)

        def lookup() -> OrderResult:
            # The answer of this venue is never lost: a failed send rolled back, nothing placed.
            raise OrderNotFound(f"paper: {request.client_order_id} was not placed", venue=self.spec.venue)

        return self._guard.submit(send, lookup)

    def get_order(self, symbol: str, *, order_id: str | None = None,
                  client_order_id: str | None = None) -> OrderResult:
        venue_symbol = self._venue_symbol(symbol)

        def call() -> OrderResult:
            with self._book() as (book, _now):
                order = self.engine.find(book, venue_symbol, order_id=order_id, client_order_id=client_order_id)
                return self._result(book, order)
        return self._read(call)

    def get_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        venue_symbol = self._venue_symbol(symbol) if symbol is not None else None

        def call() -> list[OrderResult]:
            with self._book() as (book, _now):
                return [self._result(book, o) for o in book.open_orders(venue_symbol)]
        return self._read(call)

    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderResult:
        venue_symbol = self._venue_symbol(symbol)

        def call() -> OrderResult:
            with self._book() as (book, now):
                order = self.engine.cancel_order(book, venue_symbol, order_id=order_id,
                                                 client_order_id=client_order_id, now=now)
                return self._result(book, order)
        return self._read(call, kind="orders")

    def get_liquidations(self, since: datetime | None = None) -> list[OrderResult]:
        def call() -> list[OrderResult]:
            with self._book() as (book, _now):
                # A liquidation order is filled the moment it is made: its last update is its close.
                return [self._result(book, o) for o in book.closed_since(since, liquidation=True)]
        return self._read(call)

    def get_funding_payments(self, since: datetime | None = None) -> list[FundingPayment]:
        def call() -> list[FundingPayment]:
            with self._book() as (book, _now):
                return [FundingPayment(payment_id=f.payment_id, symbol=self.denormalize_symbol(f.symbol),
                                       funding_time=f.funding_time, rate=f.rate, mark_price=f.mark_price,
                                       quantity=f.quantity, amount=f.amount) for f in book.funding_since(since)]
        return self._read(call)

    def _result(self, book: PaperBook, order: PaperOrder) -> OrderResult:
        attached = tuple(self._result(book, child) for child in book.orders_by_id(order.attached_ids))
        raw = {
            "order_id": order.order_id, "status": order.status, "created_at": order.created_at.isoformat(),
            "time_in_force": order.time_in_force, "realized_pnl": format(order.realized_pnl, "f"),
            "parent_id": order.parent_id, "attached_role": order.attached_role,
            "liquidation": order.liquidation, "note": order.note,
            "requested_quantity": format(order.requested_quantity, "f") if order.requested_quantity else None,
            "triggered_at": order.triggered_at.isoformat() if order.triggered_at else None,
            "maker": any(f.maker for f in order.fills),
        }
        return OrderResult(
            symbol=self.denormalize_symbol(order.symbol), order_id=order.order_id,
            client_order_id=order.client_order_id, side=OrderSide(order.side),
            order_type=OrderType(order.order_type), quantity=order.quantity, price=order.price,
            executed_quantity=order.executed_quantity, executed_price=order.average_price,
            status=OrderStatus(order.status), fees=order.fees, timestamp=order.updated_at,
            exchange=self.exchange_name, raw_data=raw,
            position_side=PositionSide(order.position_side) if order.position_side else None,
            reduce_only=order.reduce_only, stop_price=order.stop_price,
            fills=tuple(FillInfo(trade_id=f.trade_id, quantity=f.quantity, price=f.price, fee=f.fee,
                                 realized_pnl=f.realized_pnl, timestamp=f.timestamp) for f in order.fills),
            attached=attached,
        )

    # -- account --------------------------------------------------------------------------
    def get_balance(self) -> Balance:
        def call() -> tuple[Any, ...]:
            with self._book() as (book, now):
                view = self.engine.account(book, Marks(self.market, now))
                return (view, now, book.starting_balance, book.realized_pnl_total, book.fees_total,
                        book.funding_total)
        view, now, starting, realized, fees, funding = self._read(call)
        return Balance(
            total_balance=view.wallet_balance,
            available_balance=max(view.available, ZERO),
            margin_balance=view.margin_balance,
            unrealized_pnl=view.unrealized_pnl,
            currency="USDT", timestamp=now, exchange=self.exchange_name,
            margin_used=view.position_margin + view.order_margin,
            maintenance_margin=view.maintenance_margin,
            can_trade=view.available > 0,
            account_type="futures",
            raw_data={
                "starting_balance": format(starting, "f"),
                "available_unclamped": format(view.available, "f"),
                "position_margin": format(view.position_margin, "f"),
                "order_margin": format(view.order_margin, "f"),
                "realized_pnl_total": format(realized, "f"),
                "fees_total": format(fees, "f"),
                "funding_total": format(funding, "f"),
            },
        )

    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]:
        wanted = {self._venue_symbol(s) for s in symbols} if symbols else None

        def call() -> tuple[Any, datetime]:
            with self._book() as (book, now):
                return self.engine.account(book, Marks(self.market, now)), now
        view, now = self._read(call)
        return [self._position(p, now) for p in view.positions
                if wanted is None or p.position.symbol in wanted]

    def _position(self, view: PositionView, now: datetime) -> Position:
        p = view.position
        pct = (view.unrealized_pnl / view.initial_margin * 100).quantize(PERCENT) if view.initial_margin else ZERO
        return Position(
            symbol=self.denormalize_symbol(p.symbol), side=PositionSide(p.side), size=p.size,
            entry_price=p.entry_price, mark_price=view.mark_price, unrealized_pnl=view.unrealized_pnl,
            percentage_pnl=pct, leverage=Decimal(view.leverage), margin=view.initial_margin,
            timestamp=now, exchange=self.exchange_name, position_id=p.position_id,
            liquidation_price=view.liquidation_price, margin_type="cross",
            raw_data={
                "notional": format(view.notional, "f"),
                "maintenance_margin": format(view.maintenance_margin, "f"),
                "realized_pnl": format(money(p.realized_pnl), "f"),
                "fees": format(money(p.fees), "f"),
                "funding": format(money(p.funding), "f"),
                "opened_at": p.opened_at.isoformat(),
            },
        )

    def set_leverage(self, symbol: str, leverage: int) -> None:
        venue_symbol = self._venue_symbol(symbol)

        def call() -> None:
            with self._book() as (book, now):
                self.engine.set_leverage(book, venue_symbol, int(leverage), now)
        self._read(call, kind="orders")

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._venue_symbol(symbol)
        if MarginMode(mode) != MarginMode.CROSS:
            raise InvalidOrderError(f"{self.spec.venue} supports cross margin only", venue=self.spec.venue,
                                    code="-4046")

    # -- market data ----------------------------------------------------------------------
    def get_ticker(self, symbol: str) -> Ticker:
        venue_symbol = self._venue_symbol(symbol)
        ticker = self._read(lambda: self.market.ticker(venue_symbol, self._now(), exchange=self.exchange_name,
                                                       half_spread_bps=self.rules.slippage_bps))
        return dataclasses.replace(ticker, symbol=symbol)

    def get_market_price(self, symbol: str) -> Decimal:
        venue_symbol = self._venue_symbol(symbol)
        return self._read(lambda: self.market.price(venue_symbol, self._now()))

    def get_candles(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> list[Candle]:
        venue_symbol = self._venue_symbol(symbol)
        return self._read(lambda: self.market.candles(venue_symbol, timeframe, limit, end=self._now()))

    # -- symbols --------------------------------------------------------------------------
    def symbol_rules(self, symbol: str) -> SymbolRules:
        venue_symbol = self._venue_symbol(symbol)
        filters = self.rules.filters(venue_symbol)  # the symbol's own (config symbol_filters)
        return SymbolRules(
            symbol=symbol, quantity_step=filters.step_size, price_tick=filters.tick_size,
            min_quantity=filters.step_size, min_notional=filters.min_notional,
            max_leverage=self.rules.max_leverage_for(venue_symbol),
        )
