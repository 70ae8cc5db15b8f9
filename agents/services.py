"""Writes for agents."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from agents.models import AgentConfig
from exchanges.models import ExchangeAccount


@transaction.atomic
def agent_create(*, owner: AbstractBaseUser, account: ExchangeAccount, name: str, symbols: list[str],
                 interval_seconds: int = 60, model_name: str = "builtin:trend", instructions: str = "",
                 **extra: Any) -> AgentConfig:
    agent = AgentConfig(owner=owner, account=account, name=(name or "").strip(), symbols=symbols,
                        interval_seconds=interval_seconds, model_name=model_name,
                        instructions=instructions, **extra)
    agent.full_clean()
    agent.save()
    return agent
