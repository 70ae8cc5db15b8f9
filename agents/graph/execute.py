"""The ``execute_tools`` node: each tool call of the round validated against its typed
arguments (``toolspec.validate_call``), its ``pending`` audit row written before the
executor sees it, then executed; invalid calls, calls over the per-round bound and calls
after a failure are answered to the model and never executed."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from langgraph.runtime import Runtime

from agents.graph import toolspec as ts
from agents.graph.contracts import ToolCallRecord, ToolCallRequest, ToolCallStatus
from agents.graph.state import MAX_CALLS_PER_ROUND, DecisionState, Deps, err, halt_reason, write_record

log = logging.getLogger(__name__)


def execute_tools(state: DecisionState, runtime: Runtime[Deps]) -> dict[str, Any]:
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
                halted = halt_reason(inp, deps)
                if not halted:
                    record.status = ToolCallStatus.PENDING
                    failed = write_record(deps, record, required=True)
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
                    stop, error = "error", f"tool {call.name} failed: {err(exc)}"
        record.duration_ms = int(round((time.perf_counter() - started) * 1000))
        write_record(deps, record)
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
