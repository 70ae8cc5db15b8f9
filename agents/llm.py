"""Model clients behind the graph's ``LLMClient`` port (Django-free).

- ``OpenAIChatClient``: any OpenAI-compatible server through the official SDK, with
  function calling (``tool_choice="auto"``). Retries are the SDK's own: it retries 408,
  409, 429, 5xx, timeouts and connection errors ``max_retries`` times with exponential
  backoff (0.5 s doubling to 8 s, jittered; a server's ``retry-after``/``retry-after-ms``
  of up to 60 s wins) and never retries other 4xx (openai/_base_client.py
  ``_should_retry`` / ``_calculate_retry_timeout``, openai 3.54). A failure that survives
  them is mapped onto ``LLMTemporaryError`` (try a later tick) or ``LLMRequestError``
  (the request itself is refused: bad request, bad key, unknown model; needs a person).
- ``BuiltinModel`` (``builtin:trend``): deterministic rules that read the same context
  message the LLM reads and answer with the same tool calls, so the graph, the risk gate
  and the audit are identical with or without a key. Costs nothing.
- ``make_llm``: picks one from the agent's model name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from agents.graph import indicators as ind
from agents.graph.contracts import LLMReply, LLMToolCall
from agents.graph.prompt import find_context
from agents.graph.tokens import estimate_completion_tokens, estimate_prompt_tokens

MASK = "********"


class LLMError(Exception):
    """A model call failed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMTemporaryError(LLMError):
    """Timed out, rate limited, server error or unreachable, after the client's retries."""


class LLMRequestError(LLMError):
    """The server refused the request (4xx other than 408/409/429): do not retry as is."""


def _reveal(api_key: Any) -> str:
    reveal = getattr(api_key, "reveal", None)  # alpha_platform.common.secrets.Secret
    return str(reveal() if callable(reveal) else (api_key or ""))


class OpenAIChatClient:
    def __init__(self, api_key: Any, base_url: str | None = None, model: str = "gpt-4o-mini",
                 timeout: float = 30.0, max_retries: int = 2, *, http_client: Any = None) -> None:
        """``http_client``: an optional shared ``openai.DefaultHttpxClient`` (connection pool and
        TLS context reused across decisions; building one costs ~0.15 s). Not closed by us."""
        import openai  # imported here: the built-in model must work without it

        key = _reveal(api_key)
        if not key:
            raise LLMRequestError("no API key configured for an OpenAI-compatible model")
        self.model = model
        self.base_url = base_url or None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._key = key  # only to scrub it from error texts
        self._openai = openai
        self._owns_http = http_client is None
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout,
                                     max_retries=self.max_retries, http_client=http_client)

    def __repr__(self) -> str:  # the key never shows up in reprs or tracebacks' locals
        return f"<OpenAIChatClient model={self.model!r} base_url={self.base_url!r}>"

    def close(self) -> None:
        if self._owns_http:
            self._client.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        text = str(text)
        if self._key:
            text = text.replace(self._key, MASK)
        return text[:500]

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                 timeout: float | None = None) -> LLMReply:
        oa = self._openai
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            kwargs["tools"] = tools
            kwargs["tool_choice"] = "auto"
        client = self._client
        if timeout is not None:
            if timeout <= 0:
                raise LLMTemporaryError("no time left for a model call")
            if timeout < self.timeout:  # the caller's deadline is the tighter bound: no retry past it
                client = self._client.with_options(timeout=float(timeout), max_retries=0)
        try:
            response = client.chat.completions.create(**kwargs)
        except oa.APITimeoutError:
            raise LLMTemporaryError(f"timed out after {self.timeout:g}s "
                                    f"({self.max_retries} retries)") from None
        except oa.APIConnectionError as exc:
            raise LLMTemporaryError(f"connection failed: {self._scrub(exc)}") from None
        except oa.APIStatusError as exc:
            code = exc.status_code
            detail = self._scrub(getattr(exc, "message", "") or exc)
            error = LLMTemporaryError if code in (408, 409, 429) or code >= 500 else LLMRequestError
            raise error(f"HTTP {code}: {detail}", status_code=code) from None
        except oa.OpenAIError as exc:
            raise LLMError(self._scrub(exc)) from None
        return self._reply(response, messages, tools)

    def _reply(self, response: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> LLMReply:
        if not getattr(response, "choices", None):
            raise LLMError("the server returned no choices")
        message = response.choices[0].message
        calls: list[LLMToolCall] = []
        for tc in message.tool_calls or ():
            function = getattr(tc, "function", None)
            if function is not None:
                calls.append(LLMToolCall(tc.id or "", function.name or "", function.arguments or ""))
            else:  # a custom (free-form) tool call: recorded, and rejected as unknown by the graph
                custom = getattr(tc, "custom", None)
                calls.append(LLMToolCall(tc.id or "", getattr(custom, "name", "") or "",
                                         getattr(custom, "input", "") or ""))
        content = message.content if message.content is not None else getattr(message, "refusal", None)
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if prompt_tokens is None:
            prompt_tokens = estimate_prompt_tokens(messages, tools)
        if completion_tokens is None:
            completion_tokens = estimate_completion_tokens(content, calls)
        try:
            raw = response.model_dump(mode="json", exclude_none=True)
        except Exception:
            raw = {"id": getattr(response, "id", None)}
        return LLMReply(content=content, tool_calls=calls, prompt_tokens=int(prompt_tokens),
                        completion_tokens=int(completion_tokens), model=response.model or self.model, raw=raw)


# --------------------------------------------------------------------------- built-in


class BuiltinModel:
    """``builtin:trend``: EMA(9)/EMA(21) trend with an RSI(14) filter, ATR-based exits.

    Per symbol, from the context message the LLM would see:
    - trend up (EMA9 > EMA21): close a short if there is one (the trend flipped); else open a
      long unless one is held or RSI >= ``overbought``;
    - trend down: the mirror image (no short when RSI <= ``oversold``);
    - size: ``risk_share`` of available balance as usd_notional, leverage 1 (capped by the
      agent's max); stop-loss ``sl_atr`` x ATR and take-profit ``tp_atr`` x ATR from the price.
    A flip only closes; the reverse position is opened on a later tick, so one tick never
    both closes and reopens. Nothing to do: one ``hold`` call with the reasons. When the tool
    results come back it answers with a short text and no tool calls.
    """

    def __init__(self, name: str = "builtin:trend", *, overbought: float = 70.0, oversold: float = 30.0,
                 risk_share: Decimal = Decimal("0.10"), sl_atr: Decimal = Decimal("1.5"),
                 tp_atr: Decimal = Decimal("3"), leverage: int = 1) -> None:
        self.name = name
        self.overbought, self.oversold = overbought, oversold
        self.risk_share, self.sl_atr, self.tp_atr = Decimal(risk_share), Decimal(sl_atr), Decimal(tp_atr)
        self.leverage = leverage

    def __repr__(self) -> str:
        return f"<BuiltinModel {self.name}>"

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                 timeout: float | None = None) -> LLMReply:
        if timeout is not None and timeout <= 0:
            raise LLMTemporaryError("no time left for a model call")
        offered = {t.get("function", {}).get("name") for t in tools or ()}
        if messages and messages[-1].get("role") == "tool":
            content, calls = self._acknowledge(messages), []
        else:
            content, calls = self._decide(messages, offered)
        return LLMReply(
            content=content, tool_calls=calls,
            prompt_tokens=estimate_prompt_tokens(messages, tools or ()),
            completion_tokens=estimate_completion_tokens(content, calls),
            model=self.name,
            raw={"model": self.name, "content": content,
                 "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]},
        )

    # -- the tool-results round
    @staticmethod
    def _acknowledge(messages: Sequence[dict[str, Any]]) -> str:
        names: dict[str, str] = {}
        for m in messages:
            for tc in m.get("tool_calls") or ():
                names[tc.get("id", "")] = tc.get("function", {}).get("name", "?")
        parts = []
        for m in reversed(messages):
            if m.get("role") != "tool":
                break
            try:
                status = json.loads(m.get("content") or "{}").get("status", "?")
            except ValueError:
                status = "?"
            parts.append(f"{names.get(m.get('tool_call_id', ''), '?')} {status}")
        return "Done: " + ", ".join(reversed(parts)) + "."

    # -- the decision round
    def _decide(self, messages: Sequence[dict[str, Any]], offered: set[str]) -> tuple[str, list[LLMToolCall]]:
        round_no = sum(1 for m in messages if m.get("role") == "assistant")
        actions: list[tuple[str, dict[str, Any]]] = []
        notes: list[str] = []
        ctx = find_context(messages)
        if ctx is None:
            notes.append("no context")
        else:
            for symbol, m in (ctx.get("market") or {}).items():
                action, note = self._symbol(symbol, m, ctx)
                notes.append(note)
                if action and action[0] in offered:
                    actions.append(action)
        if not actions:
            actions = [("hold", {"reason": "; ".join(notes)[:400] or "nothing to do"})] if "hold" in offered else []
        calls = [LLMToolCall(f"builtin-{round_no}-{i}", name, json.dumps(args, separators=(",", ":")))
                 for i, (name, args) in enumerate(actions)]
        return "; ".join(notes)[:500], calls

    def _symbol(self, symbol: str, m: dict[str, Any], ctx: dict[str, Any]
                ) -> tuple[tuple[str, dict[str, Any]] | None, str]:
        px, fast, slow, rsi, atr = (m.get(k) for k in ("price", "ema9", "ema21", "rsi14", "atr14"))
        if m.get("unavailable") or px is None or fast is None or slow is None:
            return None, f"{symbol}: not enough data"
        held = {p.get("side"): p for p in ctx.get("positions") or () if p.get("symbol") == symbol}
        if fast == slow:
            return None, f"{symbol}: EMAs equal, no trend"
        up = fast > slow
        trend = f"{symbol}: ema9 {'>' if up else '<'} ema21" + (f", rsi {rsi}" if rsi is not None else "")
        opposite, same = ("SHORT", "LONG") if up else ("LONG", "SHORT")
        if opposite in held:
            qty = held[opposite].get("qty")
            name = "close_short" if up else "close_long"
            return (name, _order(symbol, quantity=qty)), f"{trend}: trend flipped, {name}"
        if same in held:
            return None, f"{trend}: already {same.lower()}, keep"
        if rsi is not None and (rsi >= self.overbought if up else rsi <= self.oversold):
            return None, f"{trend}: RSI {'overbought' if up else 'oversold'}, no {same.lower()}"
        available = Decimal(str((ctx.get("account") or {}).get("available") or 0))
        notional = (available * self.risk_share).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        if notional < 1:
            return None, f"{trend}: available balance too small"
        price = Decimal(str(px))
        stop = take = None
        if atr:
            distance_sl, distance_tp = Decimal(str(atr)) * self.sl_atr, Decimal(str(atr)) * self.tp_atr
            stop = price - distance_sl if up else price + distance_sl
            take = price + distance_tp if up else price - distance_tp
            if stop <= 0 or take <= 0:
                stop = take = None
        leverage = max(1, min(self.leverage, int(ctx.get("max_lev") or 1)))
        name = "open_long" if up else "open_short"
        args = _order(symbol, usd_notional=float(notional), leverage=leverage,
                      stop_loss=ind.compact(stop, 7), take_profit=ind.compact(take, 7))
        return (name, args), f"{trend}: {name} {notional} USD"


def _order(symbol: str, *, quantity: Any = None, usd_notional: Any = None, leverage: int | None = None,
           stop_loss: Any = None, take_profit: Any = None) -> dict[str, Any]:
    args: dict[str, Any] = {"symbol": symbol, "quantity": quantity, "usd_notional": usd_notional}
    if leverage is not None or stop_loss is not None or take_profit is not None:
        args.update(leverage=leverage, stop_loss=stop_loss, take_profit=take_profit)
    args.update(order_type="market", limit_price=None)
    return args


BUILTIN_MODELS = {"builtin:trend": BuiltinModel}


def make_llm(model_name: str, api_key: Any = None, base_url: str | None = None, *,
             timeout: float = 30.0, max_retries: int = 2, http_client: Any = None) -> Any:
    """``builtin:*`` names get the offline model; anything else the OpenAI-compatible client."""
    name = (model_name or "").strip()
    if name.startswith("builtin:"):
        try:
            return BUILTIN_MODELS[name](name)
        except KeyError:
            raise LLMRequestError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}") from None
    if not name:
        raise LLMRequestError("no model name given")
    return OpenAIChatClient(api_key, base_url, name, timeout, max_retries, http_client=http_client)
