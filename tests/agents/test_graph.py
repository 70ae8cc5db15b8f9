"""The decision graph end to end, without a database: fake ports in Python, the built-in
model, and the real openai client against the local fake OpenAI server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest

from agents.graph import (
    AccountSnapshot,
    BudgetExceeded,
    DecisionInput,
    MarketSnapshot,
    OpenOrderInfo,
    PositionInfo,
    ToolCallRequest,
    ToolOutcome,
    get_graph,
    run_decision,
)
from agents.llm import BuiltinModel, LLMTemporaryError, OpenAIChatClient
from alpha_platform.common.secrets import Secret
from tests.fakes.openai_server import FakeOpenAIServer

KEY = "sk-live-SECRET-4242-do-not-leak"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INSTRUCTIONS = "Trade the 1m trend on BTC only when RSI is not extreme. Keep it small."


# --------------------------------------------------------------------------- fakes


@dataclass(frozen=True)
class Candle:
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal("1")


def candles(steps, start="100", n=60):
    out, price = [], Decimal(start)
    for i in range(n):
        nxt = price + Decimal(str(steps[i % len(steps)]))
        out.append(Candle(NOW - timedelta(minutes=n - i), price, max(price, nxt) + Decimal("0.5"),
                          min(price, nxt) - Decimal("0.5"), nxt))
        price = nxt
    return out


UP, DOWN, STRONG_UP = [2, -1], [-2, 1], [1]


class FakeProvider:
    def __init__(self, trends=None, *, positions=(), orders=(), fail=(), account_error=None):
        self.trends = trends or {"BTC/USDT": (UP, "100"), "ETH/USDT": (DOWN, "300")}
        self.positions, self.orders, self.fail, self.account_error = positions, orders, set(fail), account_error
        self.calls = []

    def market(self, symbol):
        self.calls.append(("market", symbol))
        if symbol in self.fail:
            raise ConnectionError(f"venue down for {symbol}")
        steps, start = self.trends[symbol]
        cs = candles(steps, start)
        return MarketSnapshot(symbol, cs[-1].close, candles=cs, funding_rate=Decimal("0.0001"), timeframe="1m")

    def account(self):
        if self.account_error:
            raise self.account_error
        return AccountSnapshot(Decimal("10000"), Decimal("10025.5"), Decimal("9000"),
                               positions=list(self.positions), open_orders=list(self.orders))

    def risk_line(self):
        return "max leverage 5x; max position 20% of equity; daily loss stop 15%"

    def recent_decisions(self, n):
        return ["2025-03-01T11:59Z held: hold (BTC/USDT: RSI overbought)"][:n]


class FakeExecutor:
    """Answers per tool name: a ToolOutcome, an exception to raise, or the default ok."""

    def __init__(self, **by_name):
        self.by_name = by_name
        self.calls: list[ToolCallRequest] = []

    def execute(self, call):
        self.calls.append(call)
        answer = self.by_name.get(call.name)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        return ToolOutcome("ok", {"order": {"id": 100 + call.index, "status": "FILLED"}}, order_id=100 + call.index)


class FakeBudget:
    def __init__(self, calls_allowed=100):
        self.calls_allowed, self.checks, self.added = calls_allowed, 0, []

    def check(self):
        self.checks += 1
        if self.checks > self.calls_allowed:
            raise BudgetExceeded("monthly LLM budget of 50 USD used up")

    def add(self, cost):
        self.added.append(cost)


class CountingLLM:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def complete(self, messages, tools, *, timeout=None):
        self.calls += 1
        self.timeouts = [*getattr(self, "timeouts", []), timeout]
        return self.inner.complete(messages, tools, timeout=timeout)


class FailingLLM:
    def complete(self, messages, tools, *, timeout=None):
        raise LLMTemporaryError("HTTP 503: overloaded", status_code=503)


def inp(symbols=("BTC/USDT",), model="builtin:trend", **kw):
    kw.setdefault("now", NOW)
    return DecisionInput(agent_id=7, model_name=model, instructions=INSTRUCTIONS, symbols=symbols, **kw)


def open_args(**over):
    args = {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 250, "leverage": 2, "stop_loss": 120,
            "take_profit": 140, "order_type": "market", "limit_price": None}
    args.update(over)
    return args


@pytest.fixture(scope="module")
def http():
    # One connection pool / TLS context for the module: building one per client costs ~0.15 s.
    client = openai.DefaultHttpxClient()
    yield client
    client.close()


@pytest.fixture
def server(http):
    with FakeOpenAIServer(api_key=KEY) as s:
        s.http = http
        yield s


def openai_llm(server, *, max_retries=0, timeout=2.0):
    return OpenAIChatClient(Secret(KEY), server.url + "/v1", "gpt-4o-mini", timeout, max_retries,
                            http_client=server.http)


def tool_message(output, call_index=0):
    tools = [m for m in output.messages if m["role"] == "tool"]
    return json.loads(tools[call_index]["content"])


# --------------------------------------------------------------------------- built-in model


def test_builtin_executes_a_long_through_the_executor():
    executor, llm = FakeExecutor(), CountingLLM(BuiltinModel())
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=llm)
    assert out.status == "executed", out.error
    [request] = executor.calls
    assert (request.name, request.index, request.round) == ("open_long", 0, 0)
    assert request.call_id == "builtin-0-0"
    assert request.decimal("usd_notional") == Decimal("900.0")  # 10 % of 9000 available
    assert request.decimal("quantity") is None
    [record] = out.tool_calls
    assert (record.status, record.order_id, record.name) == ("ok", 100, "open_long")
    assert json.loads(record.raw_arguments) == record.arguments
    assert llm.calls == 2 and out.llm_calls == 2  # the tool results get a short final answer
    assert out.messages[-1] == {"role": "assistant", "content": "Done: open_long ok."}
    assert set(out.node_timings) == {"gather_context", "decide", "execute_tools", "record"}
    assert all(v >= 0 for v in out.node_timings.values())
    assert out.prompt_tokens > 0 and out.completion_tokens > 0
    assert out.cost_usd == 0  # built-in models are free
    assert out.market_snapshot["symbols"]["BTC/USDT"]["price"] == "130"
    assert out.context["market"]["BTC/USDT"]["price"] == 130
    assert out.summary.startswith("executed: open_long BTC/USDT ok")
    assert out.model == "builtin:trend" and out.rounds == 1 and out.stopped_reason == ""


def test_builtin_hold_needs_no_executor_and_no_second_call():
    executor, llm = FakeExecutor(), CountingLLM(BuiltinModel())
    provider = FakeProvider({"BTC/USDT": (STRONG_UP, "100")})
    out = run_decision(inp(), provider=provider, executor=executor, llm=llm)
    assert out.status == "held"
    assert executor.calls == [] and llm.calls == 1
    [record] = out.tool_calls
    assert record.name == "hold" and record.status == "ok" and "overbought" in record.arguments["reason"]
    assert "overbought" in out.summary


def test_risk_rejection_is_fed_back_and_recorded():
    verdict = {"allowed": False, "rule": "max_position_percent", "message": "position would exceed 20% of equity"}
    executor = FakeExecutor(open_long=ToolOutcome("rejected", verdict, risk_event_id=42))
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=BuiltinModel())
    assert out.status == "rejected"
    [record] = out.tool_calls
    assert (record.status, record.risk_event_id, record.order_id) == ("rejected", 42, None)
    assert tool_message(out) == {"status": "rejected", "result": verdict}
    assert out.messages[-1]["content"] == "Done: open_long rejected."


def test_executor_crash_is_an_error_and_stops():
    executor, llm = FakeExecutor(open_long=RuntimeError("db is gone")), CountingLLM(BuiltinModel())
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=llm)
    assert out.status == "error"
    assert "open_long failed" in out.error and "db is gone" in out.error
    assert out.tool_calls[0].status == "error"
    assert llm.calls == 1  # nothing more is asked after a crash


def test_venue_error_outcome_without_any_success_is_an_error():
    executor = FakeExecutor(open_long=ToolOutcome("error", {"message": "venue unavailable"}))
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=BuiltinModel())
    assert out.status == "error" and "venue unavailable" in out.error


def test_context_failure_is_an_error_before_any_model_call():
    llm = CountingLLM(BuiltinModel())
    out = run_decision(inp(), provider=FakeProvider(account_error=TimeoutError("venue timeout")),
                       executor=FakeExecutor(), llm=llm)
    assert out.status == "error" and "gather_context" in out.error and "venue timeout" in out.error
    assert llm.calls == 0 and out.messages == []
    assert "gather_context" in out.node_timings


def test_one_symbol_down_still_trades_the_others_but_not_blind():
    executor = FakeExecutor()
    out = run_decision(inp(("BTC/USDT", "ETH/USDT")), provider=FakeProvider(fail={"ETH/USDT"}),
                       executor=executor, llm=BuiltinModel())
    assert out.status == "executed"
    assert out.context["market"]["ETH/USDT"] == {"unavailable": True}
    assert "venue down" in out.market_snapshot["symbols"]["ETH/USDT"]["error"]
    assert [c.arguments["symbol"] for c in executor.calls] == ["BTC/USDT"]


def test_llm_failure_is_an_error_never_an_exception():
    out = run_decision(inp(), provider=FakeProvider(), executor=FakeExecutor(), llm=FailingLLM())
    assert out.status == "error" and "HTTP 503" in out.error and out.llm_calls == 1


@pytest.mark.parametrize("bad", [
    dict(symbols=()),
    dict(now=datetime(2025, 3, 1, 12, 0)),  # naive
])
def test_bad_input_is_an_error_not_an_exception(bad):
    kw = {"symbols": ("BTC/USDT",), **bad}
    out = run_decision(inp(**kw), provider=FakeProvider(), executor=FakeExecutor(), llm=BuiltinModel())
    assert out.status == "error" and out.error


def test_broken_provider_data_never_escapes():
    class Broken(FakeProvider):
        def market(self, symbol):
            return None

    out = run_decision(inp(), provider=Broken(), executor=FakeExecutor(), llm=BuiltinModel())
    assert out.status == "error"


def test_budget_exceeded_before_the_first_call_sends_nothing():
    llm, executor, budget = CountingLLM(BuiltinModel()), FakeExecutor(), FakeBudget(calls_allowed=0)
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=llm, budget=budget)
    assert out.status == "budget_exceeded"
    assert "budget" in out.error and llm.calls == 0 and executor.calls == [] and budget.added == []
    assert out.stopped_reason == "budget"


def test_budget_exhausted_after_the_first_call_stops_the_loop():
    budget = FakeBudget(calls_allowed=1)
    out = run_decision(inp(), provider=FakeProvider(), executor=FakeExecutor(), llm=BuiltinModel(),
                       budget=budget)
    assert out.status == "executed"  # the order went through before the budget ran out
    assert out.llm_calls == 1 and out.stopped_reason == "budget"
    assert budget.checks == 2 and budget.added == [Decimal("0")]
    assert "budget" in out.summary


def test_graph_is_compiled_once():
    assert get_graph() is get_graph()


# --------------------------------------------------------------------------- fake OpenAI server


def test_openai_tool_call_executes_and_costs(server):
    server.script(server.tool_calls(("open_long", open_args())), server.reply("Opened a small long."))
    executor, budget = FakeExecutor(), FakeBudget()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor,
                       llm=openai_llm(server), budget=budget)
    assert out.status == "executed", out.error
    assert len(server.requests) == 2 and len(executor.calls) == 1
    assert executor.calls[0].arguments == open_args()
    first, second = server.requests
    assert first.body["tool_choice"] == "auto"
    tools = {t["function"]["name"]: t["function"] for t in first.tools}
    assert set(tools) == {"open_long", "open_short", "close_long", "close_short", "cancel_order", "set_leverage",
                          "hold", "get_positions", "get_balance", "get_market_data"}
    for fn in tools.values():
        params = fn["parameters"]
        assert fn["strict"] is True and params["additionalProperties"] is False
        assert sorted(params["required"]) == sorted(params["properties"])
    assert tools["open_long"]["parameters"]["properties"]["symbol"]["enum"] == ["BTC/USDT"]
    assert tools["open_long"]["parameters"]["properties"]["leverage"]["maximum"] == 3
    assert second.messages[-1]["role"] == "tool" and json.loads(second.messages[-1]["content"])["status"] == "ok"
    usage = [r["usage"] for r in out.raw_replies]
    assert out.prompt_tokens == sum(u["prompt_tokens"] for u in usage)
    assert out.completion_tokens == sum(u["completion_tokens"] for u in usage)
    assert out.cost_usd > 0 and sum(budget.added) == out.cost_usd and budget.checks == 2
    assert out.messages[-1] == {"role": "assistant", "content": "Opened a small long."}


def test_openai_plain_reply_is_held(server):
    server.script(server.reply("Market is choppy; waiting."))
    executor = FakeExecutor()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert out.status == "held" and executor.calls == [] and out.tool_calls == []
    assert out.summary == "held: Market is choppy; waiting."


def test_malformed_arguments_are_invalid_and_reported_to_the_model(server):
    server.script(server.malformed_arguments("open_long"), server.reply("Sorry."))
    executor = FakeExecutor()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert executor.calls == [] and out.status == "held"
    [record] = out.tool_calls
    assert record.status == "invalid" and record.arguments == {}
    assert record.raw_arguments.startswith('{"symbol": "BTC/USDT"')
    sent = json.loads(server.requests[1].messages[-1]["content"])
    assert sent["status"] == "invalid" and "not valid JSON" in sent["result"]["error"]


def test_unknown_tool_is_invalid(server):
    server.script(server.unknown_tool("withdraw_funds"), server.reply("ok"))
    executor = FakeExecutor()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert executor.calls == []
    [record] = out.tool_calls
    assert record.status == "invalid" and "unknown tool 'withdraw_funds'" in record.result["error"]


@pytest.mark.parametrize(("name", "args", "error"), [
    ("open_long", open_args(leverage=50), "leverage must be at most 3"),
    ("open_long", open_args(quantity=0.5), "exactly one of quantity or usd_notional"),
    ("open_long", open_args(usd_notional=None), "exactly one of quantity or usd_notional"),
    ("open_long", open_args(usd_notional=-100), "usd_notional must be greater than 0"),
    ("open_short", open_args(usd_notional=0, stop_loss=None, take_profit=None), "greater than 0"),
    ("open_long", open_args(stop_loss=135), "stop_loss 135 must be below the entry price"),
    ("open_short", open_args(stop_loss=150, take_profit=140), "take_profit 140 must be below"),
    ("open_long", open_args(symbol="DOGE/USDT"), "not one of this agent's symbols"),
    ("open_long", {**open_args(), "reduce_only": True}, "unexpected argument"),
    ("open_long", {k: v for k, v in open_args().items() if k != "leverage"}, "missing argument(s): leverage"),
    ("open_long", open_args(usd_notional="lots"), "usd_notional must be number or null"),
    ("open_long", open_args(order_type="limit"), "a limit order needs limit_price"),
    ("open_long", open_args(order_type="stop"), "order_type must be one of"),
    ("close_long", {"symbol": "BTC/USDT", "quantity": None, "usd_notional": None, "order_type": None,
                    "limit_price": None}, "exactly one of quantity or usd_notional"),
    ("set_leverage", {"symbol": "BTC/USDT", "leverage": 10}, "at most 3"),
    ("cancel_order", {"order_id": 0}, "at least 1"),
])
def test_orders_outside_the_limits_never_reach_the_executor(server, name, args, error):
    server.script(server.tool_calls((name, args)), server.reply("Understood."))
    executor = FakeExecutor()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert executor.calls == [], "an invalid call reached the executor"
    [record] = out.tool_calls
    assert record.status == "invalid" and error in record.result["error"], record.result
    assert out.status == "held"
    sent = json.loads(server.requests[1].messages[-1]["content"])
    assert error in sent["result"]["error"]


def test_limit_order_with_stops_on_the_right_side_is_valid(server):
    args = open_args(order_type="limit", limit_price=125, stop_loss=124, take_profit=129)  # price is 130
    server.script(server.tool_calls(("open_long", args)), server.reply("Resting bid placed."))
    executor = FakeExecutor()
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert out.status == "executed" and executor.calls[0].decimal("limit_price") == Decimal("125")


def test_tool_calls_forever_stop_at_the_round_bound(server):
    server.script(server.forever(server.tool_calls(("get_balance", {}))))
    executor = FakeExecutor(get_balance=ToolOutcome("ok", {"available": "9000"}))
    out = run_decision(inp(model="gpt-4o-mini", max_tool_rounds=3), provider=FakeProvider(), executor=executor,
                       llm=openai_llm(server))
    assert len(server.requests) == 3 and len(executor.calls) == 3
    assert out.rounds == 3 and out.llm_calls == 3 and out.stopped_reason == "round_limit"
    assert out.status == "held"  # reads only
    assert [(r.index, r.round) for r in out.tool_calls] == [(0, 0), (1, 1), (2, 2)]
    assert "tool-round limit (3)" in out.summary


def test_reads_go_through_the_executor_and_writes_in_later_rounds_count(server):
    server.script(
        server.tool_calls(("get_market_data", {"symbol": "BTC/USDT"}), ("get_positions", {})),
        server.tool_calls(("cancel_order", {"order_id": 12}), ("hold", {"reason": "wait for the close"})),
        server.reply("Cancelled the stale bid."),
    )
    executor = FakeExecutor(get_market_data=ToolOutcome("ok", {"price": "130"}),
                            get_positions=ToolOutcome("ok", {"positions": []}))
    provider = FakeProvider(orders=[OpenOrderInfo(12, "BTC/USDT", "BUY", "LIMIT", Decimal("0.01"), Decimal("90"))])
    out = run_decision(inp(model="gpt-4o-mini"), provider=provider, executor=executor, llm=openai_llm(server))
    assert [c.name for c in executor.calls] == ["get_market_data", "get_positions", "cancel_order"]
    assert [(c.index, c.round) for c in executor.calls] == [(0, 0), (1, 0), (2, 1)]
    assert out.status == "executed" and out.rounds == 2 and len(server.requests) == 3
    assert out.context["orders"] == [{"id": 12, "symbol": "BTC/USDT", "side": "BUY", "type": "LIMIT", "qty": 0.01,
                                      "price": 90}]


def test_too_many_calls_in_one_round_are_refused(server):
    server.script(server.tool_calls(*[("get_balance", {})] * 10), server.reply("ok"))
    executor = FakeExecutor(get_balance=ToolOutcome("ok", {}))
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=openai_llm(server))
    assert len(executor.calls) == 8
    assert [r.status for r in out.tool_calls[8:]] == ["invalid", "invalid"]
    # every call id is answered, or the next request would be refused by OpenAI
    assert len([m for m in server.requests[1].messages if m["role"] == "tool"]) == 10


def test_server_error_after_retries_is_an_error_status(server):
    server.script(server.forever(server.error(500, "upstream exploded", retry_after_ms=5)))
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=FakeExecutor(),
                       llm=openai_llm(server, max_retries=1))
    assert out.status == "error" and "HTTP 500" in out.error
    assert len(server.requests) == 2


def test_budget_exceeded_sends_nothing_to_the_server(server):
    server.script(server.reply("never"))
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=FakeExecutor(),
                       llm=openai_llm(server), budget=FakeBudget(calls_allowed=0))
    assert out.status == "budget_exceeded" and server.requests == []


def test_prompt_has_instructions_and_context_but_no_secret(server):
    server.script(server.tool_calls(("open_long", open_args())), server.reply("done"))
    provider = FakeProvider(positions=[PositionInfo("BTC/USDT", "LONG", Decimal("0.01"), Decimal("95"),
                                                    Decimal("130"), Decimal("0.35"), 2)])
    out = run_decision(inp(model="gpt-4o-mini"), provider=provider, executor=FakeExecutor(), llm=openai_llm(server))
    first = server.requests[0]
    system, instructions, context = first.messages
    assert system["role"] == "system" and "max leverage 5x" in system["content"] and "at most 3" in system["content"]
    assert instructions == {"role": "user", "content": f"Instructions from the account owner:\n{INSTRUCTIONS}"}
    assert context["content"].startswith("Context JSON:\n")
    ctx = json.loads(context["content"].split("\n", 1)[1])
    assert set(ctx["market"]["BTC/USDT"]) == {"price", "chg_pct", "tf", "ema9", "ema21", "rsi14", "atr14", "funding"}
    assert ctx["account"] == {"ccy": "USDT", "balance": 10000, "equity": 10025.5, "available": 9000}
    assert ctx["positions"][0]["side"] == "LONG" and ctx["recent"]
    assert ctx == out.context
    # the key travels only in the Authorization header
    for request in server.requests:
        assert KEY not in request.raw_text
        assert request.headers["authorization"] == f"Bearer {KEY}"
    dumped = json.dumps([out.messages, out.raw_replies, out.context, out.market_snapshot, out.summary, out.error,
                         [r.__dict__ for r in out.tool_calls]], default=str)
    assert KEY not in dumped and "SECRET-4242" not in dumped
