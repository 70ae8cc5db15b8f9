"""Celery tasks: thin callers that load by id, take a lock and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.core.cache import cache

from exchanges.models import ExchangeAccount
from trading.services import account_reconcile, daily_loss_watch

logger = logging.getLogger(__name__)


@shared_task(name="trading.reconcile_all", ignore_result=True)
def reconcile_all_task() -> int:
    """Fan out one reconciliation (and balance snapshot) per active account."""
    ids = list(ExchangeAccount.objects.exclude(status=ExchangeAccount.Status.DISABLED).values_list("pk", flat=True))
    for account_id in ids:
        account_reconcile_task.delay(account_id)
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
