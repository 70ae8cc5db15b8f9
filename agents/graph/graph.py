"""The decision graph (LangGraph ``StateGraph``) and its entry point ``run_decision``.

    START -> gather_context -> decide --(tool calls)--> execute_tools --(rounds left)--> decide
                                  |                          |
                                  +--(reply / stop)----------+--(bound, hold, error)--> record -> END

The graph is compiled once per process; everything run-specific (provider, executor,
model, budget, pricing) travels as LangGraph's run-scoped ``context`` (``Runtime``), so
concurrent decisions share the compiled graph safely. Nodes never raise: each catches its
own failures into ``state["error"]`` and routes to ``record``, so the audit keeps whatever
happened before the failure (an order placed in round 0 stays recorded when round 1 fails).

One module per job: ``state`` (the state, the run's dependencies, the shared checks),
``gather``, ``decide``, ``execute`` and ``record`` (the nodes), this one (the wiring and
the entry point).
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

from langgraph.graph import END, START, StateGraph

from agents.graph import toolspec as ts
from agents.graph.contracts import (
    BudgetGuard,
    ContextProvider,
    DecisionInput,
    DecisionOutput,
    DecisionRecorder,
    DecisionStatus,
    LLMClient,
    Pricing,
    ToolExecutor,
)
from agents.graph.decide import decide
from agents.graph.execute import execute_tools
from agents.graph.gather import gather_context
from agents.graph.record import record_decision
from agents.graph.state import MAX_TOOL_ROUNDS_CAP, DecisionState, Deps, err, timed

log = logging.getLogger(__name__)


def _after_gather(state: DecisionState) -> str:
    return "record" if state["stop"] else "decide"


def _after_decide(state: DecisionState) -> str:
    if state["stop"]:
        return "record"
    return "execute_tools" if state["pending"] else "record"


def _after_tools(state: DecisionState) -> str:
    return "record" if state["stop"] else "decide"


def build_graph():
    builder = StateGraph(DecisionState, context_schema=Deps)
    builder.add_node("gather_context", timed("gather_context", gather_context))
    builder.add_node("decide", timed("decide", decide))
    builder.add_node("execute_tools", timed("execute_tools", execute_tools))
    builder.add_node("record", record_decision)  # times itself: its output carries the timings
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
        deps = Deps(provider=provider, executor=executor, llm=llm, budget=budget, pricing=pricing,
                     recorder=recorder)
        final = get_graph().invoke(state, {"recursion_limit": 2 * max_rounds + 8}, context=deps)
        output = final["output"]
        if output is None:
            raise RuntimeError("the graph ended without a record")
        return output
    except Exception as exc:
        log.exception("decision graph failed for agent %s", getattr(inp, "agent_id", "?"))
        error = f"graph: {err(exc)}"
        return DecisionOutput(status=str(DecisionStatus.ERROR), summary=f"error: {error}"[:300], error=error,
                              node_timings={"total": round((time.perf_counter() - started) * 1000.0, 3)})
