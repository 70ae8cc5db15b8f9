"""The agent tick: load by id, take the per-agent lock in Redis, call one service.

A tick that finds the previous one still running is recorded as skipped, not queued; so is
a tick that waited in the queue past its expiry (one interval: the next tick supersedes
it), so every tick beat sent leaves a Decision row.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_revoked
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

from agents.models import AgentConfig, Decision
from agents.services import agent_decision_run, decision_skip, decisions_close_abandoned

logger = logging.getLogger(__name__)


def _lock_key(agent_id: int) -> str:
    return f"lock:agent:{agent_id}"


@shared_task(name="agents.tick", ignore_result=True, soft_time_limit=settings.AGENT_TICK_TIME_LIMIT,
             time_limit=settings.AGENT_TICK_TIME_LIMIT + 15)
def agent_tick_task(agent_id: int, trigger: str = Decision.Trigger.SCHEDULE) -> int | None:
    agent = AgentConfig.objects.select_related("account", "owner").filter(pk=agent_id).first()
    if agent is None:
        return None
    if trigger == Decision.Trigger.SCHEDULE and agent.status != AgentConfig.Status.ACTIVE:
        return None  # paused between the schedule firing and this tick running
    # The lock outlives a hard time limit, so a killed tick cannot block the agent forever.
    if not cache.add(_lock_key(agent_id), "1", timeout=settings.AGENT_TICK_TIME_LIMIT + 30):
        return decision_skip(agent=agent, reason="The previous tick is still running.", trigger=trigger).pk
    try:
        return agent_decision_run(agent=agent, trigger=trigger).pk
    except SoftTimeLimitExceeded:
        logger.error("agent %s tick exceeded its time limit", agent_id)
        Decision.objects.filter(agent_id=agent_id, status=Decision.Status.RUNNING).update(
            status=Decision.Status.ERROR, error="The tick exceeded its time limit.")
        return None
    finally:
        cache.delete(_lock_key(agent_id))


@shared_task(name="agents.close_abandoned_decisions", ignore_result=True)
def close_abandoned_decisions_task() -> int:
    return decisions_close_abandoned()


@task_revoked.connect(dispatch_uid="agents_tick_expired")
def _record_expired_tick(sender=None, request=None, expired=False, **kwargs) -> None:
    """The worker dropped a tick that expired in the queue (it was behind by an interval):
    record it as skipped, so the agent's history shows the gap and its cause."""
    if not expired or getattr(sender, "name", None) != "agents.tick" or request is None:
        return
    args, task_kwargs = list(request.args or ()), dict(request.kwargs or {})
    agent_id = task_kwargs.get("agent_id", args[0] if args else None)
    trigger = task_kwargs.get("trigger", args[1] if len(args) > 1 else Decision.Trigger.SCHEDULE)
    try:
        # The worker's consumer thread runs this, outside any task: drop a connection that a
        # database restart broke or that outlived CONN_MAX_AGE, as Celery does around tasks.
        close_old_connections()
        agent = AgentConfig.objects.filter(pk=agent_id).first()
        if agent is not None:
            decision_skip(agent=agent, trigger=trigger,
                          reason="The tick expired in the queue: the workers were behind by a whole interval.")
    except Exception:  # the consumer thread runs this receiver: never let it stop consuming
        logger.exception("could not record the expired tick of agent %s", agent_id)
    logger.warning("agent %s tick expired in the queue (workers behind)", agent_id)
