"""The OpenAI-compatible client against the local fake server (the real openai SDK)."""

from __future__ import annotations

import json
import time

import openai
import pytest

from agents.graph.toolspec import build_tools
from agents.llm import (
    BuiltinModel,
    LLMError,
    LLMRequestError,
    LLMTemporaryError,
    OpenAIChatClient,
    make_llm,
)
from alpha_platform.common.secrets import Secret
from tests.fakes.openai_server import FakeOpenAIServer

KEY = "sk-test-9f8e7d6c5b4a-never-in-prompts"
MESSAGES = [{"role": "system", "content": "You trade."}, {"role": "user", "content": "Context JSON:\n{}"}]
TOOLS = build_tools(["BTC/USDT"], 3)


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


def client(server, *, key=KEY, timeout=2.0, max_retries=1):
    return OpenAIChatClient(key, server.url + "/v1", "gpt-4o-mini", timeout, max_retries, http_client=server.http)


def test_tool_calls_are_parsed_with_usage(server):
    args = {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 100, "leverage": 2, "stop_loss": None,
            "take_profit": None, "order_type": "market", "limit_price": None}
    server.script(server.tool_calls(("open_long", args), ("hold", {"reason": "x"}), content="thinking",
                                    usage={"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}))
    with client(server) as c:
        reply = c.complete(MESSAGES, TOOLS)
    assert [tc.name for tc in reply.tool_calls] == ["open_long", "hold"]
    assert json.loads(reply.tool_calls[0].arguments) == args
    assert reply.tool_calls[0].id.startswith("call_")
    assert (reply.prompt_tokens, reply.completion_tokens) == (321, 45)
    assert reply.content == "thinking"
    assert reply.model == "gpt-4o-mini"
    assert reply.raw["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "open_long"
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["tool_choice"] == "auto"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.messages == MESSAGES
    assert all(t["function"]["strict"] is True for t in request.tools)


def test_plain_reply_and_no_tools_sent(server):
    server.script(server.reply("Holding."))
    with client(server) as c:
        reply = c.complete(MESSAGES, [])
    assert reply.content == "Holding." and reply.tool_calls == []
    assert "tools" not in server.requests[0].body and "tool_choice" not in server.requests[0].body


def test_usage_is_estimated_when_the_server_gives_none(server):
    server.script(server.reply("Holding.", usage=None))
    with client(server) as c:
        reply = c.complete(MESSAGES, TOOLS)
    assert "usage" not in reply.raw
    assert reply.prompt_tokens > 50  # the tools alone are a few hundred tokens
    assert reply.completion_tokens >= 1


def test_rate_limit_then_success_is_retried(server):
    server.script(server.error(429, "slow down", retry_after_ms=10), server.reply("ok"))
    with client(server, max_retries=2) as c:
        reply = c.complete(MESSAGES, TOOLS)
    assert reply.content == "ok"
    assert len(server.requests) == 2


def test_server_error_is_retried_then_temporary(server):
    server.script(server.forever(server.error(500, "boom", retry_after_ms=10)))
    with client(server, max_retries=2) as c, pytest.raises(LLMTemporaryError) as info:
        c.complete(MESSAGES, TOOLS)
    assert info.value.status_code == 500
    assert len(server.requests) == 3  # the first try and two retries


def test_bad_request_is_not_retried(server):
    server.script(server.error(400, "Invalid schema for function 'open_long'"), server.reply("never"))
    with client(server, max_retries=2) as c, pytest.raises(LLMRequestError) as info:
        c.complete(MESSAGES, TOOLS)
    assert info.value.status_code == 400
    assert "Invalid schema" in str(info.value)
    assert len(server.requests) == 1


def test_wrong_key_is_a_request_error_that_does_not_echo_the_key(server):
    wrong = "sk-wrong-key-123456789"
    with client(server, key=Secret(wrong), max_retries=2) as c, pytest.raises(LLMRequestError) as info:
        c.complete(MESSAGES, TOOLS)
    assert info.value.status_code == 401
    assert wrong not in str(info.value) and wrong not in repr(c)
    assert len(server.requests) == 1 and not server.requests[0].authorized


def test_timeout_is_temporary_and_bounded(server):
    server.script(server.delayed(server.reply("late"), 20.0))
    started = time.monotonic()
    with client(server, timeout=0.3, max_retries=0) as c, pytest.raises(LLMTemporaryError, match="timed out"):
        c.complete(MESSAGES, TOOLS)
    assert time.monotonic() - started < 10.0  # cut short by the timeout, not the 20 s reply
    assert len(server.requests) == 1


def test_timeout_is_retried_once_within_bounds(server):
    server.script(server.forever(server.delayed(server.reply("late"), 20.0)))
    started = time.monotonic()
    with client(server, timeout=0.2, max_retries=1) as c, pytest.raises(LLMTemporaryError):
        c.complete(MESSAGES, TOOLS)
    # two 0.2 s attempts and one SDK backoff: far less than one 20 s reply
    assert time.monotonic() - started < 10.0
    assert len(server.requests) == 2


def test_unreachable_server_is_temporary():
    c = OpenAIChatClient(KEY, "http://127.0.0.1:9/v1", "gpt-4o-mini", 0.5, 0)
    with pytest.raises(LLMTemporaryError):
        c.complete(MESSAGES, TOOLS)


def test_secret_keys_are_accepted_and_never_shown(server):
    server.script(server.reply("ok"))
    c = OpenAIChatClient(Secret(KEY), server.url + "/v1", "gpt-4o-mini", 2.0, 0)
    assert c.complete(MESSAGES, []).content == "ok"
    assert KEY not in repr(c)
    assert server.requests[0].authorized


def test_error_hierarchy():
    assert issubclass(LLMTemporaryError, LLMError) and issubclass(LLMRequestError, LLMError)


def test_make_llm_picks_the_model(server):
    assert isinstance(make_llm("builtin:trend"), BuiltinModel)
    with pytest.raises(LLMRequestError):
        make_llm("builtin:nope")
    with pytest.raises(LLMRequestError):
        make_llm("gpt-4o-mini", api_key="")
    llm = make_llm("gpt-4o-mini", Secret(KEY), server.url + "/v1", timeout=1.0, max_retries=0)
    assert isinstance(llm, OpenAIChatClient) and llm.model == "gpt-4o-mini"
    llm.close()


# --------------------------------------------------------------------------- hostile replies, bounds


@pytest.fixture
def guarded(server):
    """The client as the platform builds it: its own guarded HTTP client (no redirects, the
    body bound, the per-call deadline on every socket operation)."""
    def build(*, timeout=5.0, max_retries=0, **kw):
        return OpenAIChatClient(KEY, server.url + "/v1", "gpt-4o-mini", timeout, max_retries, **kw)
    return build


def test_custom_tool_calls_keep_their_type(server):
    server.script(server.custom_tool_call("open_long", '{"symbol": "BTC/USDT"}'))
    with client(server) as c:
        reply = c.complete(MESSAGES, TOOLS)
    (call,) = reply.tool_calls
    assert (call.name, call.kind, call.arguments) == ("open_long", "custom", '{"symbol": "BTC/USDT"}')


def test_function_calls_are_of_kind_function(server):
    server.script(server.tool_calls(("hold", {"reason": "x"})))
    with client(server) as c:
        assert c.complete(MESSAGES, TOOLS).tool_calls[0].kind == "function"


@pytest.mark.parametrize(("usage", "flagged"), [
    ({"prompt_tokens": -1, "completion_tokens": 5}, {"prompt_tokens"}),
    ({"prompt_tokens": 10**12, "completion_tokens": 10**15}, {"prompt_tokens", "completion_tokens"}),
    ({"prompt_tokens": 3.5, "completion_tokens": "7"}, {"prompt_tokens", "completion_tokens"}),
    ({"prompt_tokens": True, "completion_tokens": 5}, {"prompt_tokens"}),
])
def test_insane_usage_is_estimated_and_flagged(server, usage, flagged):
    server.script(server.reply("ok", usage=usage))
    with client(server) as c:
        reply = c.complete(MESSAGES, TOOLS)
    assert set(reply.raw["alpha_usage_check"]) == flagged
    assert isinstance(reply.prompt_tokens, int) and 50 < reply.prompt_tokens < 100_000
    assert isinstance(reply.completion_tokens, int) and 0 <= reply.completion_tokens < 1000
    if "completion_tokens" not in flagged:
        assert reply.completion_tokens == 5


def test_every_request_asks_for_a_bounded_reply(server):
    server.script(server.reply("ok"), server.reply("ok"))
    with client(server) as c:
        c.complete(MESSAGES, TOOLS)
    with OpenAIChatClient(KEY, server.url + "/v1", "m", 2.0, 0, http_client=server.http,
                          max_completion_tokens=300) as c:
        c.complete(MESSAGES, TOOLS)
    assert [r.body.get("max_tokens") for r in server.requests] == [1024, 300]
    # OpenAI itself gets the parameter its newer models require (nothing is sent here).
    official = OpenAIChatClient(KEY, None, "gpt-4o-mini", 2.0, 0)
    assert official._token_param == "max_completion_tokens"
    official.close()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_a_spent_time_bound_sends_nothing(server, timeout):
    server.script(server.forever(server.reply("never")))
    with client(server) as c, pytest.raises(LLMTemporaryError, match="no time left"):
        c.complete(MESSAGES, TOOLS, timeout=timeout)
    assert server.requests == []
    with pytest.raises(LLMTemporaryError, match="no time left"):
        BuiltinModel().complete(MESSAGES, TOOLS, timeout=timeout)


def test_the_time_bound_holds_retries_and_their_waits(server, guarded):
    server.script(server.forever(server.error(500, "boom", retry_after_ms=300)))
    started = time.monotonic()
    with guarded(max_retries=10) as c, pytest.raises(LLMTemporaryError):
        c.complete(MESSAGES, TOOLS, timeout=0.8)
    elapsed = time.monotonic() - started
    # Ten retries 0.3 s apart would take 3 s or more; the bound stops them at 0.8 s.
    assert elapsed < 2.5 and 2 <= len(server.requests) <= 4


def test_a_retry_after_beyond_the_bound_is_not_waited_for(server, guarded):
    server.script(server.forever(server.error(429, "slow down", retry_after_ms=30_000)))
    started = time.monotonic()
    with guarded(max_retries=3) as c, pytest.raises(LLMTemporaryError) as info:
        c.complete(MESSAGES, TOOLS, timeout=2.0)
    assert time.monotonic() - started < 10.0 and info.value.status_code == 429
    assert len(server.requests) == 1


def test_the_time_bound_cuts_a_trickling_reply(server, guarded):
    # Each 64-byte piece arrives well within the read timeout (5 s), the whole body in ~30 s.
    server.script(server.trickled(server.reply("t" * 1500), 0.2))
    started = time.monotonic()
    with guarded(timeout=5.0) as c, pytest.raises(LLMTemporaryError, match="timed out"):
        c.complete(MESSAGES, TOOLS, timeout=1.0)
    assert time.monotonic() - started < 5.0


def test_the_time_bound_lets_a_normal_reply_through_and_retries_within_it(server, guarded):
    server.script(server.error(500, "boom", retry_after_ms=10), server.reply("ok"))
    with guarded(max_retries=2) as c:
        assert c.complete(MESSAGES, TOOLS, timeout=5.0).content == "ok"
    assert len(server.requests) == 2


def test_redirects_are_not_followed(guarded):
    with FakeOpenAIServer(api_key=KEY) as target, FakeOpenAIServer(api_key=KEY) as origin:
        target.script(target.forever(target.reply("followed")))
        origin.script(origin.redirect(target.url + "/v1/chat/completions"))
        with OpenAIChatClient(KEY, origin.url + "/v1", "m", 2.0, 0) as c, \
                pytest.raises(LLMRequestError, match="redirect"):
            c.complete(MESSAGES, TOOLS)
        assert target.requests == [] and len(origin.requests) == 1


def test_a_reply_over_the_body_bound_is_refused(server, guarded):
    server.script(server.reply("x" * 5000))
    with guarded(max_response_bytes=4096) as c, pytest.raises(LLMError, match="larger than 4096 bytes"):
        c.complete(MESSAGES, TOOLS)


def test_a_compressed_reply_is_refused(server, guarded):
    item = server.reply("ok")
    item.headers["Content-Encoding"] = "gzip"
    server.script(item)
    with guarded() as c, pytest.raises(LLMError, match="compressed"):
        c.complete(MESSAGES, TOOLS)
    assert server.requests[0].headers["accept-encoding"] == "identity"


def test_long_text_is_clipped_in_the_reply_and_its_raw_record(server):
    server.script(server.tool_calls(("hold", {"reason": "r" * 20_000}), content="c" * 50_000))
    with client(server) as c:
        reply = c.complete(MESSAGES, TOOLS)
    assert len(reply.content) < 8100 and reply.content.endswith("[truncated: 50000 characters]")
    assert len(reply.tool_calls[0].arguments) < 8300 and "truncated" in reply.tool_calls[0].arguments
    assert len(json.dumps(reply.raw)) < 20_000
