"""The Django-free decision core of the LLM trading agents.

``run_decision(inp, provider=..., executor=..., llm=...)`` runs the LangGraph graph
gather_context -> decide -> execute_tools (loop, bounded) -> record and returns a
``DecisionOutput`` that ``agents.services`` persists as Decision and ToolCall rows.
The Django side implements the ports: ``ContextProvider``, ``ToolExecutor``,
``BudgetGuard``; ``agents.llm`` provides ``LLMClient`` implementations.
"""

from agents.graph.contracts import (
    AccountSnapshot,
    BudgetExceeded,
    BudgetGuard,
    CandleLike,
    ContextProvider,
    DecisionInput,
    DecisionOutput,
    DecisionRecorder,
    DecisionStatus,
    Indicators,
    LLMClient,
    LLMReply,
    LLMToolCall,
    MarketSnapshot,
    OpenOrderInfo,
    PositionInfo,
    Pricing,
    ToolCallRecord,
    ToolCallRequest,
    ToolCallStatus,
    ToolExecutor,
    ToolOutcome,
)
from agents.graph.graph import get_graph, run_decision
from agents.graph.toolspec import ORDER_TOOLS, READ_TOOLS, TOOL_NAMES, WRITE_TOOLS, build_tools

__all__ = [
    "AccountSnapshot", "BudgetExceeded", "BudgetGuard", "CandleLike", "ContextProvider", "DecisionInput",
    "DecisionOutput", "DecisionRecorder", "DecisionStatus", "Indicators", "LLMClient", "LLMReply", "LLMToolCall", "MarketSnapshot",
    "OpenOrderInfo", "ORDER_TOOLS", "PositionInfo", "Pricing", "READ_TOOLS", "TOOL_NAMES", "ToolCallRecord",
    "ToolCallRequest", "ToolCallStatus", "ToolExecutor", "ToolOutcome", "WRITE_TOOLS", "build_tools",
    "get_graph", "run_decision",
]
