"""LLM spend: what a user spent this month, and the monthly budget the graph checks."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from agents.graph.contracts import BudgetExceeded
from agents.models import AgentConfig, Decision
from agents.services.audit import safe_money
from risk.models import RiskEvent, RiskProfile
from risk.services import risk_event_record

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- spend
def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def llm_spend(*, user_id: int, agent_id: int | None = None, since: datetime | None = None) -> Decimal:
    qs = Decimal("0")
    rows = Decision.objects.filter(owner_id=user_id, started_at__gte=since or month_start())
    if agent_id is not None:
        rows = rows.filter(agent_id=agent_id)
    return rows.aggregate(s=Sum("cost_usd"))["s"] or qs


class MonthlyBudget:
    """BudgetGuard: the user's monthly LLM spend cap, checked before each model call. A
    refusal is a RiskEvent (kind ``budget``) with the figures, written once per decision."""

    def __init__(self, user_id: int, *, agent: AgentConfig | None = None, decision: Decision | None = None) -> None:
        self.user_id = user_id
        self.agent, self.decision = agent, decision
        self.cap = RiskProfile.objects.get(user_id=user_id).monthly_llm_budget_usd
        self.spent = llm_spend(user_id=user_id)
        self.event: RiskEvent | None = None

    def check(self) -> None:
        if self.spent >= self.cap:
            message = f"monthly LLM budget of {self.cap} USD is spent ({self.spent} USD)"
            if self.event is None:
                self._record(message)
            raise BudgetExceeded(message)

    def _record(self, message: str) -> None:
        try:
            with transaction.atomic():
                owner = self.agent.owner if self.agent is not None else RiskProfile.objects.get(
                    user_id=self.user_id).user
                self.event = risk_event_record(
                    user=owner, allowed=False, rule="monthly_llm_budget", message=message,
                    kind=RiskEvent.Kind.BUDGET, actor=f"agent:{self.agent.pk}" if self.agent else "system",
                    details={"cap_usd": str(self.cap), "spent_usd": str(self.spent),
                             "month_start": month_start().isoformat(),
                             "agent_id": getattr(self.agent, "pk", None),
                             "decision_id": getattr(self.decision, "pk", None)})
        except Exception:  # the refusal stands even if its event cannot be written
            logger.exception("could not record the budget stop of user %s", self.user_id)

    def add(self, cost: Decimal) -> None:
        self.spent += safe_money(cost)
