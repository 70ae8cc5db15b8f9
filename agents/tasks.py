"""The agent tick: load by id, take the per-agent lock in Redis, call one service.

A tick that finds the previous one still running is recorded as skipped, not queued.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache

from agents.models import AgentConfig, Decision
from agents.services import agent_decision_run, decision_skip

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
