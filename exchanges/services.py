"""Writes for exchange accounts. Keyword-only, atomic, validated before saving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alpha_platform.common import crypto
from alpha_platform.common.config import get_config
from alpha_platform.common.vocabulary import OPEN_ORDER_STATUSES
from exchanges.adapters.base import ExchangeTrader, VenueSpec
from exchanges.adapters.errors import ExchangeError
from exchanges.adapters.pool import TraderPool, config_version, secret_version
from exchanges.adapters.registry import adapter_class, create_trader
from exchanges.adapters.resilience import AdapterRuntime, RedisStore
from exchanges.credentials import clean_credentials, credentials_hint
from exchanges.models import ExchangeAccount, validate_venue

logger = logging.getLogger(__name__)

def _auth_type(venue: str) -> str:
    return get_config().auth(venue).auth_type


@transaction.atomic
def exchange_account_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    venue: str,
    credentials: Mapping[str, Any] | None = None,
    testnet: bool = False,
) -> ExchangeAccount:
    validate_venue(venue)
    cleaned = clean_credentials(_auth_type(venue), credentials or {})
    account = ExchangeAccount(owner=owner, name=(name or "").strip(), venue=venue, testnet=testnet)
    account.credentials_encrypted = crypto.encrypt_json(cleaned)
    account.credentials_hint = credentials_hint(cleaned)
    account.full_clean()
    account.save()
    return account


@transaction.atomic
def exchange_account_set_credentials(*, account: ExchangeAccount, credentials: Mapping[str, Any]) -> ExchangeAccount:
    """Replace an account's credentials (they can be replaced, never read back)."""
    cleaned = clean_credentials(_auth_type(account.venue), credentials)
    account.credentials_encrypted = crypto.encrypt_json(cleaned)
    account.credentials_hint = credentials_hint(cleaned)
    account.status = ExchangeAccount.Status.UNTESTED
    account.last_error = ""
    account.full_clean()
    account.save()
    _evict_on_commit(account.pk)
    return account


@transaction.atomic
def exchange_account_update(*, account: ExchangeAccount, name: str | None = None,
                            testnet: bool | None = None) -> ExchangeAccount:
    if name is not None:
        account.name = name.strip()
    if testnet is not None:
        account.testnet = testnet
    account.full_clean()
    account.save()
    _evict_on_commit(account.pk)
    return account


def exchange_account_delete(*, account: ExchangeAccount) -> None:
    if account.orders.filter(status__in=OPEN_ORDER_STATUSES).exists():
        raise ValidationError("This account has open orders: cancel them (or trip the kill switch) first.")
    if account.positions.filter(status="open").exists():
        raise ValidationError("This account has open positions: close them first.")
    if account.agents.exists():
        raise ValidationError("Agents use this account: delete or move them first.")
    pk = account.pk
    with transaction.atomic():
        account.orders.all().delete()
        account.delete()
        _evict_on_commit(pk)


# --------------------------------------------------------------------------- traders



_runtime_lock = threading.Lock()
_runtime: AdapterRuntime | None = None


def _on_breaker_change(key: str, state: str, reason: str) -> None:
    """Record why an account's circuit opened (or that it closed) on the account row."""
    account_ref = key.split(":", 1)[-1]
    if not account_ref.startswith("acct"):
        return
    pk = int(account_ref[4:])
    if state == "open":
        logger.warning("circuit breaker opened for account %s: %s", pk, reason)
        ExchangeAccount.objects.filter(pk=pk).update(
            status=ExchangeAccount.Status.ERROR, last_error=f"Circuit breaker open: {reason}"[:1000],
            last_checked_at=timezone.now())
    else:
        logger.info("circuit breaker closed for account %s", pk)
        ExchangeAccount.objects.filter(pk=pk, status=ExchangeAccount.Status.ERROR,
                                       last_error__startswith="Circuit breaker open").update(
            status=ExchangeAccount.Status.OK, last_error="", last_checked_at=timezone.now())


def adapter_runtime() -> AdapterRuntime:
    """The process's shared runtime: breaker and rate-limit state in Redis (so they hold
    across worker processes), the paper venue's book in the database."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            import redis
            from django.conf import settings

            from exchanges.paper_store import DjangoPaperStore

            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            _runtime = AdapterRuntime(store=RedisStore(client), paper_store=DjangoPaperStore(),
                                      on_breaker_change=_on_breaker_change)
        return _runtime


def reset_adapter_runtime() -> None:
    """A fresh runtime, and a fresh trader pool with it (pooled traders hold the runtime)."""
    global _runtime
    with _runtime_lock:
        _runtime = None
    trader_pool().close_all()


# One pool per process. Idle traders are shut down after this long (a deleted account's
# trader in another process goes this way; this process evicts it at once).
TRADER_IDLE_SECONDS = 900.0
_pool = TraderPool(idle_ttl=TRADER_IDLE_SECONDS)


def trader_pool() -> TraderPool:
    return _pool


def _evict_on_commit(pk: int | None) -> None:
    if pk is not None:
        transaction.on_commit(lambda: _pool.evict(pk))


def venue_spec(account: ExchangeAccount) -> VenueSpec:
    config = get_config()
    return VenueSpec(venue=account.venue, config=config.venue_block(account.venue),
                     symbol_map=config.symbol_map(account.venue), testnet=account.testnet,
                     account_ref=account.account_ref)


def trader_for_account(account: ExchangeAccount, *, runtime: AdapterRuntime | None = None,
                       pooled: bool = True) -> ExchangeTrader:
    """The account's ExchangeTrader: the process's long-lived one for this account, its
    credentials' version, testnet flag and venue config (so metadata, leverage and margin
    settings and nonces are reused), or a fresh one when ``runtime`` is the caller's own,
    ``pooled`` is False, the account is disabled, or the venue's capabilities say it is
    not worth keeping (``long_lived``). Callers still ``close()`` it when done: for a
    pooled trader that is only a release."""
    spec = venue_spec(account)
    shared = runtime is None or runtime is adapter_runtime()
    keep = (pooled and shared and account.pk is not None
            and account.status != ExchangeAccount.Status.DISABLED
            and adapter_class(spec.config).capabilities_for(spec.config).get("long_lived", True))
    if not keep:
        if account.pk is not None and account.status == ExchangeAccount.Status.DISABLED:
            _pool.evict(account.pk)
        return create_trader(spec, credentials=account.credentials(), runtime=runtime or adapter_runtime())
    version = (secret_version(account.credentials_encrypted or ""), bool(account.testnet),
               config_version(spec.config, spec.symbol_map))
    return _pool.get(account.pk, version, lambda: create_trader(
        spec, credentials=account.credentials(), runtime=adapter_runtime()))


def exchange_account_test_connection(*, account: ExchangeAccount) -> ExchangeAccount:
    """Check the credentials by fetching the balance; store the status or a clear,
    secret-free error on the account."""
    from alpha_platform.common.errors import CredentialsError

    try:
        # A fresh trader: the check proves the credentials now (a pooled one has cached
        # its signer check).
        trader = trader_for_account(account, pooled=False)
        try:
            balance = trader.check_credentials()
        finally:
            trader.close()
    except CredentialsError as exc:
        error = exc.message
    except ExchangeError as exc:
        error = f"{type(exc).__name__}: {exc.message}"
    else:
        error = ""
        logger.info("account %s connection ok (margin balance %s %s)", account.pk,
                    balance.margin_balance, balance.currency)
    account.status = ExchangeAccount.Status.ERROR if error else ExchangeAccount.Status.OK
    account.last_error = error[:1000]
    account.last_checked_at = timezone.now()
    account.save(update_fields=["status", "last_error", "last_checked_at", "updated_at"])
    return account
