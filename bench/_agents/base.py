"""What every part of the agent benchmarks shares: the fake model's key and name, the
instructions, the symbol sets and tool arguments, a population of agents made through the
services, and pointing the platform at a model server."""

from __future__ import annotations

from _common import (
    make_paper_account,
    make_user,
    relax_risk,
)

KEY = "sk-bench-0123456789abcdef"
MODEL = "gpt-4o-mini"
INSTRUCTIONS = "Trade the trend on the 1m candles; keep positions small and cut losers quickly."
SYMBOL_SETS = {1: ["BTC/USDT"], 2: ["BTC/USDT", "ETH/USDT"], 3: ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
               5: ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT", "XRP/USDT"]}
OPEN_ARGS = {"symbol": "BTC/USDT", "quantity": 0.001, "usd_notional": None, "leverage": 1, "stop_loss": None,
             "take_profit": None, "order_type": "market", "limit_price": None}
CLOSE_ARGS = {"symbol": "BTC/USDT", "quantity": 0.001, "usd_notional": None, "order_type": "market",
              "limit_price": None}
HOLD_ARGS = {"reason": "no clear trend on the 1m candles"}


# --------------------------------------------------------------------------- helpers
class Population:
    """Agents on their own paper accounts, ``per_user`` agents per user, made through the
    services; risk limits relaxed so they never interfere."""

    def __init__(self, tag: str, per_user: int = 10) -> None:
        self.tag = tag
        self.per_user = per_user
        self.agents: list = []
        self._user = None

    def add(self, n: int, *, symbols: list[str], model_name: str, interval: int = 60, instructions: str = ""):
        from agents.services import agent_create

        made = []
        for _ in range(n):
            i = len(self.agents)
            if i % self.per_user == 0:
                self._user = make_user(f"{self.tag}-u{i // self.per_user}")
                relax_risk(self._user)
            account = make_paper_account(self._user, f"paper-{i}")
            agent = agent_create(owner=self._user, account=account, name=f"{self.tag}-a{i}", symbols=list(symbols),
                                 interval_seconds=interval, model_name=model_name, instructions=instructions)
            self.agents.append(agent)
            made.append(agent)
        return made


def set_llm(url: str) -> None:
    from django.conf import settings

    settings.OPENAI_BASE_URL = url + "/v1"
    settings.OPENAI_API_KEY = KEY
