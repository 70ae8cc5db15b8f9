"""Celery tasks: thin callers that load by id, take a lock and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache
from redis.exceptions import LockError, RedisError

from exchanges.models import ExchangeAccount
from trading.services import account_reconcile, daily_loss_watch
from trading.services.kill_switch import (
    kill_switch_flatten,
    kill_switch_flatten_requeue,
)

logger = logging.getLogger(__name__)


@shared_task(name="trading.reconcile_all", ignore_result=True)
def reconcile_all_task() -> int:
    """Fan out one reconciliation (and balance snapshot) per active account."""
    ids = list(ExchangeAccount.objects.exclude(status=ExchangeAccount.Status.DISABLED).values_list("pk", flat=True))
    for account_id in ids:
        account_reconcile_task.delay(account_id)
    # The later pass that finishes a kill switch's flattening left by a killed worker (or
    # never queued: the broker was down at the trip).
    kill_switch_flatten_requeue(queued_for_seconds=FLATTEN_QUEUED_STALL_SECONDS,
                                running_still_seconds=FLATTEN_RUNNING_STALL_SECONDS)
    return len(ids)


@shared_task(name="trading.account_reconcile", ignore_result=True, soft_time_limit=120, time_limit=150)
def account_reconcile_task(account_id: int) -> dict | None:
    lock = f"lock:reconcile:{account_id}"
    if not cache.add(lock, "1", timeout=150):
        return None  # the previous pass for this account is still running
    try:
        account = ExchangeAccount.objects.filter(pk=account_id).select_related("owner").first()
        if account is None:
            return None
        report = account_reconcile(account=account)
        daily_loss_watch(user=account.owner)
        return {"orders_checked": report.orders_checked, "discrepancies": report.discrepancies,
                "errors": len(report.errors)}
    finally:
        cache.delete(lock)


@worker_ready.connect
def _reconcile_on_worker_start(sender=None, **kwargs) -> None:
    # A pass when a worker starts: orders left PENDING/UNKNOWN by a crash are settled. When
    # several workers start together (a deploy, a machine reboot) one pass is enough.
    try:
        if cache.add("reconcile:startup", "1", timeout=60):
            reconcile_all_task.delay()
    except Exception as exc:  # the broker may not be reachable yet; beat will schedule one
        logger.warning("could not queue the start-up reconciliation: %s", exc)


#: The user's flatten lock lives this long unless the pass extends it (it does at every
#: step); a pass that died frees it after this. reconcile_all queues again a flattening
#: still queued after FLATTEN_QUEUED_STALL_SECONDS or running without a step for
#: FLATTEN_RUNNING_STALL_SECONDS (past the lock's life, so the dead pass's lock is gone).
FLATTEN_LOCK_SECONDS = 300
FLATTEN_QUEUED_STALL_SECONDS = 60
FLATTEN_RUNNING_STALL_SECONDS = 360
FLATTEN_BUSY_RETRY_SECONDS = 10
FLATTEN_MAX_BUSY_RETRIES = 2 * FLATTEN_LOCK_SECONDS // FLATTEN_BUSY_RETRY_SECONDS


def flatten_lock(user_id: int):
    """The per-user lock a flattening pass holds: two passes (a redelivered task, a
    re-queue, a new trip after a lift while the last one still runs) never flatten the
    same user's accounts at once."""
    return cache.lock(f"lock:kill_switch_flatten:{user_id}", timeout=FLATTEN_LOCK_SECONDS, blocking=False,
                      thread_local=False)


# acks_late with reject_on_worker_lost (the settings' defaults, spelled out here because
# this task relies on them): a worker killed mid-way leaves the message unacknowledged, so
# the broker delivers it again and the next pass resumes from the row's progress.
@shared_task(name="trading.kill_switch_flatten", bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=FLATTEN_MAX_BUSY_RETRIES)
def kill_switch_flatten_task(self, switch_id: int) -> str:
    from risk.models import KillSwitch

    user_id = KillSwitch.objects.filter(pk=switch_id).values_list("user_id", flat=True).first()
    if user_id is None:
        return "missing"
    lock = flatten_lock(user_id)
    try:
        acquired = lock.acquire()
    except RedisError as exc:  # the lock cannot be read: never flatten without it
        raise self.retry(exc=exc, countdown=FLATTEN_BUSY_RETRY_SECONDS) from exc
    if not acquired:
        # Another pass for this user is running: try again after it (never alongside it).
        raise self.retry(countdown=FLATTEN_BUSY_RETRY_SECONDS)
    try:
        switch = kill_switch_flatten(switch_id=switch_id, still_mine=lambda: lock.extend(FLATTEN_LOCK_SECONDS,
                                                                                          replace_ttl=True))
        return switch.flatten_state if switch is not None else "nothing to do"
    finally:
        try:
            lock.release()
        except (LockError, RedisError) as exc:  # expired meanwhile (a very slow venue), or Redis gone
            logger.warning("flatten lock of user %s not released: %s", user_id, type(exc).__name__)
