"""The decision graph's state and what its nodes share: the run-scoped dependencies
(``Deps``, LangGraph's ``context``), the state dict that flows between the nodes, the
time limit and the "may it go on" check, and the audit write of one tool call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

from langgraph.runtime import Runtime

from agents.graph.contracts import (
    BudgetGuard,
    ContextProvider,
    DecisionInput,
    DecisionOutput,
    DecisionRecorder,
    LLMClient,
    LLMToolCall,
    Pricing,
    ToolCallRecord,
    ToolExecutor,
)

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS_CAP = 20
MAX_CALLS_PER_ROUND = 8
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Deps:
    provider: ContextProvider
    executor: ToolExecutor
    llm: LLMClient
    budget: BudgetGuard | None
    pricing: Pricing | None
    recorder: DecisionRecorder | None = None


class DecisionState(TypedDict):
    inp: DecisionInput
    max_rounds: int
    tools: list[dict[str, Any]]
    prices: dict[str, Decimal]
    context: dict[str, Any]
    market_snapshot: dict[str, Any]
    messages: list[dict[str, Any]]
    raw_replies: list[dict[str, Any]]
    pending: list[LLMToolCall]
    final_text: str
    records: list[ToolCallRecord]
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    llm_calls: int
    rounds: int
    model: str
    stop: str  # "", "budget_first", "budget", "round_limit", "hold", "error"
    error: str
    timings: dict[str, float]
    output: DecisionOutput | None


def err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def timed(name: str, fn: Callable[[DecisionState, Runtime[Deps]], dict[str, Any]]):
    def node(state: DecisionState, runtime: Runtime[Deps]) -> dict[str, Any]:
        started = time.perf_counter()
        update = fn(state, runtime)
        elapsed = (time.perf_counter() - started) * 1000.0
        timings = dict(update.get("timings") or state["timings"])
        timings[name] = round(timings.get(name, 0.0) + elapsed, 3)
        update["timings"] = timings
        return update

    node.__name__ = name
    return node


def time_left(inp: DecisionInput) -> float | None:
    return None if inp.deadline is None else inp.deadline - time.monotonic()


def limit_text(inp: DecisionInput) -> str:
    limit = inp.time_limit
    return "time limit reached" if limit is None else f"time limit of {limit:g} s reached"


def halt_reason(inp: DecisionInput, deps: Deps) -> str:
    """Why the decision must not call the model or send an order now ("" if it may)."""
    left = time_left(inp)
    if left is not None and left <= 0:
        return limit_text(inp)
    if deps.recorder is not None:
        try:
            return str(deps.recorder.active() or "")
        except Exception as exc:
            return f"could not confirm the decision may go on: {err(exc)}"
    return ""


def write_record(deps: Deps, record: ToolCallRecord, *, required: bool = False) -> str:
    """Persist a tool call now; "" on success, else the error (raised only to the caller's
    choice: a pending write that fails means the call is not executed)."""
    if deps.recorder is None:
        return ""
    try:
        deps.recorder.tool_call(record)
        return ""
    except Exception as exc:
        (log.error if required else log.warning)("could not write tool call %s: %s", record.index, err(exc))
        return err(exc)
