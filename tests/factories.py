"""Model factories. Accounts are made through the service, so credentials are encrypted
the same way production makes them."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

BINANCE_CREDS = {"api_key": "K" * 24 + "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8",
                 "api_secret": "S" * 20 + "9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddccbbaa9988"}
HL_CREDS = {"private_key": "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
            "account_address": "0x" + "90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.invalid")
    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or "pw-123456-long")
        if create:
            obj.save(update_fields=["password"])


def make_account(owner, *, venue="paper", name=None, credentials=None, testnet=False):
    from exchanges.services import exchange_account_create

    if credentials is None:
        credentials = {"paper": {}, "binance_futures": BINANCE_CREDS, "hyperliquid": HL_CREDS}[venue]
    return exchange_account_create(owner=owner, name=name or f"{venue}-{owner.username}", venue=venue,
                                   credentials=credentials, testnet=testnet)


def make_agent(owner, account=None, **kwargs):
    from agents.services import agent_create

    account = account or make_account(owner)
    kwargs.setdefault("name", f"agent-{owner.username}-{account.pk}")
    kwargs.setdefault("symbols", ["BTC/USDT"])
    return agent_create(owner=owner, account=account, **kwargs)
