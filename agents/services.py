"""Writes for agents: lifecycle, schedule sync with django-celery-beat, and one decision run.

The schedule is never edited by hand: every change of an agent goes through these
functions, which keep its PeriodicTask (``agent-<id>``) in line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agents.context import AgentContext, AgentToolExecutor
from agents.graph import run_decision
from agents.graph.contracts import BudgetExceeded, DecisionInput
from agents.llm import make_llm
from agents.models import AgentConfig, Decision, LLMCredential, ToolCall
from agents.pricing import load_pricing
from alpha_platform.common import crypto
from alpha_platform.common.errors import ApplicationError, CredentialsError
from alpha_platform.common.realtime import send_to_user_on_commit
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskProfile
from risk.services import user_halt_active

logger = logging.getLogger(__name__)
TICK_TASK = "agents.tick"
EDITABLE = {"name", "symbols", "interval_seconds", "model_name", "instructions", "max_leverage", "max_tool_rounds",
            "account"}


# --------------------------------------------------------------------------- schedule
def agent_schedule_sync(*, agent: AgentConfig) -> PeriodicTask:
    """Create or update the agent's PeriodicTask: its interval, and enabled only while
    the agent is active. A tick not picked up within one interval expires (dropped, not
    queued behind the next)."""
    schedule, _ = IntervalSchedule.objects.get_or_create(every=agent.interval_seconds,
                                                         period=IntervalSchedule.SECONDS)
    task, _ = PeriodicTask.objects.update_or_create(
        name=agent.periodic_task_name,
        defaults=dict(interval=schedule, task=TICK_TASK, args=json.dumps([agent.pk]), kwargs="{}",
                      enabled=agent.status == AgentConfig.Status.ACTIVE, expire_seconds=agent.interval_seconds,
                      description=f"Decision tick of agent {agent.pk} ({agent.name})"),
    )
    return task


def _agent_event(agent: AgentConfig) -> None:
    send_to_user_on_commit(agent.owner_id, {"type": "agent", "agent": {
        "id": agent.pk, "name": agent.name, "status": agent.status, "status_reason": agent.status_reason,
        "last_run_at": agent.last_run_at}})


# --------------------------------------------------------------------------- lifecycle
@transaction.atomic
def agent_create(*, owner: AbstractBaseUser, account: ExchangeAccount, name: str, symbols: list[str],
                 interval_seconds: int = 60, model_name: str = "builtin:trend", instructions: str = "",
                 **extra: Any) -> AgentConfig:
    agent = AgentConfig(owner=owner, account=account, name=(name or "").strip(), symbols=symbols,
                        interval_seconds=interval_seconds, model_name=model_name,
                        instructions=instructions, **extra)
    agent.full_clean()
    agent.save()
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_update(*, agent: AgentConfig, **changes: Any) -> AgentConfig:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(agent, name, value)
    agent.full_clean()
    agent.save()
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_pause(*, agent: AgentConfig, reason: str = "paused by the user") -> AgentConfig:
    agent.status = AgentConfig.Status.PAUSED
    agent.status_reason = reason[:200]
    agent.save(update_fields=["status", "status_reason", "updated_at"])
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_resume(*, agent: AgentConfig) -> AgentConfig:
    if user_halt_active(agent.owner_id):
        raise ApplicationError("The kill switch is on: lift it before resuming agents.")
    agent.status = AgentConfig.Status.ACTIVE
    agent.status_reason = ""
    agent.save(update_fields=["status", "status_reason", "updated_at"])
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_delete(*, agent: AgentConfig) -> None:
    PeriodicTask.objects.filter(name=agent.periodic_task_name).delete()
    agent.delete()


@transaction.atomic
def agents_halt_for_user(*, user_id: int, reason: str) -> int:
    """The kill switch: every agent of the user stops until resumed by hand."""
    agents = list(AgentConfig.objects.select_for_update().filter(owner_id=user_id).exclude(
        status=AgentConfig.Status.HALTED))
    for agent in agents:
        agent.status = AgentConfig.Status.HALTED
        agent.status_reason = reason[:200]
        agent.save(update_fields=["status", "status_reason", "updated_at"])
        agent_schedule_sync(agent=agent)
        _agent_event(agent)
    return len(agents)


@transaction.atomic
def llm_credential_set(*, owner: AbstractBaseUser, api_key: str, base_url: str = "") -> LLMCredential:
    api_key = (api_key or "").strip()
    if len(api_key) < 8:
        raise ValidationError({"api_key": "The API key looks too short."})
    base_url = (base_url or "").strip()
    if base_url:  # checked again before every call (the host may resolve elsewhere later)
        from alpha_platform.common import outbound

        try:
            outbound.check_url(base_url, allowed=outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS,
                                                                        settings.OPENAI_BASE_URL))
        except outbound.OutboundRefused as exc:
            raise ValidationError({"base_url": f"This model server URL is not allowed: {exc}"}) from None
    credential, _ = LLMCredential.objects.get_or_create(owner=owner)
    credential.api_key_encrypted = crypto.encrypt_json({"api_key": api_key})
    credential.api_key_hint = f"…{api_key[-4:]}"
    credential.base_url = base_url
    credential.full_clean()
    credential.save()
    return credential


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
    """BudgetGuard: the user's monthly LLM spend cap, checked before each model call."""

    def __init__(self, user_id: int) -> None:
        self.cap = RiskProfile.objects.get(user_id=user_id).monthly_llm_budget_usd
        self.spent = llm_spend(user_id=user_id)

    def check(self) -> None:
        if self.spent >= self.cap:
            raise BudgetExceeded(f"monthly LLM budget of {self.cap} USD is spent ({self.spent} USD)")

    def add(self, cost: Decimal) -> None:
        self.spent += cost


# --------------------------------------------------------------------------- one decision
_http = {"client": None, "pid": 0}
_http_lock = threading.Lock()


def _shared_http_client() -> Any:
    """One HTTP connection pool per worker process for every OpenAI-compatible call: building
    an ``openai`` client with its own pool (and TLS context) cost ~45 ms of CPU per decision.
    httpx clients are thread-safe; a forked child builds its own."""
    with _http_lock:
        if _http["client"] is None or _http["pid"] != os.getpid():
            from alpha_platform.common import outbound

            # The SSRF guard, read from the settings on every request: https on public
            # addresses, or a host the operator allows (LLM_ALLOWED_HOSTS, OPENAI_BASE_URL);
            # checked at connect time, no redirects followed, the reply's size bounded.
            policy = outbound.OutboundPolicy(
                lambda: outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS, settings.OPENAI_BASE_URL))
            _http["client"] = outbound.guarded_http_client(policy, max_response_bytes=settings.LLM_MAX_RESPONSE_BYTES)
            _http["pid"] = os.getpid()
        return _http["client"]


def _llm_for(agent: AgentConfig) -> tuple[Any, str]:
    """The model client, and the model name actually used (the built-in one when no key
    or server is configured for an OpenAI model name)."""
    if agent.is_builtin_model:
        return make_llm(agent.model_name), agent.model_name
    api_key, base_url = settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
    own = LLMCredential.objects.filter(owner_id=agent.owner_id).first()
    if own is not None and own.api_key_encrypted:
        api_key = own.credentials()["api_key"]
        if own.base_url:  # a user's URL: checked now (and by the HTTP client at connect time)
            from alpha_platform.common import outbound

            outbound.check_url(own.base_url, allowed=outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS,
                                                                            settings.OPENAI_BASE_URL))
        base_url = own.base_url or base_url
    if not api_key and not base_url:
        return make_llm("builtin:trend"), "builtin:trend"
    return make_llm(agent.model_name, api_key or "not-needed", base_url or None,
                    timeout=settings.LLM_TIMEOUT_SECONDS, max_retries=settings.LLM_MAX_RETRIES,
                    http_client=_shared_http_client(),
                    max_completion_tokens=settings.LLM_MAX_COMPLETION_TOKENS), agent.model_name


_pricing = None


def _pricing_table():
    global _pricing
    if _pricing is None:
        _pricing = load_pricing(settings.ALPHA_CONFIG_DIR / "llm_pricing.yaml")
    return _pricing


def decision_skip(*, agent: AgentConfig, reason: str, trigger: str = Decision.Trigger.SCHEDULE) -> Decision:
    now = timezone.now()
    with transaction.atomic():
        decision = Decision.objects.create(agent=agent, owner_id=agent.owner_id, status=Decision.Status.SKIPPED,
                                           trigger=trigger, model_name=agent.model_name, started_at=now,
                                           finished_at=now, summary=reason[:500])
        _decision_event(decision)
    return decision


def _decision_event(decision: Decision) -> None:
    send_to_user_on_commit(decision.owner_id, {"type": "decision", "decision": {
        "id": decision.pk, "agent_id": decision.agent_id, "status": decision.status, "summary": decision.summary,
        "started_at": decision.started_at, "finished_at": decision.finished_at, "cost_usd": decision.cost_usd,
        "prompt_tokens": decision.prompt_tokens, "completion_tokens": decision.completion_tokens}})


def agent_decision_run(*, agent: AgentConfig, trigger: str = Decision.Trigger.SCHEDULE) -> Decision:
    """Run one decision tick for the agent and record it completely."""
    if user_halt_active(agent.owner_id):
        return decision_skip(agent=agent, reason="The kill switch is on: no decision was made.", trigger=trigger)
    started = timezone.now()
    decision = Decision.objects.create(agent=agent, owner_id=agent.owner_id, status=Decision.Status.RUNNING,
                                       trigger=trigger, model_name=agent.model_name, started_at=started)
    t0 = time.perf_counter()
    try:
        trader = trader_for_account(agent.account)
    except CredentialsError as exc:
        return _finish_error(decision, exc.message)
    try:
        llm, model_used = _llm_for(agent)
        inp = DecisionInput(agent_id=agent.pk, model_name=model_used, instructions=agent.instructions,
                            symbols=tuple(agent.symbols), max_tool_rounds=agent.max_tool_rounds,
                            max_leverage=min(agent.max_leverage,
                                             RiskProfile.objects.get(user_id=agent.owner_id).max_leverage),
                            now=started)
        output = run_decision(inp, provider=AgentContext(agent, trader),
                              executor=AgentToolExecutor(agent, decision, trader), llm=llm,
                              budget=MonthlyBudget(agent.owner_id), pricing=_pricing_table())
    except Exception as exc:  # run_decision never raises; this guards the wiring around it
        logger.exception("agent %s decision %s failed", agent.pk, decision.pk)
        return _finish_error(decision, f"{type(exc).__name__}: {exc}")
    finally:
        trader.close()
    with transaction.atomic():
        decision.status = output.status
        decision.model_name = model_used
        decision.finished_at = timezone.now()
        decision.market_snapshot = output.market_snapshot
        decision.context = output.context
        decision.messages = output.messages
        decision.raw_reply = output.raw_replies
        decision.summary = output.summary[:2000]
        decision.error = output.error[:4000]
        decision.prompt_tokens = output.prompt_tokens
        decision.completion_tokens = output.completion_tokens
        decision.cost_usd = output.cost_usd
        decision.node_timings = {**output.node_timings, "total": round((time.perf_counter() - t0) * 1000, 1)}
        decision.save()
        ToolCall.objects.bulk_create([
            ToolCall(decision=decision, index=c.index, round=c.round, call_id=c.call_id[:100], name=c.name[:64],
                     arguments=c.arguments, raw_arguments=c.raw_arguments[:10000], status=c.status, result=c.result,
                     order_id=c.order_id, risk_event_id=c.risk_event_id, duration_ms=c.duration_ms)
            for c in output.tool_calls])
        AgentConfig.objects.filter(pk=agent.pk).update(last_run_at=decision.finished_at)
        _decision_event(decision)
    logger.info("decision %s agent=%s status=%s tokens=%s/%s cost=%s", decision.pk, agent.pk, decision.status,
                decision.prompt_tokens, decision.completion_tokens, decision.cost_usd,
                extra={"decision": {"decision_id": decision.pk, "agent_id": agent.pk, "status": decision.status,
                                    "prompt_tokens": decision.prompt_tokens,
                                    "completion_tokens": decision.completion_tokens,
                                    "cost_usd": str(decision.cost_usd),
                                    "orders": [c.order_id for c in output.tool_calls if c.order_id]}})
    return decision


ABANDONED_ERROR = ("The worker running this decision stopped before it finished (killed or crashed). "
                   "Orders it placed are kept and settled by reconciliation.")


def decisions_close_abandoned(*, now: datetime | None = None) -> int:
    """Close decisions left RUNNING by a worker that died (SIGKILL, out of memory, a lost
    machine): past the tick's hard time limit no worker can still be running them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.AGENT_TICK_TIME_LIMIT + 60)
    closed = 0
    for decision in Decision.objects.filter(status=Decision.Status.RUNNING, started_at__lt=cutoff):
        with transaction.atomic():
            updated = Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=ABANDONED_ERROR, summary=f"error: {ABANDONED_ERROR[:200]}",
                finished_at=now)
            if updated:
                decision.refresh_from_db()
                _decision_event(decision)
                closed += 1
    if closed:
        logger.warning("closed %s decision(s) abandoned by a stopped worker", closed)
    return closed


def _finish_error(decision: Decision, error: str) -> Decision:
    with transaction.atomic():
        decision.status = Decision.Status.ERROR
        decision.error = error[:4000]
        decision.summary = f"error: {error[:200]}"
        decision.finished_at = timezone.now()
        decision.save()
        _decision_event(decision)
    return decision
