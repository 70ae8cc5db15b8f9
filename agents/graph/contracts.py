"""The decision core's contracts: what goes in, what comes out, and the ports the Django
side implements (market/account data, tool execution, the LLM budget, the model itself).

Django-free on purpose (import-linter forbids django, agents.models and trading here):
every value is a plain dataclass, a Decimal, a str or a JSON-able dict, so the graph can
be run and tested without a database and its output persisted by ``agents.services``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple, Protocol, runtime_checkable

from agents.graph.tool_args import ToolArgs
from alpha_platform.common.money import ZERO, to_decimal


class DecisionStatus(StrEnum):
    """Mirrors ``agents.models.Decision.Status`` (minus running/skipped, which the service owns)."""

    EXECUTED = "executed"
    HELD = "held"
    REJECTED = "rejected"
    ERROR = "error"
    BUDGET_EXCEEDED = "budget_exceeded"


class ToolCallStatus(StrEnum):
    """Mirrors ``agents.models.ToolCall.Status``."""

    PENDING = "pending"  # written before the executor runs it; replaced by its outcome
    OK = "ok"
    INVALID = "invalid"
    REJECTED = "rejected"
    ERROR = "error"


class BudgetExceeded(Exception):
    """Raised by ``BudgetGuard.check()`` when no further model call may be paid for."""


# --------------------------------------------------------------------------- inputs


@runtime_checkable
class CandleLike(Protocol):
    """Anything with OHLC attributes (``exchanges.adapters.base.Candle`` fits)."""

    high: Any
    low: Any
    close: Any


@dataclass(frozen=True)
class Indicators:
    """Precomputed indicators for a symbol; a provider may give these instead of candles."""

    ema_fast: float | Decimal | None = None  # EMA(9)
    ema_slow: float | Decimal | None = None  # EMA(21)
    rsi: float | Decimal | None = None  # RSI(14), Wilder
    atr: float | Decimal | None = None  # ATR(14), Wilder


@dataclass(frozen=True)
class MarketSnapshot:
    symbol: str
    price: Decimal
    change_pct: Decimal | None = None  # over the candle window; computed from candles if None
    candles: Sequence[CandleLike] = ()  # oldest first
    indicators: Indicators | None = None  # wins over candles when given
    funding_rate: Decimal | None = None
    timeframe: str = ""  # e.g. "1m": the candles' interval, shown to the model


@dataclass(frozen=True)
class PositionInfo:
    symbol: str
    side: str  # "LONG" | "SHORT"
    size: Decimal  # base units, positive
    entry_price: Decimal
    mark_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    leverage: Decimal | int | None = None


@dataclass(frozen=True)
class OpenOrderInfo:
    id: int  # the platform's Order id: what ``cancel_order`` takes
    symbol: str
    side: str  # "BUY" | "SELL"
    type: str  # "LIMIT", "STOP_MARKET", ...
    quantity: Decimal
    price: Decimal | None = None  # limit or trigger price
    reduce_only: bool = False


@dataclass(frozen=True)
class AccountSnapshot:
    balance: Decimal  # wallet balance
    equity: Decimal  # balance + unrealized PnL
    available: Decimal  # free for new margin
    currency: str = "USDT"
    positions: Sequence[PositionInfo] = ()
    open_orders: Sequence[OpenOrderInfo] = ()


@dataclass(frozen=True)
class DecisionInput:
    agent_id: int
    model_name: str
    instructions: str  # the user's own text, sent as-is in its own message
    symbols: tuple[str, ...]
    max_tool_rounds: int = 4
    max_leverage: int = 3
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # aware UTC
    recent_decisions: int = 3  # how many summary lines to ask the provider for
    # The decision's own time limit: a ``time.monotonic()`` value after which no round starts
    # and no order is sent; every model call is bounded by the time left. ``time_limit`` is
    # the limit in seconds, for the error text. None: no limit (tests, the CLI).
    deadline: float | None = None
    time_limit: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(self.symbols))


# --------------------------------------------------------------------------- tool calls


@dataclass(frozen=True)
class ToolCallRequest:
    """A validated tool call handed to the executor.

    ``arguments`` is the model's JSON object after validation (every schema key present,
    unused ones null, numbers as JSON numbers); ``params`` the same arguments typed, as the
    tool's model (``agents.graph.tool_args``: money as Decimal read from the JSON text).
    ``index`` is unique within the decision (``ToolCall.index``), ``round`` is the tool round
    (0-based), ``call_id`` the model's id.
    """

    index: int
    round: int
    call_id: str
    name: str
    arguments: Mapping[str, Any]
    params: ToolArgs | None = None

    def decimal(self, key: str) -> Decimal | None:
        """An argument as a Decimal, or None if null/absent: the typed value when ``params``
        is given (exactly what the model wrote), else via the value's text (0.1 stays 0.1)."""
        if self.params is not None and key in type(self.params).model_fields:
            typed = getattr(self.params, key)
            return None if typed is None else to_decimal(typed)
        value = self.arguments.get(key)
        return None if isinstance(value, bool) else to_decimal(value, default=None)


@dataclass(frozen=True)
class ToolOutcome:
    status: str  # "ok" | "rejected" | "error"
    result: dict[str, Any] = field(default_factory=dict)  # JSON-able, shown to the model
    order_id: int | None = None
    risk_event_id: int | None = None


@dataclass
class ToolCallRecord:
    """One row of ``agents.models.ToolCall``."""

    index: int
    round: int
    call_id: str
    name: str
    arguments: dict[str, Any]  # parsed, or {} when the JSON was malformed
    raw_arguments: str
    status: str  # ToolCallStatus
    result: dict[str, Any]
    order_id: int | None = None
    risk_event_id: int | None = None
    duration_ms: int = 0


# --------------------------------------------------------------------------- the model


class LLMToolCall(NamedTuple):
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it
    kind: str = "function"  # the call's type as sent; only "function" calls are executed


@dataclass
class LLMReply:
    content: str | None
    tool_calls: list[LLMToolCall]
    prompt_tokens: int
    completion_tokens: int
    model: str
    raw: dict[str, Any] = field(default_factory=dict)  # JSON-able


# --------------------------------------------------------------------------- ports


@runtime_checkable
class ContextProvider(Protocol):
    def market(self, symbol: str) -> MarketSnapshot: ...
    def account(self) -> AccountSnapshot: ...
    def risk_line(self) -> str: ...
    def recent_decisions(self, n: int) -> list[str]: ...


@runtime_checkable
class ToolExecutor(Protocol):
    """Runs write tools (orders, cancel, leverage) and read tools against live data."""

    def execute(self, call: ToolCallRequest) -> ToolOutcome: ...


@runtime_checkable
class BudgetGuard(Protocol):
    def check(self) -> None:
        """Raise ``BudgetExceeded`` if the next model call must not be made."""

    def add(self, cost: Decimal) -> None:
        """Account the cost of a call that was made."""


@runtime_checkable
class LLMClient(Protocol):
    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                 timeout: float | None = None) -> LLMReply:
        """One model call. ``timeout``: seconds the whole call (retries included) may take;
        ``<= 0`` fails at once with a temporary error; None: the client's own bound."""


@runtime_checkable
class DecisionRecorder(Protocol):
    """The audit written as it happens (the Django side persists each hook at once), so a
    failure in a later step, or the process dying, cannot lose what was already done.

    ``llm_reply`` is called after every model reply with the decision's running totals (the
    spend is counted whatever happens next). ``tool_call`` is called for every tool call:
    before an executed call reaches the executor (status ``pending``; if this write fails the
    call is not executed) and again with its outcome. ``active`` says whether the decision
    may go on (False once its lock is lost or someone closed it): checked before every model
    call and every executed tool call.
    """

    def llm_reply(self, *, prompt_tokens: int, completion_tokens: int, cost: Decimal, model: str,
                  llm_calls: int) -> None: ...

    def tool_call(self, record: ToolCallRecord) -> None: ...

    def active(self) -> str:
        """"" while the decision may go on; otherwise the reason it must stop."""


@runtime_checkable
class Pricing(Protocol):
    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal: ...


# --------------------------------------------------------------------------- output


@dataclass
class DecisionOutput:
    status: str  # DecisionStatus
    summary: str  # one line
    error: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)  # the whole conversation
    raw_replies: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = ZERO
    node_timings: dict[str, float] = field(default_factory=dict)  # ms, summed per node
    market_snapshot: dict[str, Any] = field(default_factory=dict)  # JSON-able
    context: dict[str, Any] = field(default_factory=dict)  # the compact JSON the model saw
    llm_calls: int = 0
    rounds: int = 0  # tool rounds executed
    stopped_reason: str = ""  # "", "round_limit", "budget", "error"
    model: str = ""  # as reported by the last reply
