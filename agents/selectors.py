"""Reads about agents: decisions with filters, spend, and PnL attributed to an agent
(realized PnL of the fills of the orders its tool calls placed)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum

from agents.models import AgentConfig, Decision
from agents.services import llm_spend
from trading.models import Fill


def agents_for(*, user):
    return AgentConfig.objects.filter(owner=user).select_related("account").order_by("name")


def decisions(*, user, agent_id: int | None = None, status: str | None = None, since=None, until=None):
    qs = Decision.objects.filter(owner=user).select_related("agent")
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if status:
        qs = qs.filter(status=status)
    if since:
        qs = qs.filter(started_at__gte=since)
    if until:
        qs = qs.filter(started_at__lt=until)
    return qs.order_by("-started_at", "-id")


def decision_detail(*, user, pk: int) -> Decision:
    return (Decision.objects.filter(owner=user).select_related("agent")
            .prefetch_related("tool_calls__order", "tool_calls__risk_event").get(pk=pk))


def agent_pnl(*, agent: AgentConfig) -> dict[str, Decimal]:
    agg = Fill.objects.filter(order__tool_calls__decision__agent=agent).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee"))
    return {"realized": agg["realized"] or Decimal("0"), "fees": agg["fees"] or Decimal("0"),
            "llm_spend_month": llm_spend(user_id=agent.owner_id, agent_id=agent.pk)}


def last_decision(*, agent: AgentConfig) -> Decision | None:
    return Decision.objects.filter(agent=agent).order_by("-started_at").first()
