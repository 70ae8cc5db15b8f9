"""The ``decide`` node: one model call (after the time limit, the lock and the budget
allow it), its reply's tool calls and text clipped, its token counts checked (an estimate
where they are not sane), its cost accounted and its spend written before anything acts
on it."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from agents.graph import tokens as tk
from agents.graph import toolspec as ts
from agents.graph.contracts import BudgetExceeded, LLMToolCall
from agents.graph.state import MAX_ERROR_CHARS, DecisionState, Deps, err, halt_reason, limit_text, time_left

log = logging.getLogger(__name__)


def decide(state: DecisionState, runtime: Runtime[Deps]) -> dict[str, Any]:
    deps, inp = runtime.context, state["inp"]
    halted = halt_reason(inp, deps)
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
            return {"stop": "error", "pending": [], "error": f"budget check: {err(exc)}"}
    messages = state["messages"]
    try:
        reply = deps.llm.complete(messages, state["tools"], timeout=time_left(inp))
    except Exception as exc:  # LLMError after the client's retries, or anything else
        log.warning("model call failed for agent %s: %s", inp.agent_id, err(exc))
        left = time_left(inp)
        error = f"model call failed: {err(exc)}"
        if left is not None and left <= 0.25:  # the deadline cut it short
            error = f"{limit_text(inp)} (waiting for the model: {err(exc)})"[:MAX_ERROR_CHARS]
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
        update.update(stop="error", pending=[], error=f"cost accounting: {err(exc)}")
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


def _write_spend(deps: Deps, reply: Any, prompt_tokens: int, completion_tokens: int, cost: Decimal) -> str:
    if deps.recorder is None:
        return ""
    try:
        deps.recorder.llm_reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost,
                                model=str(getattr(reply, "model", "") or ""), llm_calls=1)
        return ""
    except Exception as exc:
        log.error("could not record a model reply's spend: %s", err(exc))
        return err(exc)
