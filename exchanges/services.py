"""Writes for exchange accounts. Keyword-only, atomic, validated before saving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from alpha_platform.common import crypto
from alpha_platform.common.config import get_config
from exchanges.credentials import clean_credentials, credentials_hint
from exchanges.models import ExchangeAccount, validate_venue


def _auth_type(venue: str) -> str:
    return get_config().venue(venue).get("auth", {}).get("auth_type", "api_key")


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
    return account


def exchange_account_delete(*, account: ExchangeAccount) -> None:
    if account.orders.filter(status__in=["PENDING", "NEW", "PARTIALLY_FILLED", "UNKNOWN"]).exists():
        raise ValidationError("This account has open orders: cancel them (or trip the kill switch) first.")
    if account.positions.filter(status="open").exists():
        raise ValidationError("This account has open positions: close them first.")
    if account.agents.exists():
        raise ValidationError("Agents use this account: delete or move them first.")
    with transaction.atomic():
        account.orders.all().delete()
        account.delete()
