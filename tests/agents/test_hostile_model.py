"""A hostile OpenAI-compatible model, spoken to by the real openai client, through a whole
decision (``agent_decision_run``): whatever it answers, the Decision is closed with its
messages, tool calls and tokens, an invalid call places no order, and what is stored and
carried into later rounds stays bounded."""

from __future__ import annotations

import json

import pytest

from agents.graph.tokens import MAX_TOKEN_COUNT
from agents.graph.toolspec import MAX_CONTENT_CHARS
from agents.models import Decision, ToolCall
from agents.services import agent_decision_run
from tests.factories import make_agent
from tests.fakes.openai_server import USER_KEY
from trading.models import Order

pytestmark = pytest.mark.django_db
KEY = USER_KEY
OPEN = ('{"symbol": "BTC/USDT", "quantity": null, "usd_notional": %s, "leverage": %s, "stop_loss": null, '
        '"take_profit": null, "order_type": "market", "limit_price": null}')


def gpt_agent(user):
    return make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"], instructions="Trade.")


def assert_closed(decision: Decision) -> None:
    """The record step ran: not left running, with its conversation and tokens."""
    decision.refresh_from_db()
    assert decision.status not in (Decision.Status.RUNNING,), decision.error
    assert decision.finished_at is not None
    assert decision.messages and decision.raw_reply
    assert decision.prompt_tokens > 0 and decision.completion_tokens > 0
    json.dumps([decision.messages, decision.raw_reply], allow_nan=False)  # storable on PostgreSQL too


@pytest.mark.parametrize(("arguments", "error"), [
    (OPEN % ("NaN", "2"), "not valid JSON"),
    (OPEN % ("Infinity", "2"), "not valid JSON"),
    (OPEN % ("-Infinity", "2"), "not valid JSON"),
    (OPEN % ("1e308", "2"), "usd_notional must be at most 1000000000000000"),
    (OPEN % ("1e400", "2"), "not valid JSON"),
    (OPEN % ("100", "NaN"), "not valid JSON"),
    (OPEN % ("100", "2.0"), "leverage must be integer or null, got 2.0"),
    (OPEN % ("100", "true"), "leverage must be integer or null, got true"),
    (OPEN % ("true", "2"), "usd_notional must be number or null, got true"),
    (OPEN % ("1" + "0" * 40, "2"), "usd_notional must be at most"),
    (OPEN % ("1e-300", "2"), "usd_notional must be at least 1e-12"),
    (OPEN.replace('"BTC/USDT"', '["BTC/USDT"]') % ("100", "2"), "symbol must be string, got a list"),
    (OPEN.replace('"market"', '{"a": 1}') % ("100", "2"), "order_type must be string or null, got an object"),
    ('{"symbol": "BTC/USDT", "usd_notional": 100, "pad": "' + "x" * 9000 + '"}', "longer than 8192"),
])
def test_hostile_arguments_are_invalid_calls_and_the_decision_is_recorded(user, market, llm, arguments, error):
    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("open_long", arguments)), llm.reply("Understood."))
    decision = agent_decision_run(agent=agent)
    assert_closed(decision)
    assert decision.status == Decision.Status.HELD, decision.error
    call = ToolCall.objects.get(decision=decision)
    assert call.status == "invalid" and call.order is None
    assert error in call.result["error"], call.result
    assert call.raw_arguments  # the model's text is kept for the audit
    assert not Order.objects.exists()
    # The error went back to the model in the next round.
    sent = json.loads(next(m for m in llm.requests[1].messages if m["role"] == "tool")["content"])
    assert sent["status"] == "invalid" and error in sent["result"]["error"]


def test_cancel_with_a_float_or_huge_order_id_is_invalid(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("cancel_order", '{"order_id": 1.0}'), ("cancel_order", '{"order_id": 1e30}'),
                              ("cancel_order", '{"order_id": 99999999999999999999999}')),
               llm.reply("ok"))
    decision = agent_decision_run(agent=agent)
    assert_closed(decision)
    calls = list(ToolCall.objects.filter(decision=decision).order_by("index"))
    assert [c.status for c in calls] == ["invalid"] * 3
    assert "order_id must be integer, got 1.0" in calls[0].result["error"]
    assert "order_id must be integer" in calls[1].result["error"]
    assert "order_id must be at most" in calls[2].result["error"]


@pytest.mark.parametrize(("prompt", "completion", "why"), [
    ("-5", "-7", "negative"),
    (str(10**20), str(10**20), "not below"),
    (str(MAX_TOKEN_COUNT), "3", "not below"),
    ("12.5", "3.0", "not an integer"),
    ('"12"', '"abc"', "not an integer"),
    ("NaN", "Infinity", "not an integer"),
    ("true", "null", "not an integer"),
])
def test_hostile_usage_is_replaced_by_the_estimate_and_flagged(user, market, llm, prompt, completion, why):
    agent = gpt_agent(user)
    item = llm.reply("Nothing to do.", usage={"prompt_tokens": "@@p@@", "completion_tokens": "@@c@@",
                                              "total_tokens": 1})
    llm.script(llm.raw_completion(item, p=prompt, c=completion))
    decision = agent_decision_run(agent=agent)
    assert_closed(decision)
    assert decision.status == Decision.Status.HELD, decision.error
    assert 50 < decision.prompt_tokens < 100_000  # the estimate of what was sent
    assert 0 < decision.completion_tokens < 1000
    assert 0 < decision.cost_usd < 1
    check = decision.raw_reply[0]["alpha_usage_check"]
    assert why in check["prompt_tokens"]
    assert ("completion_tokens" in check) == (completion not in ("null", "3"))  # null: not reported


def test_a_custom_tool_call_naming_a_function_is_never_executed(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.custom_tool_call("open_long", OPEN % ("500", "2")), llm.reply("ok"))
    decision = agent_decision_run(agent=agent)
    assert_closed(decision)
    assert decision.status == Decision.Status.HELD, decision.error
    call = ToolCall.objects.get(decision=decision)
    assert call.name == "open_long" and call.status == "invalid" and call.order is None
    assert "only function calls are executed" in call.result["error"]
    assert not Order.objects.exists()
    # Carried back as what it was, a custom call, with the refusal as its result.
    assistant = next(m for m in llm.requests[1].messages if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["type"] == "custom"


def test_every_request_bounds_the_reply(user, market, llm, settings):
    settings.LLM_MAX_COMPLETION_TOKENS = 700
    agent = gpt_agent(user)
    llm.script(llm.reply("ok"))
    agent_decision_run(agent=agent)
    (request,) = llm.requests
    assert request.body["max_tokens"] == 700  # an OpenAI-compatible server reads max_tokens


def test_a_reply_over_the_size_bound_is_an_error_and_not_stored(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.reply("x" * 1_000_000))
    decision = agent_decision_run(agent=agent)
    decision.refresh_from_db()
    assert decision.status == Decision.Status.ERROR and "larger than" in decision.error, decision.error
    stored = json.dumps([decision.messages, decision.raw_reply, decision.summary, decision.error])
    assert len(stored) < 50_000
    assert len(llm.requests) == 1


def test_long_model_text_is_clipped_in_later_rounds_and_in_storage(user, market, llm):
    agent = gpt_agent(user)
    big = "y" * 200_000  # under the body bound: read, but only its start is kept
    llm.script(llm.tool_calls(("get_balance", {}), content=big), llm.reply("z" * 200_000))
    decision = agent_decision_run(agent=agent)
    assert_closed(decision)
    carried = next(m for m in llm.requests[1].messages if m["role"] == "assistant")
    assert len(carried["content"]) < MAX_CONTENT_CHARS + 100 and "truncated: 200000 characters" in carried["content"]
    assert len(json.dumps(llm.requests[1].messages)) < 60_000
    stored = json.dumps([decision.messages, decision.raw_reply])
    assert len(stored) < 80_000, len(stored)
    assert "truncated: 200000 characters" in decision.raw_reply[1]["choices"][0]["message"]["content"]


# --------------------------------------------------------------------------- the graph's own defence


class _ForeignLLM:
    """A model client other than ours (a plugin, a future client) answering what a hostile
    server would: the graph must not trust its counts, texts or call types either."""

    def __init__(self, replies):
        self.replies = list(replies)

    def complete(self, messages, tools, **kw):
        return self.replies.pop(0)


@pytest.mark.parametrize("tokens", [-5, 10**20, float("nan"), "abc", 12.5, None])
def test_the_graph_estimates_tokens_a_client_reports_badly(tokens):
    from agents.graph import run_decision
    from agents.graph.contracts import LLMReply, LLMToolCall
    from tests.agents.test_graph import FakeExecutor, FakeProvider, inp, open_args

    executor = FakeExecutor()
    llm = _ForeignLLM([
        LLMReply(content="c" * 30_000, prompt_tokens=tokens, completion_tokens=tokens, model="m",
                 tool_calls=[LLMToolCall("x1", "open_long", json.dumps(open_args()), "custom"),
                             ("x2", "hold", '{"reason": "r"}')]),
        LLMReply(content="done", tool_calls=[], prompt_tokens=10, completion_tokens=2, model="m"),
    ])
    out = run_decision(inp(model="gpt-4o-mini"), provider=FakeProvider(), executor=executor, llm=llm)
    assert out.status == "held", out.error
    assert executor.calls == []  # the custom call was refused, the hold needs no executor
    assert [r.status for r in out.tool_calls] == ["invalid", "ok"]
    assert out.prompt_tokens > 10 and out.completion_tokens > 2
    assert isinstance(out.prompt_tokens, int) and out.prompt_tokens < 10**7
    if tokens is not None:
        assert "graph_usage_check" in out.raw_replies[0]
    first = next(m for m in out.messages if m["role"] == "assistant")
    assert 8000 <= len(first["content"]) < MAX_CONTENT_CHARS + 100  # the assistant's text, clipped
    assert first["tool_calls"][0]["type"] == "custom"
