"""Agents' lifecycle and their schedule in django-celery-beat, and a user's own model key.

The schedule is never edited by hand: every change of an agent goes through these
functions, which keep its PeriodicTask (``agent-<id>``) in line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from agents.models import AgentConfig, LLMCredential
from alpha_platform.common import crypto, outbound
from alpha_platform.common.errors import ApplicationError
from alpha_platform.common.realtime import send_to_user_on_commit
from exchanges.models import ExchangeAccount
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


def llm_outbound_policy() -> outbound.OutboundPolicy:
    """Where model calls may go: https on public addresses, or a host the operator allows
    (LLM_ALLOWED_HOSTS, and OPENAI_BASE_URL's own), read from the settings on every check."""
    return outbound.OutboundPolicy(lambda: outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS,
                                                                  settings.OPENAI_BASE_URL))


def llm_base_url_check(base_url: str) -> str:
    """A user's own model server URL, stripped, or a ValidationError saying why it is refused
    (every door that saves one calls this; it is checked again before every call, since the
    host may resolve elsewhere later)."""
    base_url = (base_url or "").strip()
    if base_url:
        try:
            llm_outbound_policy().check_url(base_url)
        except outbound.OutboundRefused as exc:
            raise ValidationError({"base_url": f"This model server URL is not allowed: {exc}"}) from None
    return base_url


def llm_credential_set(*, owner: AbstractBaseUser, api_key: str, base_url: str = "") -> LLMCredential:
    api_key = (api_key or "").strip()
    if len(api_key) < 8:
        raise ValidationError({"api_key": "The API key looks too short."})
    base_url = llm_base_url_check(base_url)  # resolves the host: outside the transaction (no lock held)
    with transaction.atomic():
        credential, _ = LLMCredential.objects.get_or_create(owner=owner)
        credential.api_key_encrypted = crypto.encrypt_json({"api_key": api_key})
        credential.api_key_hint = f"…{api_key[-4:]}"
        credential.base_url = base_url
        credential.full_clean()
        credential.save()
    return credential
