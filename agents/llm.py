"""Model clients behind the graph's ``LLMClient`` port (Django-free).

- ``OpenAIChatClient``: any OpenAI-compatible server through the official SDK, with
  function calling (``tool_choice="auto"``). Retries are the SDK's own: it retries 408,
  409, 429, 5xx, timeouts and connection errors ``max_retries`` times with exponential
  backoff (0.5 s doubling to 8 s, jittered; a server's ``retry-after``/``retry-after-ms``
  of up to 60 s wins) and never retries other 4xx (openai/_base_client.py
  ``_should_retry`` / ``_calculate_retry_timeout``, openai 3.54). A failure that survives
  them is mapped onto ``LLMTemporaryError`` (try a later tick) or ``LLMRequestError``
  (the request itself is refused: bad request, bad key, unknown model, a redirect, a URL the
  outbound guard refuses; needs a person). ``complete(..., timeout=s)`` bounds the whole call,
  retries and waits included (then the retries are this module's, with the same rules).
  Every request asks for at most ``max_completion_tokens``; what comes back is distrusted:
  the HTTP client (``alpha_platform.common.outbound``) follows no redirect and refuses a body
  over its bound; content, tool-call names and arguments are clipped (``toolspec.clip``);
  token counts that are not sane integers are replaced by the estimate and flagged in the raw
  record (``alpha_usage_check``); a tool call keeps its type (``LLMToolCall.kind``), so the
  graph can refuse one that is not a function call; the raw record is made JSON-safe.
- ``BuiltinModel`` (``builtin:trend``): deterministic rules that read the same context
  message the LLM reads and answer with the same tool calls, so the graph, the risk gate
  and the audit are identical with or without a key. Costs nothing.
- ``make_llm``: picks one from the agent's model name.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import urlsplit

from agents.graph import indicators as ind
from agents.graph.contracts import LLMReply, LLMToolCall
from agents.graph.prompt import find_context
from agents.graph.tokens import checked_token_count, estimate_completion_tokens, estimate_prompt_tokens
from agents.graph.toolspec import MAX_ARGUMENTS_CHARS, MAX_CONTENT_CHARS, MAX_NAME_CHARS, clip
from alpha_platform.common import outbound
from alpha_platform.common.safe_json import json_safe
from alpha_platform.common.vocabulary import PositionSide

MASK = "********"
DEFAULT_MAX_COMPLETION_TOKENS = 1024
MAX_TOOL_CALLS_PER_REPLY = 32  # the graph executes at most 8 a round; the rest are not kept
MAX_RAW_ITEMS = 64  # per list in the stored raw reply
RAW_MAX_DEPTH = 13  # levels of nesting kept in the stored raw reply
MIN_ATTEMPT_SECONDS = 0.05  # a retry is not started with less time than this left


class LLMError(Exception):
    """A model call failed."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class LLMTemporaryError(LLMError):
    """Timed out, rate limited, server error or unreachable, after the client's retries."""


class LLMRequestError(LLMError):
    """The server refused the request (4xx other than 408/409/429), or the platform refused
    to send it (the URL is not allowed): do not retry as is."""


def _reveal(api_key: Any) -> str:
    reveal = getattr(api_key, "reveal", None)  # alpha_platform.common.secrets.Secret
    return str(reveal() if callable(reveal) else (api_key or ""))


def _get(obj: Any, key: str) -> Any:
    """An attribute of an SDK object, or a key of a dict (a hostile server's extra fields)."""
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, default=str)
        except (TypeError, ValueError):
            value = str(value)
    return clip(value, limit)


def _official_openai(base_url: str | None) -> bool:
    if not base_url:
        return True
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com"


class OpenAIChatClient:
    def __init__(self, api_key: Any, base_url: str | None = None, model: str = "gpt-4o-mini",
                 timeout: float = 30.0, max_retries: int = 2, *, http_client: Any = None,
                 max_completion_tokens: int | None = None,
                 max_response_bytes: int = outbound.DEFAULT_MAX_RESPONSE_BYTES) -> None:
        """``http_client``: an optional shared httpx2 client, best one from
        ``alpha_platform.common.outbound.guarded_http_client`` (connection pool and TLS context
        reused across decisions; building one costs ~0.15 s). Not closed by us. Without one, the
        client builds its own guarded one with no address policy (the response bound, no
        redirects and the per-call deadline still apply).

        ``max_completion_tokens`` bounds every reply (default 1024); it is sent as
        ``max_completion_tokens`` to OpenAI itself (which refuses ``max_tokens`` for its newer
        models) and as ``max_tokens`` to any other server (what OpenAI-compatible servers such
        as vLLM, Ollama, llama.cpp and LM Studio read)."""
        import openai  # imported here: the built-in model must work without it

        key = _reveal(api_key)
        if not key:
            raise LLMRequestError("no API key configured for an OpenAI-compatible model")
        self.model = model
        self.base_url = base_url or None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_completion_tokens = int(max_completion_tokens or DEFAULT_MAX_COMPLETION_TOKENS)
        self._token_param = "max_completion_tokens" if _official_openai(self.base_url) else "max_tokens"
        self._key = key  # only to scrub it from error texts
        self._openai = openai
        self._owns_http = http_client is None
        if http_client is None:
            http_client = outbound.guarded_http_client(None, max_response_bytes=max_response_bytes)
        self._http = http_client
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
        """One chat completion.

        ``timeout`` None: each attempt is bounded by the client's timeout and the SDK retries
        ``max_retries`` times as described in the module docstring.
        ``timeout`` given: the whole call, retries and their waits included, ends within
        ``timeout`` seconds: each attempt gets ``min(client timeout, time left)``, every socket
        connect/read/write of a guarded HTTP client is cut at the deadline, a retry (at most
        ``max_retries``, the SDK's rules: 408/409/429/5xx, timeouts, connection errors) is only
        started when its backoff (or the server's retry-after) still leaves time for it, and the
        SDK's own retries are off. ``timeout <= 0``: LLMTemporaryError at once, nothing sent.
        Raises LLMTemporaryError, LLMRequestError or LLMError."""
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  self._token_param: self.max_completion_tokens}
        if tools:
            kwargs["tools"] = tools
            kwargs["tool_choice"] = "auto"
        if timeout is None:
            response = self._create(self._client, kwargs, self.timeout, self.max_retries)
        else:
            response = self._create_within(kwargs, timeout)
        return self._reply(response, messages, tools)

    def _create_within(self, kwargs: dict[str, Any], timeout: float) -> Any:
        timeout = float(timeout)
        if not timeout > 0:  # also NaN
            raise LLMTemporaryError(f"no time left for the model call (bound {timeout:g}s); nothing was sent")
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LLMTemporaryError(f"timed out: the call's bound of {timeout:g}s has passed")
            per_try = min(self.timeout, remaining)
            client = self._client.with_options(timeout=per_try, max_retries=0)
            try:
                with outbound.deadline(deadline):
                    return self._create(client, kwargs, per_try, 0)
            except LLMTemporaryError as exc:
                if attempt >= self.max_retries:
                    raise
                wait = self._backoff(attempt, exc.retry_after)
                if time.monotonic() + wait + MIN_ATTEMPT_SECONDS >= deadline:
                    raise
                time.sleep(wait)
                attempt += 1

    @staticmethod
    def _backoff(attempt: int, retry_after: float | None) -> float:
        """The SDK's: a server's retry-after of up to 60 s wins, else 0.5 s doubling to 8 s, jittered."""
        if retry_after is not None and 0 < retry_after <= 60:
            return retry_after
        return min(0.5 * 2.0 ** attempt, 8.0) * (1 - 0.25 * random.random())

    @staticmethod
    def _retry_after(exc: Any) -> float | None:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        try:
            if headers.get("retry-after-ms"):
                return float(headers["retry-after-ms"]) / 1000.0
            if headers.get("retry-after"):
                return float(headers["retry-after"])
        except (TypeError, ValueError):
            return None
        return None

    def _create(self, client: Any, kwargs: dict[str, Any], timeout: float, retries: int) -> Any:
        oa = self._openai
        try:
            return client.chat.completions.create(**kwargs)
        except outbound.OutboundRefused as exc:
            raise LLMRequestError(f"the model server is not allowed: {self._scrub(exc)}") from None
        except outbound.OutboundError as exc:
            raise LLMError(self._scrub(exc)) from None
        except oa.APITimeoutError:
            raise LLMTemporaryError(f"timed out after {timeout:g}s ({retries} retries)") from None
        except oa.APIConnectionError as exc:
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise LLMTemporaryError(f"connection failed: {self._scrub(detail)}") from None
        except oa.APIStatusError as exc:
            code = exc.status_code
            if 300 <= code < 400:
                where = exc.response.headers.get("location", "") if exc.response is not None else ""
                raise LLMRequestError(f"HTTP {code}: the server answered with a redirect"
                                      f"{' to ' + self._scrub(where)[:200] if where else ''}, which is not followed",
                                      status_code=code) from None
            detail = self._scrub(getattr(exc, "message", "") or exc)
            error = LLMTemporaryError if code in (408, 409, 429) or code >= 500 else LLMRequestError
            raise error(f"HTTP {code}: {detail}", status_code=code, retry_after=self._retry_after(exc)) from None
        except oa.OpenAIError as exc:
            raise LLMError(self._scrub(exc)) from None
        except (ValueError, TypeError) as exc:  # a body the SDK could not read as a completion
            raise LLMError(f"unreadable reply: {self._scrub(f'{type(exc).__name__}: {exc}')}") from None

    def _reply(self, response: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> LLMReply:
        choices = getattr(response, "choices", None)
        if not choices or not isinstance(choices, list):
            raise LLMError("the server returned no choices")
        message = _get(choices[0], "message")
        if message is None:
            raise LLMError("the server returned a choice without a message")
        calls: list[LLMToolCall] = []
        received = list(_get(message, "tool_calls") or ()) if isinstance(_get(message, "tool_calls"), list) else []
        for tc in received[:MAX_TOOL_CALLS_PER_REPLY]:
            kind = _text(_get(tc, "type") or "function", 32)
            function = _get(tc, "function")
            if kind == "function" or (function is not None and _get(tc, "custom") is None):
                name, arguments = _get(function, "name"), _get(function, "arguments")
            else:  # a custom (free-form) tool call: recorded, and refused by the graph (not a function)
                custom = _get(tc, "custom")
                name, arguments = _get(custom, "name"), _get(custom, "input")
            calls.append(LLMToolCall(_text(_get(tc, "id"), MAX_NAME_CHARS), _text(name, MAX_NAME_CHARS),
                                     _text(arguments, MAX_ARGUMENTS_CHARS), kind))
        content = _get(message, "content")
        if content is None:
            content = _get(message, "refusal")
        content = None if content is None else _text(content, MAX_CONTENT_CHARS)
        usage = getattr(response, "usage", None)
        checks: dict[str, str] = {}
        prompt_tokens, why = checked_token_count(_get(usage, "prompt_tokens"))
        if prompt_tokens is None:
            prompt_tokens = estimate_prompt_tokens(messages, tools)
            if why:
                checks["prompt_tokens"] = f"estimated: {why}"
        completion_tokens, why = checked_token_count(_get(usage, "completion_tokens"))
        if completion_tokens is None:
            completion_tokens = estimate_completion_tokens(content, calls)
            if why:
                checks["completion_tokens"] = f"estimated: {why}"
        try:
            raw = response.model_dump(mode="json", exclude_none=True, warnings=False)
        except Exception:
            raw = {"id": _text(getattr(response, "id", None), MAX_NAME_CHARS)}
        raw = json_safe(raw, max_str=MAX_CONTENT_CHARS, max_items=MAX_RAW_ITEMS, max_depth=RAW_MAX_DEPTH)
        if len(received) > MAX_TOOL_CALLS_PER_REPLY:
            raw["alpha_tool_calls_dropped"] = len(received) - MAX_TOOL_CALLS_PER_REPLY
        if checks:
            raw["alpha_usage_check"] = checks
        return LLMReply(content=content, tool_calls=calls, prompt_tokens=int(prompt_tokens),
                        completion_tokens=int(completion_tokens),
                        model=_text(getattr(response, "model", None), MAX_NAME_CHARS) or self.model, raw=raw)


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
        """Instant; ``timeout`` (the same contract as OpenAIChatClient's) only matters when it
        is already spent: ``timeout <= 0`` raises LLMTemporaryError."""
        if timeout is not None and not float(timeout) > 0:
            raise LLMTemporaryError(f"no time left for the model call (bound {float(timeout):g}s)")
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
        long, short = PositionSide.LONG.value, PositionSide.SHORT.value
        opposite, same = (short, long) if up else (long, short)
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
             timeout: float = 30.0, max_retries: int = 2, http_client: Any = None,
             max_completion_tokens: int | None = None) -> Any:
    """``builtin:*`` names get the offline model; anything else the OpenAI-compatible client."""
    name = (model_name or "").strip()
    if name.startswith("builtin:"):
        try:
            return BUILTIN_MODELS[name](name)
        except KeyError:
            raise LLMRequestError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}") from None
    if not name:
        raise LLMRequestError("no model name given")
    return OpenAIChatClient(api_key, base_url, name, timeout, max_retries, http_client=http_client,
                            max_completion_tokens=max_completion_tokens)
