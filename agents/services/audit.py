"""The audit as it happens: each model reply's spend and each tool call written when they
happen (the graph's ``DecisionRecorder`` port), with values made safe for their columns."""

from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction

from agents.models import Decision, ToolCall
from alpha_platform.common.money import ZERO, to_decimal
from alpha_platform.common.safe_json import clean_text, json_safe

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- storage-safe values
INT_COLUMN_MAX = 2_147_483_647  # PositiveIntegerField on PostgreSQL
SMALL_COLUMN_MAX = 32_767  # PositiveSmallIntegerField
COST_MAX = Decimal("1e9")


def _count(value: Any, top: int = INT_COLUMN_MAX) -> int:
    """A count clamped into its column (0..top); anything that is not a number counts 0."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(number, top))


def safe_money(value: Any) -> Decimal:
    """A cost clamped into ``cost_usd`` (finite, >= 0, 12 places); anything else counts 0."""
    amount = to_decimal(value, invalid=ZERO)
    if amount < 0:
        return ZERO
    return min(amount, COST_MAX).quantize(Decimal("1e-12"), rounding=ROUND_DOWN)


def _tool_call_fields(record: Any) -> dict[str, Any]:
    status = str(record.status)
    arguments = json_safe(record.arguments if isinstance(record.arguments, dict) else {"value": record.arguments})
    result = json_safe(record.result if isinstance(record.result, dict) else {"value": record.result})
    return dict(round=_count(record.round, SMALL_COLUMN_MAX), call_id=clean_text(str(record.call_id or ""), 100)[:100],
                name=clean_text(str(record.name or ""), 64)[:64], arguments=arguments,
                raw_arguments=clean_text(str(record.raw_arguments or ""), 10_000),
                status=status if status in ToolCall.Status.values else ToolCall.Status.ERROR, result=result,
                order_id=record.order_id if isinstance(record.order_id, int) else None,
                risk_event_id=record.risk_event_id if isinstance(record.risk_event_id, int) else None,
                duration_ms=_count(record.duration_ms))


# --------------------------------------------------------------------------- the audit as it happens
class DecisionAudit:
    """The graph's ``DecisionRecorder``: every model reply's spend and every tool call are
    written to the database at once (each in its own transaction), so an order never
    exists without its Decision and ToolCall, and the budget sees every call paid for,
    whatever fails later. Saves of the decision's status are conditional on it still being
    RUNNING: a decision the sweep (or a redelivered tick) closed is never rewritten."""

    def __init__(self, decision: Decision, *, lease: Any = None) -> None:
        self.decision = decision
        self.lease = lease
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = ZERO
        self.llm_calls = 0

    # -- DecisionRecorder
    def llm_reply(self, *, prompt_tokens: int, completion_tokens: int, cost: Decimal, model: str,
                  llm_calls: int = 1) -> None:
        self.prompt_tokens = _count(self.prompt_tokens + _count(prompt_tokens))
        self.completion_tokens = _count(self.completion_tokens + _count(completion_tokens))
        self.cost = safe_money(self.cost + safe_money(cost))
        self.llm_calls += _count(llm_calls)
        # The spend is a fact: written even on a decision closed meanwhile (the budget sums it).
        with transaction.atomic():
            Decision.objects.filter(pk=self.decision.pk).update(
                prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, cost_usd=self.cost)

    def tool_call(self, record: Any) -> None:
        with transaction.atomic():
            ToolCall.objects.update_or_create(decision_id=self.decision.pk,
                                              index=_count(record.index, SMALL_COLUMN_MAX),
                                              defaults=_tool_call_fields(record))

    def active(self) -> str:
        if self.lease is not None and not self.lease.held():
            return "the agent's lock was lost (another worker may run it): stopped"
        if not Decision.objects.filter(pk=self.decision.pk, status=Decision.Status.RUNNING).exists():
            return "the decision was closed meanwhile (time limit or abandoned): stopped"
        return ""

    # -- the Django side's own hooks
    def order_placed(self, *, index: int, order_id: int, risk_event_id: int | None) -> None:
        """Right after ``order_submit`` returns: the tool call's row points at its order."""
        try:
            with transaction.atomic():
                ToolCall.objects.filter(decision_id=self.decision.pk, index=index).update(
                    order_id=order_id, risk_event_id=risk_event_id)
        except Exception:  # the final record links it again
            logger.exception("could not link order %s to tool call %s of decision %s", order_id, index,
                             self.decision.pk)

    def update_running(self, **fields: Any) -> bool:
        """A conditional save: only while the decision is still RUNNING."""
        with transaction.atomic():
            return Decision.objects.filter(pk=self.decision.pk, status=Decision.Status.RUNNING).update(**fields) == 1
