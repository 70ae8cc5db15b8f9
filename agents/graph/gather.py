"""The ``gather_context`` node: market data for each symbol (one symbol down does not
blind the others), the account, the risk line and recent decisions, into the messages
the model is sent and the market snapshot kept with the decision."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from agents.graph import prompt as pr
from agents.graph.state import DecisionState, Deps, err

log = logging.getLogger(__name__)


def gather_context(state: DecisionState, runtime: Runtime[Deps]) -> dict[str, Any]:
    inp, provider = state["inp"], runtime.context.provider
    try:
        market: dict[str, dict[str, Any]] = {}
        snapshot: dict[str, Any] = {}
        prices: dict[str, Decimal] = {}
        failures = []
        for symbol in inp.symbols:
            try:
                snap = provider.market(symbol)
            except Exception as exc:  # one symbol down must not blind the others
                log.warning("market data for %s failed: %s", symbol, err(exc))
                failures.append(symbol)
                market[symbol] = {"unavailable": True}
                snapshot[symbol] = {"error": err(exc)}
                continue
            indicators = pr.market_indicators(snap)
            entry = pr.market_entry(snap, indicators)
            market[symbol] = entry
            prices[symbol] = Decimal(str(snap.price))
            last = snap.candles[-1] if snap.candles else None
            snapshot[symbol] = {
                **entry,
                "price": str(snap.price),
                "funding": None if snap.funding_rate is None else str(snap.funding_rate),
                "candles": len(snap.candles),
                "last_candle": getattr(getattr(last, "timestamp", None), "isoformat", lambda: None)(),
            }
        if failures and len(failures) == len(inp.symbols):
            raise RuntimeError(f"no market data for any symbol ({', '.join(failures)})")
        account = provider.account()
        risk_line = provider.risk_line()
        recent = provider.recent_decisions(inp.recent_decisions) if inp.recent_decisions > 0 else []
        context = pr.build_context(now=inp.now, max_leverage=inp.max_leverage, market=market,
                                   account=account, recent=recent)
        messages = pr.build_messages(
            system=pr.system_prompt(max_leverage=inp.max_leverage, risk_line=risk_line),
            instructions=inp.instructions, context=context)
        return {
            "context": context,
            "market_snapshot": {"time": inp.now.isoformat(), "symbols": snapshot},
            "prices": prices,
            "messages": messages,
        }
    except Exception as exc:
        log.exception("gather_context failed for agent %s", inp.agent_id)
        return {"stop": "error", "error": f"gather_context: {err(exc)}"}
