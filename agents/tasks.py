"""The agent tick: one service call (``agent_tick_run``: the tick id, the per-agent lock, the decision).

A tick that finds the previous one still running is recorded as skipped, not queued; so is
a tick that waited in the queue past its expiry (one interval: the next tick supersedes
it), so every tick beat sent leaves a Decision row.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_revoked
from django.conf import settings
from django.db import close_old_connections

from agents.models import AgentConfig, Decision
from agents.services import agent_tick_run, decision_close_overdue, decision_skip, decisions_close_abandoned

logger = logging.getLogger(__name__)


@shared_task(name="agents.tick", bind=True, ignore_result=True,
             # Only the prefork pool honours these; the decision enforces AGENT_TICK_TIME_LIMIT
             # itself under every pool, so they are a backstop that fires after it.
             soft_time_limit=settings.AGENT_TICK_TIME_LIMIT + 20, time_limit=settings.AGENT_TICK_TIME_LIMIT + 40)
def agent_tick_task(self, agent_id: int, trigger: str = Decision.Trigger.SCHEDULE) -> int | None:
    started = time.monotonic()
    try:
        return agent_tick_run(agent_id=agent_id, trigger=trigger, tick_id=self.request.id, started=started)
    except SoftTimeLimitExceeded:
        logger.error("agent %s tick exceeded its time limit", agent_id)
        for decision in Decision.objects.filter(agent_id=agent_id, tick_id=self.request.id,
                                                status=Decision.Status.RUNNING):
            decision_close_overdue(decision=decision, reason="The tick exceeded its time limit.")
        return None


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
            decision_skip(agent=agent, trigger=trigger, tick_id=getattr(request, "id", None),
                          reason="The tick expired in the queue: the workers were behind by a whole interval.")
    except Exception:  # the consumer thread runs this receiver: never let it stop consuming
        logger.exception("could not record the expired tick of agent %s", agent_id)
    logger.warning("agent %s tick expired in the queue (workers behind)", agent_id)
