"""The decision graph (LangGraph ``StateGraph``) and its entry point ``run_decision``.

    START -> gather_context -> decide --(tool calls)--> execute_tools --(rounds left)--> decide
                                  |                          |
                                  +--(reply / stop)----------+--(bound, hold, error)--> record -> END

The graph is compiled once per process; everything run-specific (provider, executor,
model, budget, pricing) travels as LangGraph's run-scoped ``context`` (``Runtime``), so
concurrent decisions share the compiled graph safely. Nodes never raise: each catches its
own failures into ``state["error"]`` and routes to ``record``, so the audit keeps whatever
happened before the failure (an order placed in round 0 stays recorded when round 1 fails).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.graph import prompt as pr
from agents.graph import tokens as tk
from agents.graph import toolspec as ts
from agents.graph.contracts import (
    BudgetExceeded,
    BudgetGuard,
    ContextProvider,
    DecisionInput,
    DecisionOutput,
    DecisionRecorder,
    DecisionStatus,
    LLMClient,
    LLMToolCall,
    Pricing,
    ToolCallRecord,
    ToolCallRequest,
    ToolCallStatus,
    ToolExecutor,
)

log = logging.getLogger(__name__)

MAX_TOOL_ROUNDS_CAP = 20
MAX_CALLS_PER_ROUND = 8
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class _Deps:
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


def _err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def _timed(name: str, fn: Callable[[DecisionState, Runtime[_Deps]], dict[str, Any]]):
    def node(state: DecisionState, runtime: Runtime[_Deps]) -> dict[str, Any]:
        started = time.perf_counter()
        update = fn(state, runtime)
        elapsed = (time.perf_counter() - started) * 1000.0
        timings = dict(update.get("timings") or state["timings"])
        timings[name] = round(timings.get(name, 0.0) + elapsed, 3)
        update["timings"] = timings
        return update

    node.__name__ = name
    return node


def _time_left(inp: DecisionInput) -> float | None:
    return None if inp.deadline is None else inp.deadline - time.monotonic()


def _limit_text(inp: DecisionInput) -> str:
    limit = inp.time_limit
    return "time limit reached" if limit is None else f"time limit of {limit:g} s reached"


def _halted(inp: DecisionInput, deps: _Deps) -> str:
    """Why the decision must not call the model or send an order now ("" if it may)."""
    left = _time_left(inp)
    if left is not None and left <= 0:
        return _limit_text(inp)
    if deps.recorder is not None:
        try:
            return str(deps.recorder.active() or "")
        except Exception as exc:
            return f"could not confirm the decision may go on: {_err(exc)}"
    return ""


def _write_record(deps: _Deps, record: ToolCallRecord, *, required: bool = False) -> str:
    """Persist a tool call now; "" on success, else the error (raised only to the caller's
    choice: a pending write that fails means the call is not executed)."""
    if deps.recorder is None:
        return ""
    try:
        deps.recorder.tool_call(record)
        return ""
    except Exception as exc:
        (log.error if required else log.warning)("could not write tool call %s: %s", record.index, _err(exc))
        return _err(exc)


# --------------------------------------------------------------------------- nodes


def _gather_context(state: DecisionState, runtime: Runtime[_Deps]) -> dict[str, Any]:
    inp, provider = state["inp"], runtime.context.provider
    try:
        market: dict[str, dict[str, Any]] = {}
        snapshot: dict[str, Any] = {}
        prices: dict[str, Decimal] = {}
        failures = []
        for symbol in inp.symbols:
            try:
                snap = provider.market(symbol)
            except Exception as exc:  # one symbol down must not blind the others
                log.warning("market data for %s failed: %s", symbol, _err(exc))
                failures.append(symbol)
                market[symbol] = {"unavailable": True}
                snapshot[symbol] = {"error": _err(exc)}
                continue
            indicators = pr.market_indicators(snap)
            entry = pr.market_entry(snap, indicators)
            market[symbol] = entry
            prices[symbol] = Decimal(str(snap.price))
            last = snap.candles[-1] if snap.candles else None
            snapshot[symbol] = {
                **entry,
                "price": str(snap.price),
                "funding": None if snap.funding_rate is None else str(snap.funding_rate),
                "candles": len(snap.candles),
                "last_candle": getattr(getattr(last, "timestamp", None), "isoformat", lambda: None)(),
            }
        if failures and len(failures) == len(inp.symbols):
            raise RuntimeError(f"no market data for any symbol ({', '.join(failures)})")
        account = provider.account()
        risk_line = provider.risk_line()
        recent = provider.recent_decisions(inp.recent_decisions) if inp.recent_decisions > 0 else []
        context = pr.build_context(now=inp.now, max_leverage=inp.max_leverage, market=market,
                                   account=account, recent=recent)
        messages = pr.build_messages(
            system=pr.system_prompt(max_leverage=inp.max_leverage, risk_line=risk_line),
            instructions=inp.instructions, context=context)
        return {
            "context": context,
            "market_snapshot": {"time": inp.now.isoformat(), "symbols": snapshot},
            "prices": prices,
            "messages": messages,
        }
    except Exception as exc:
        log.exception("gather_context failed for agent %s", inp.agent_id)
        return {"stop": "error", "error": f"gather_context: {_err(exc)}"}


def _decide(state: DecisionState, runtime: Runtime[_Deps]) -> dict[str, Any]:
    deps, inp = runtime.context, state["inp"]
    halted = _halted(inp, deps)
    if halted:
        return {"stop": "error", "pending": [], "error": halted}
    if deps.budget is not None:
        try:
            deps.budget.check()
        except BudgetExceeded as exc:
            first = state["llm_calls"] == 0
            return {"stop": "budget_first" if first else "budget", "pending": [],
                    "error": f"budget exceeded: {exc}" if first else state["error"]}
        except Exception as exc:
            return {"stop": "error", "pending": [], "error": f"budget check: {_err(exc)}"}
    messages = state["messages"]
    try:
        reply = deps.llm.complete(messages, state["tools"], timeout=_time_left(inp))
    except Exception as exc:  # LLMError after the client's retries, or anything else
        log.warning("model call failed for agent %s: %s", inp.agent_id, _err(exc))
        left = _time_left(inp)
        error = f"model call failed: {_err(exc)}"
        if left is not None and left <= 0.25:  # the deadline cut it short
            error = f"{_limit_text(inp)} (waiting for the model: {_err(exc)})"[:MAX_ERROR_CHARS]
        return {"stop": "error", "pending": [], "llm_calls": state["llm_calls"] + 1, "error": error}

    calls = []
    for i, call in enumerate(reply.tool_calls):
        call_id = ts.clip(str(call[0] or f"call_{state['llm_calls']}_{i}"), ts.MAX_NAME_CHARS)
        arguments = call[2] if isinstance(call[2], str) else json.dumps(call[2], default=str)
        kind = str(call[3] if len(call) > 3 else "function")
        calls.append(LLMToolCall(call_id, ts.clip(str(call[1] or ""), ts.MAX_NAME_CHARS),
                                 ts.clip(arguments, ts.MAX_ARGUMENTS_CHARS), ts.clip(kind, 32)))
    content = reply.content if reply.content is None or isinstance(reply.content, str) else json.dumps(
        reply.content, default=str)
    content = None if content is None else ts.clip(content, ts.MAX_CONTENT_CHARS)
    # Token counts as reported, unless they are not sane counts: then the estimate (flagged).
    raw = dict(reply.raw) if isinstance(reply.raw, dict) else {"raw": str(reply.raw)[:ts.MAX_CONTENT_CHARS]}
    prompt_tokens, why_prompt = tk.checked_token_count(reply.prompt_tokens)
    completion_tokens, why_completion = tk.checked_token_count(reply.completion_tokens)
    if prompt_tokens is None:
        prompt_tokens = tk.estimate_prompt_tokens(messages, state["tools"])
    if completion_tokens is None:
        completion_tokens = tk.estimate_completion_tokens(content, calls)
    if why_prompt or why_completion:
        raw["graph_usage_check"] = {k: f"estimated: {v}" for k, v in
                                    (("prompt_tokens", why_prompt), ("completion_tokens", why_completion)) if v}
    cost = Decimal("0")
    update: dict[str, Any] = {
        "llm_calls": state["llm_calls"] + 1,
        "prompt_tokens": state["prompt_tokens"] + prompt_tokens,
        "completion_tokens": state["completion_tokens"] + completion_tokens,
        "raw_replies": [*state["raw_replies"], raw],
        "model": ts.clip(str(reply.model or ""), ts.MAX_NAME_CHARS) or state["model"],
    }
    try:
        if deps.pricing is not None:
            cost = Decimal(deps.pricing.cost(inp.model_name, prompt_tokens, completion_tokens))
        update["cost"] = state["cost"] + cost
        if deps.budget is not None:
            deps.budget.add(cost)
    except Exception as exc:
        update.update(stop="error", pending=[], error=f"cost accounting: {_err(exc)}")
        _write_spend(deps, reply, prompt_tokens, completion_tokens, cost)
        return update
    failed = _write_spend(deps, reply, prompt_tokens, completion_tokens, cost)
    if failed:  # the spend could not be written: act on nothing more
        update.update(stop="error", pending=[], error=f"could not record the model's spend: {failed}")
        return update

    assistant: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:  # as sent: a custom call stays one (and is refused, not executed)
        assistant["tool_calls"] = [
            {"id": c.id, "type": "custom", "custom": {"name": c.name, "input": c.arguments}}
            if c.kind == "custom" else
            {"id": c.id, "type": c.kind, "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    update["messages"] = [*messages, assistant]
    update["pending"] = calls
    if content:
        update["final_text"] = content
    return update


def _write_spend(deps: _Deps, reply: Any, prompt_tokens: int, completion_tokens: int, cost: Decimal) -> str:
    if deps.recorder is None:
        return ""
    try:
        deps.recorder.llm_reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost,
                                model=str(getattr(reply, "model", "") or ""), llm_calls=1)
        return ""
    except Exception as exc:
        log.error("could not record a model reply's spend: %s", _err(exc))
        return _err(exc)


def _execute_tools(state: DecisionState, runtime: Runtime[_Deps]) -> dict[str, Any]:
    deps, inp = runtime.context, state["inp"]
    round_no = state["rounds"]
    records = list(state["records"])
    messages = list(state["messages"])
    stop, error = state["stop"], state["error"]
    names = []
    for position, call in enumerate(state["pending"]):
        started = time.perf_counter()
        index = len(records)
        names.append(call.name)
        record = ToolCallRecord(index=index, round=round_no, call_id=call.id, name=call.name, arguments={},
                                raw_arguments=call.arguments or "", status=ToolCallStatus.INVALID, result={})
        if stop == "error":  # an earlier call in this round crashed: answer, do not act
            record.status, record.result = ToolCallStatus.ERROR, {"error": "not executed: an earlier call failed"}
        elif position >= MAX_CALLS_PER_ROUND:
            record.result = {"error": f"too many tool calls in one round (max {MAX_CALLS_PER_ROUND})"}
        else:
            checked = ts.validate_call(call.name, call.arguments, symbols=inp.symbols, prices=state["prices"],
                                       max_leverage=inp.max_leverage, kind=call.kind)
            record.arguments = checked.arguments
            if not checked.ok:
                record.result = {"error": checked.error}
            elif call.name == ts.HOLD_TOOL:
                record.status, record.result = ToolCallStatus.OK, {"held": True}
            else:
                request = ToolCallRequest(index=index, round=round_no, call_id=call.id, name=call.name,
                                          arguments=dict(checked.arguments), params=checked.params)
                halted = _halted(inp, deps)
                if not halted:
                    record.status = ToolCallStatus.PENDING
                    failed = _write_record(deps, record, required=True)
                    if failed:  # no audit row, no order
                        halted = f"the audit could not be written: {failed}"
                if halted:
                    record.status, record.result = ToolCallStatus.ERROR, {"error": f"not executed: {halted}"}
                    stop, error = "error", halted
                    request = None
                try:
                    if request is None:
                        raise _NotExecuted
                    outcome = deps.executor.execute(request)
                    status = str(outcome.status)
                    if status not in (ToolCallStatus.OK, ToolCallStatus.REJECTED, ToolCallStatus.ERROR):
                        raise ValueError(f"executor returned unknown status {status!r}")
                    record.status = ToolCallStatus(status)
                    record.result = dict(outcome.result or {})
                    record.order_id, record.risk_event_id = outcome.order_id, outcome.risk_event_id
                except _NotExecuted:
                    pass
                except Exception as exc:  # an executor crash ends the decision
                    log.exception("tool %s crashed for agent %s", call.name, inp.agent_id)
                    record.status, record.result = ToolCallStatus.ERROR, {"error": "internal error"}
                    stop, error = "error", f"tool {call.name} failed: {_err(exc)}"
        record.duration_ms = int(round((time.perf_counter() - started) * 1000))
        _write_record(deps, record)
        records.append(record)
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": json.dumps({"status": str(record.status), "result": record.result},
                                               separators=(",", ":"), default=str)})
    rounds = round_no + 1
    if not stop:
        if names and all(n == ts.HOLD_TOOL for n in names):
            stop = "hold"  # nothing new for the model to learn: save the call
        elif rounds >= state["max_rounds"]:
            stop = "round_limit"
    return {"records": records, "messages": messages, "pending": [], "rounds": rounds,
            "stop": stop, "error": error}


class _NotExecuted(Exception):
    pass


def _status(state: DecisionState) -> tuple[str, str]:
    """(status, error) from what happened; see run_decision for the rules."""
    if state["stop"] == "budget_first":
        return DecisionStatus.BUDGET_EXCEEDED, state["error"]
    if state["stop"] == "error":
        return DecisionStatus.ERROR, state["error"]
    writes = [r for r in state["records"] if r.name in ts.WRITE_TOOLS
              and r.status in (ToolCallStatus.OK, ToolCallStatus.REJECTED, ToolCallStatus.ERROR)]
    if any(r.status == ToolCallStatus.OK for r in writes):
        return DecisionStatus.EXECUTED, ""
    failed = [r for r in writes if r.status == ToolCallStatus.ERROR]
    if failed:
        detail = failed[0].result.get("message") or failed[0].result.get("error") or "failed"
        return DecisionStatus.ERROR, f"{failed[0].name} failed: {detail}"[:MAX_ERROR_CHARS]
    if writes:
        return DecisionStatus.REJECTED, ""
    return DecisionStatus.HELD, ""


def _summary(state: DecisionState, status: str, error: str) -> str:
    parts = []
    for r in state["records"]:
        symbol = r.arguments.get("symbol") if isinstance(r.arguments, dict) else None
        symbol = None if symbol is None else str(symbol)[:40]  # whatever the model sent
        if r.name == ts.HOLD_TOOL and r.status == ToolCallStatus.OK:
            parts.append(f"hold ({str(r.arguments.get('reason', ''))[:200]})")
        else:
            parts.append(" ".join(x for x in (str(r.name)[:64], symbol, str(r.status)) if x))
    notes = {"round_limit": f"stopped at the tool-round limit ({state['max_rounds']})",
             "budget": "stopped: LLM budget exhausted"}
    if state["stop"] in notes:
        parts.append(notes[state["stop"]])
    text = "; ".join(parts)
    if error:
        text = f"{text}; {error}" if text else error
    if not text:
        text = state["final_text"] or "no action"
    return " ".join(f"{status}: {text}".split())[:300]


def _record(state: DecisionState, runtime: Runtime[_Deps]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        status, error = _status(state)
        summary = _summary(state, status, error)
    except Exception as exc:  # the record keeps everything that happened, whatever broke here
        log.exception("record: could not summarise the decision of agent %s", state["inp"].agent_id)
        status, error = DecisionStatus.ERROR, f"record: {_err(exc)}"
        summary = f"error: {error}"[:300]
    timings = dict(state["timings"])
    timings["record"] = round(timings.get("record", 0.0) + (time.perf_counter() - started) * 1000.0, 3)
    stopped = {"budget_first": "budget", "hold": ""}.get(state["stop"], state["stop"])
    output = DecisionOutput(
        status=str(status), summary=summary, error=error, messages=state["messages"],
        raw_replies=state["raw_replies"], tool_calls=state["records"],
        prompt_tokens=state["prompt_tokens"], completion_tokens=state["completion_tokens"],
        cost_usd=state["cost"], node_timings=timings, market_snapshot=state["market_snapshot"],
        context=state["context"], llm_calls=state["llm_calls"], rounds=state["rounds"],
        stopped_reason=stopped, model=state["model"],
    )
    return {"output": output, "timings": timings}


# --------------------------------------------------------------------------- wiring


def _after_gather(state: DecisionState) -> str:
    return "record" if state["stop"] else "decide"


def _after_decide(state: DecisionState) -> str:
    if state["stop"]:
        return "record"
    return "execute_tools" if state["pending"] else "record"


def _after_tools(state: DecisionState) -> str:
    return "record" if state["stop"] else "decide"


def build_graph():
    builder = StateGraph(DecisionState, context_schema=_Deps)
    builder.add_node("gather_context", _timed("gather_context", _gather_context))
    builder.add_node("decide", _timed("decide", _decide))
    builder.add_node("execute_tools", _timed("execute_tools", _execute_tools))
    builder.add_node("record", _record)  # times itself: its output carries the timings
    builder.add_edge(START, "gather_context")
    builder.add_conditional_edges("gather_context", _after_gather, ["decide", "record"])
    builder.add_conditional_edges("decide", _after_decide, ["execute_tools", "record"])
    builder.add_conditional_edges("execute_tools", _after_tools, ["decide", "record"])
    builder.add_edge("record", END)
    return builder.compile()


_compiled = None
_compile_lock = threading.Lock()


def get_graph():
    """The compiled graph, built once per process."""
    global _compiled
    if _compiled is None:
        with _compile_lock:
            if _compiled is None:
                _compiled = build_graph()
    return _compiled


def _default_pricing() -> Pricing | None:
    try:
        from agents.pricing import default_pricing

        return default_pricing()
    except Exception:  # a broken pricing file must not stop trading decisions
        log.exception("could not load the default LLM pricing table; costs count as 0")
        return None


def run_decision(inp: DecisionInput, *, provider: ContextProvider, executor: ToolExecutor, llm: LLMClient,
                 budget: BudgetGuard | None = None, pricing: Pricing | None = None,
                 recorder: DecisionRecorder | None = None) -> DecisionOutput:
    """Run one decision tick. Never raises: failures come back as ``status == "error"``.

    Status rules, first match wins:
      budget_exceeded  the budget refused the first model call (nothing was sent anywhere);
      error            an exception: context gathering, the model (after the client's retries),
                       cost accounting, or the executor crashing;
      executed         at least one write tool (open/close/cancel/set_leverage) returned ok;
      error            write tools reached the executor, none ok, some returned "error";
      rejected         write tools reached the executor and all were rejected by risk;
      held             no write tool reached the executor (hold, reads, a plain reply, or only
                       invalid calls, which never reach it).
    A budget refusal after the first call, or the tool-round bound, stops the loop and is
    noted in ``stopped_reason`` and the summary; the status still follows the rules above.

    ``inp.deadline`` bounds the run: no model call or order starts after it, and each model
    call gets the time left as its ``timeout``; reaching it ends the decision ``error``
    ("time limit of N s reached"). ``recorder`` persists each model reply's spend and each
    tool call as it happens (a call is executed only once its ``pending`` row is written),
    and its ``active()`` stops the run before the next model call or order when it says so.
    """
    started = time.perf_counter()
    try:
        if pricing is None:
            pricing = _default_pricing()
        if not inp.symbols:
            raise ValueError("the agent has no symbols")
        if inp.now.tzinfo is None:
            raise ValueError("DecisionInput.now must be timezone-aware")
        max_rounds = max(1, min(int(inp.max_tool_rounds), MAX_TOOL_ROUNDS_CAP))
        tools = ts.build_tools(inp.symbols, max(1, int(inp.max_leverage)))
        state: DecisionState = {
            "inp": inp, "max_rounds": max_rounds, "tools": tools,
            "prices": {}, "context": {}, "market_snapshot": {}, "messages": [], "raw_replies": [],
            "pending": [], "final_text": "", "records": [], "prompt_tokens": 0, "completion_tokens": 0,
            "cost": Decimal("0"), "llm_calls": 0, "rounds": 0, "model": "", "stop": "", "error": "",
            "timings": {}, "output": None,
        }
        deps = _Deps(provider=provider, executor=executor, llm=llm, budget=budget, pricing=pricing,
                     recorder=recorder)
        final = get_graph().invoke(state, {"recursion_limit": 2 * max_rounds + 8}, context=deps)
        output = final["output"]
        if output is None:
            raise RuntimeError("the graph ended without a record")
        return output
    except Exception as exc:
        log.exception("decision graph failed for agent %s", getattr(inp, "agent_id", "?"))
        error = f"graph: {_err(exc)}"
        return DecisionOutput(status=str(DecisionStatus.ERROR), summary=f"error: {error}"[:300], error=error,
                              node_timings={"total": round((time.perf_counter() - started) * 1000.0, 3)})
