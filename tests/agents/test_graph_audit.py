"""The graph's DecisionRecorder port and its own deadline, without a database: every tool call
is written (pending) before the executor sees it, every reply's spend as it comes, and neither
a model call nor an order starts past the deadline or once the recorder says stop."""

from __future__ import annotations

import time
from decimal import Decimal

from agents.graph import ToolOutcome, run_decision
from agents.llm import BuiltinModel
from tests.agents.test_graph import CountingLLM, FakeExecutor, FakeProvider, inp


class Recorder:
    def __init__(self, *, fail_pending=False, stop_after_replies=None):
        self.events, self.fail_pending, self.stop_after_replies = [], fail_pending, stop_after_replies

    def llm_reply(self, *, prompt_tokens, completion_tokens, cost, model, llm_calls):
        self.events.append(("reply", prompt_tokens, completion_tokens, cost))

    def tool_call(self, record):
        if self.fail_pending and record.status == "pending":
            raise OSError("database gone")
        self.events.append(("tool", record.index, str(record.status), record.order_id))

    def active(self):
        replies = sum(1 for e in self.events if e[0] == "reply")
        if self.stop_after_replies is not None and replies >= self.stop_after_replies:
            return "the agent's lock was lost"
        return ""


class WatchingExecutor(FakeExecutor):
    """Checks, when called, that the audit row already exists."""

    def __init__(self, recorder):
        super().__init__()
        self.recorder, self.seen = recorder, []

    def execute(self, call):
        self.seen.append(("tool", call.index, "pending", None) in self.recorder.events)
        return super().execute(call)


class Pricing:
    def cost(self, model, prompt_tokens, completion_tokens):
        return Decimal("0.001")


def test_each_call_is_written_pending_before_it_executes_and_again_with_its_order():
    recorder = Recorder()
    executor = WatchingExecutor(recorder)
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=BuiltinModel(),
                       pricing=Pricing(), recorder=recorder)
    assert out.status == "executed", out.error
    assert executor.seen == [True]
    tools = [e for e in recorder.events if e[0] == "tool"]
    assert tools == [("tool", 0, "pending", None), ("tool", 0, "ok", 100)]
    replies = [e for e in recorder.events if e[0] == "reply"]
    assert len(replies) == out.llm_calls == 2 and all(e[3] == Decimal("0.001") for e in replies)
    assert recorder.events.index(replies[0]) < recorder.events.index(tools[0])  # spend first, then act


def test_a_call_whose_audit_row_cannot_be_written_is_not_executed():
    recorder = Recorder(fail_pending=True)
    executor = FakeExecutor()
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=BuiltinModel(), recorder=recorder)
    assert executor.calls == []
    assert out.status == "error" and "audit could not be written" in out.error
    assert out.tool_calls[0].status == "error" and out.tool_calls[0].order_id is None


def test_when_the_recorder_says_stop_no_order_is_sent():
    recorder = Recorder(stop_after_replies=1)
    executor = FakeExecutor()
    llm = CountingLLM(BuiltinModel())
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=llm, recorder=recorder)
    assert executor.calls == [] and llm.calls == 1
    assert out.status == "error" and "lock was lost" in out.error


def test_no_model_call_past_the_deadline():
    llm = CountingLLM(BuiltinModel())
    out = run_decision(inp(deadline=time.monotonic() - 1, time_limit=8), provider=FakeProvider(),
                       executor=FakeExecutor(), llm=llm)
    assert llm.calls == 0
    assert out.status == "error" and out.error == "time limit of 8 s reached"


def test_each_model_call_is_bounded_by_the_time_left():
    llm = CountingLLM(BuiltinModel())
    run_decision(inp(deadline=time.monotonic() + 30, time_limit=30), provider=FakeProvider(),
                 executor=FakeExecutor(), llm=llm)
    assert llm.calls == 2 and all(0 < t <= 30 for t in llm.timeouts)
    assert llm.timeouts[1] <= llm.timeouts[0]


def test_no_order_is_sent_once_the_deadline_passed_during_the_model_call():
    class SlowBuiltin(BuiltinModel):
        def complete(self, messages, tools, *, timeout=None):
            reply = super().complete(messages, tools, timeout=timeout)
            time.sleep(max(0.0, timeout or 0) + 0.01)  # answers just after the deadline
            return reply

    executor = FakeExecutor()
    out = run_decision(inp(deadline=time.monotonic() + 0.2, time_limit=0.2), provider=FakeProvider(),
                       executor=executor, llm=SlowBuiltin())
    assert executor.calls == []
    assert out.status == "error" and "time limit of 0.2 s reached" in out.error
    assert out.tool_calls[0].status == "error" and "not executed" in out.tool_calls[0].result["error"]


def test_an_executor_outcome_reaches_the_recorder_even_when_a_later_round_fails():
    recorder = Recorder()

    class FailSecond(CountingLLM):
        def complete(self, messages, tools, *, timeout=None):
            if self.calls >= 1:
                self.calls += 1
                raise RuntimeError("boom")
            return super().complete(messages, tools, timeout=timeout)

    executor = FakeExecutor(open_long=ToolOutcome("ok", {"order": 7}, order_id=7))
    out = run_decision(inp(), provider=FakeProvider(), executor=executor, llm=FailSecond(BuiltinModel()),
                       recorder=recorder)
    assert out.status == "error"
    assert ("tool", 0, "ok", 7) in recorder.events
