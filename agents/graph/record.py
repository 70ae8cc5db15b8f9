"""The ``record`` node: the decision's status (see ``run_decision`` for the rules), its
one-line summary and the ``DecisionOutput`` that keeps everything that happened."""

from __future__ import annotations

import logging
import time
from typing import Any

from langgraph.runtime import Runtime

from agents.graph import toolspec as ts
from agents.graph.contracts import DecisionOutput, DecisionStatus, ToolCallStatus
from agents.graph.state import MAX_ERROR_CHARS, DecisionState, Deps, err

log = logging.getLogger(__name__)


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


def record_decision(state: DecisionState, runtime: Runtime[Deps]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        status, error = _status(state)
        summary = _summary(state, status, error)
    except Exception as exc:  # the record keeps everything that happened, whatever broke here
        log.exception("record: could not summarise the decision of agent %s", state["inp"].agent_id)
        status, error = DecisionStatus.ERROR, f"record: {err(exc)}"
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
