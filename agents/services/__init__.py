"""Writes for agents, one module a job:

- ``lifecycle``: create, update, pause, resume, delete, halt; the schedule in
  django-celery-beat; a user's own model key.
- ``spend``: this month's LLM spend and the monthly budget.
- ``audit``: each model reply's spend and each tool call recorded as they happen.
- ``lock``: the per-agent Redis lock, renewed while a decision runs.
- ``decision``: one tick and one decision, its final record, the abandoned-decision sweep.
"""

from agents.services.audit import DecisionAudit
from agents.services.decision import (
    ABANDONED_ERROR,
    REDELIVERED_ERROR,
    _llm_for,
    _pricing_table,
    _shared_http_client,
    agent_decision_run,
    agent_tick_run,
    decision_close_overdue,
    decision_close_skipped,
    decision_skip,
    decision_tool_calls_link,
    decisions_close_abandoned,
)
from agents.services.lifecycle import (
    EDITABLE,
    TICK_TASK,
    agent_create,
    agent_delete,
    agent_pause,
    agent_resume,
    agent_schedule_sync,
    agent_update,
    agents_halt_for_user,
    llm_base_url_check,
    llm_credential_set,
)
from agents.services.lock import AgentLock, agent_lock_key
from agents.services.spend import MonthlyBudget, llm_spend, month_start

__all__ = [
    "ABANDONED_ERROR", "EDITABLE", "REDELIVERED_ERROR", "TICK_TASK", "AgentLock", "DecisionAudit", "MonthlyBudget",
    "_llm_for", "_pricing_table", "_shared_http_client", "agent_create", "agent_decision_run", "agent_delete",
    "agent_lock_key", "agent_pause", "agent_resume", "agent_schedule_sync", "agent_tick_run", "agent_update",
    "agents_halt_for_user", "decision_close_overdue", "decision_close_skipped", "decision_skip",
    "decision_tool_calls_link", "decisions_close_abandoned", "llm_base_url_check", "llm_credential_set",
    "llm_spend", "month_start",
]
