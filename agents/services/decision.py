"""One decision: the tick (lock, redelivery, deadline), the run through the graph, its
final record, and the sweep of decisions abandoned by a stopped worker."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agents.context import AgentContext, AgentToolExecutor
from agents.graph import run_decision
from agents.graph.contracts import DecisionInput
from agents.graph.toolspec import ORDER_TOOLS
from agents.llm import make_llm
from agents.models import AgentConfig, Decision, LLMCredential, ToolCall
from agents.pricing import load_pricing
from agents.services.audit import DecisionAudit
from agents.services.lifecycle import llm_outbound_policy
from agents.services.lock import AgentLock
from agents.services.spend import MonthlyBudget
from alpha_platform.common import outbound
from alpha_platform.common.errors import CredentialsError
from alpha_platform.common.realtime import send_to_user_on_commit
from alpha_platform.common.safe_json import clean_text, json_safe
from exchanges.services import trader_for_account
from risk.models import RiskProfile
from risk.services import user_halt_active
from trading.models import Order
from trading.services import client_order_id_for

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- one decision
_http = {"client": None, "pid": 0}
_http_lock = threading.Lock()


def _shared_http_client() -> Any:
    """One HTTP connection pool per worker process for every OpenAI-compatible call: building
    an ``openai`` client with its own pool (and TLS context) cost ~45 ms of CPU per decision.
    httpx clients are thread-safe; a forked child builds its own."""
    with _http_lock:
        if _http["client"] is None or _http["pid"] != os.getpid():
            # The SSRF guard (llm_outbound_policy) checked at connect time, no redirects
            # followed, the reply's size bounded.
            _http["client"] = outbound.guarded_http_client(llm_outbound_policy(),
                                                           max_response_bytes=settings.LLM_MAX_RESPONSE_BYTES)
            _http["pid"] = os.getpid()
        return _http["client"]


def _llm_for(agent: AgentConfig, *, deadline: float | None = None) -> tuple[Any, str]:
    """The model client, and the model name actually used (the built-in one when no key
    or server is configured for an OpenAI model name). A user's URL is checked with its
    lookup bounded by LLM_TIMEOUT_SECONDS and the decision's ``deadline`` (monotonic)."""
    if agent.is_builtin_model:
        return make_llm(agent.model_name), agent.model_name
    api_key, base_url = settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
    own = LLMCredential.objects.filter(owner_id=agent.owner_id).first()
    if own is not None and own.api_key_encrypted:
        api_key = own.credentials()["api_key"]
        if own.base_url:  # a user's URL: checked now (and by the HTTP client at connect time)
            bound = float(settings.LLM_TIMEOUT_SECONDS)
            if deadline is not None:
                bound = min(bound, deadline - time.monotonic())
            llm_outbound_policy().check_url(own.base_url, timeout=bound)
        base_url = own.base_url or base_url
    if not api_key and not base_url:
        return make_llm("builtin:trend"), "builtin:trend"
    return make_llm(agent.model_name, api_key or "not-needed", base_url or None,
                    timeout=settings.LLM_TIMEOUT_SECONDS, max_retries=settings.LLM_MAX_RETRIES,
                    http_client=_shared_http_client(),
                    max_completion_tokens=settings.LLM_MAX_COMPLETION_TOKENS), agent.model_name


_pricing = None


def _pricing_table():
    global _pricing
    if _pricing is None:
        _pricing = load_pricing(settings.ALPHA_CONFIG_DIR / "llm_pricing.yaml")
    return _pricing


def decision_skip(*, agent: AgentConfig, reason: str, trigger: str = Decision.Trigger.SCHEDULE,
                  tick_id: str | None = None) -> Decision:
    now = timezone.now()
    try:
        with transaction.atomic():
            decision = Decision.objects.create(agent=agent, owner_id=agent.owner_id, status=Decision.Status.SKIPPED,
                                               trigger=trigger, model_name=agent.model_name, started_at=now,
                                               finished_at=now, summary=reason[:500], tick_id=tick_id or None)
            _decision_event(decision)
    except IntegrityError:
        existing = Decision.objects.filter(tick_id=tick_id).first() if tick_id else None
        if existing is None:
            raise
        return existing  # this tick already has its decision
    return decision


def _decision_event(decision: Decision) -> None:
    send_to_user_on_commit(decision.owner_id, {"type": "decision", "decision": {
        "id": decision.pk, "agent_id": decision.agent_id, "status": decision.status, "summary": decision.summary,
        "started_at": decision.started_at, "finished_at": decision.finished_at, "cost_usd": decision.cost_usd,
        "prompt_tokens": decision.prompt_tokens, "completion_tokens": decision.completion_tokens}})


# --------------------------------------------------------------------------- one tick
def _deadline_passed(decision: Decision, now: datetime) -> bool:
    deadline = decision.deadline_at or decision.started_at + timedelta(seconds=settings.AGENT_TICK_TIME_LIMIT)
    return now > deadline


def agent_tick_run(*, agent_id: int, trigger: str = Decision.Trigger.SCHEDULE, tick_id: str | None = None,
                   started: float | None = None) -> int | None:
    """One tick as the worker runs it: a redelivered tick (same ``tick_id``) never runs a
    second decision; the per-agent lock is held, renewed, for as long as the decision runs;
    a tick that finds it taken is recorded as skipped.

    The tick id is claimed first (its Decision row, unique on ``tick_id``), and only then is
    the lock tried: two deliveries of one tick racing each other are settled by the row, so
    the one that loses never records the tick as skipped over the one that runs it."""
    started = time.monotonic() if started is None else started
    agent = AgentConfig.objects.select_related("account", "owner").filter(pk=agent_id).first()
    if agent is None:
        return None
    if tick_id:
        existing = Decision.objects.filter(tick_id=tick_id).first()
        if existing is not None:  # delivered again (a worker died or the broker redelivered)
            return _tick_redelivered(existing, agent_id)
    if trigger == Decision.Trigger.SCHEDULE and agent.status != AgentConfig.Status.ACTIVE:
        return None  # paused between the schedule firing and this tick running
    deadline = started + settings.AGENT_TICK_TIME_LIMIT
    claim = None
    if tick_id:
        claim, existing = _tick_claim(agent=agent, trigger=trigger, tick_id=tick_id, deadline=deadline)
        if existing is not None:
            return _tick_redelivered(existing, agent_id)
    lock = AgentLock(agent_id)
    if not lock.acquire():
        reason = "The previous tick is still running."
        if claim is not None:
            decision_close_skipped(decision=claim, reason=reason)
            return claim.pk
        return decision_skip(agent=agent, reason=reason, trigger=trigger).pk
    try:
        return agent_decision_run(agent=agent, trigger=trigger, tick_id=tick_id, lease=lock, deadline=deadline,
                                  decision=claim).pk
    finally:
        lock.release()


def _tick_redelivered(existing: Decision, agent_id: int) -> int:
    if (existing.status == Decision.Status.RUNNING and _deadline_passed(existing, timezone.now())
            and not AgentLock.locked(agent_id)):
        decision_close_overdue(decision=existing, reason=REDELIVERED_ERROR)
    return existing.pk


def _tick_claim(*, agent: AgentConfig, trigger: str, tick_id: str, deadline: float
                ) -> tuple[Decision | None, Decision | None]:
    """(the new RUNNING row of this tick, None), or (None, the row another delivery made)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return Decision.objects.create(
                agent=agent, owner_id=agent.owner_id, status=Decision.Status.RUNNING, trigger=trigger,
                model_name=agent.model_name, started_at=now, tick_id=tick_id,
                deadline_at=now + timedelta(seconds=max(0.0, deadline - time.monotonic()))), None
    except IntegrityError:
        existing = Decision.objects.filter(tick_id=tick_id).first()
        if existing is None:
            raise
        return None, existing


def decision_close_skipped(*, decision: Decision, reason: str) -> bool:
    """Close this tick's own RUNNING row as skipped (conditional: never a closed one)."""
    now = timezone.now()
    with transaction.atomic():
        updated = Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
            status=Decision.Status.SKIPPED, summary=reason[:500], finished_at=now)
        if updated:
            decision.refresh_from_db()
            _decision_event(decision)
    return bool(updated)


REDELIVERED_ERROR = ("The tick was delivered again after its worker stopped; the decision it had started "
                     "was past its time limit. Orders it placed are kept and settled by reconciliation.")


def decision_close_overdue(*, decision: Decision, reason: str) -> bool:
    """Close a RUNNING decision as error (conditional: never a closed one)."""
    now = timezone.now()
    with transaction.atomic():
        updated = Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
            status=Decision.Status.ERROR, error=reason, summary=f"error: {reason[:200]}", finished_at=now)
        if updated:
            decision.refresh_from_db()
            decision_tool_calls_link(decision=decision)
            _decision_event(decision)
    return bool(updated)


def agent_decision_run(*, agent: AgentConfig, trigger: str = Decision.Trigger.SCHEDULE, tick_id: str | None = None,
                       lease: Any = None, deadline: float | None = None,
                       decision: Decision | None = None) -> Decision:
    """Run one decision tick for the agent and record it completely.

    ``deadline`` (a ``time.monotonic()`` value; default AGENT_TICK_TIME_LIMIT from now) is
    enforced by the decision itself; ``lease`` (an ``AgentLock``) stops it if lost;
    ``decision``: the RUNNING row the tick already claimed (else one is created)."""
    if deadline is None:
        deadline = time.monotonic() + settings.AGENT_TICK_TIME_LIMIT
    if user_halt_active(agent.owner_id):
        reason = "The kill switch is on: no decision was made."
        if decision is not None:
            decision_close_skipped(decision=decision, reason=reason)
            return decision
        return decision_skip(agent=agent, reason=reason, trigger=trigger, tick_id=tick_id)
    started = timezone.now()
    if decision is not None:
        return _decision_run(agent=agent, decision=decision, lease=lease, deadline=deadline)
    try:
        with transaction.atomic():
            decision = Decision.objects.create(
                agent=agent, owner_id=agent.owner_id, status=Decision.Status.RUNNING, trigger=trigger,
                model_name=agent.model_name, started_at=started, tick_id=tick_id or None,
                deadline_at=started + timedelta(seconds=max(0.0, deadline - time.monotonic())))
    except IntegrityError:
        existing = Decision.objects.filter(tick_id=tick_id).first() if tick_id else None
        if existing is None:
            raise
        return existing  # a concurrent delivery of the same tick won
    return _decision_run(agent=agent, decision=decision, lease=lease, deadline=deadline)


def _decision_run(*, agent: AgentConfig, decision: Decision, lease: Any, deadline: float) -> Decision:
    audit = DecisionAudit(decision, lease=lease)
    t0 = time.perf_counter()
    try:
        trader = trader_for_account(agent.account)
    except CredentialsError as exc:
        return _finish_error(decision, exc.message)
    budget = None
    try:
        llm, model_used = _llm_for(agent, deadline=deadline)
        inp = DecisionInput(agent_id=agent.pk, model_name=model_used, instructions=agent.instructions,
                            symbols=tuple(agent.symbols), max_tool_rounds=agent.max_tool_rounds,
                            max_leverage=min(agent.max_leverage,
                                             RiskProfile.objects.get(user_id=agent.owner_id).max_leverage),
                            now=decision.started_at, deadline=deadline,
                            time_limit=settings.AGENT_TICK_TIME_LIMIT)
        budget = MonthlyBudget(agent.owner_id, agent=agent, decision=decision)
        output = run_decision(inp, provider=AgentContext(agent, trader),
                              executor=AgentToolExecutor(agent, decision, trader, recorder=audit), llm=llm,
                              budget=budget, pricing=_pricing_table(), recorder=audit)
    except Exception as exc:  # run_decision never raises; this guards the wiring around it
        logger.exception("agent %s decision %s failed", agent.pk, decision.pk)
        return _finish_error(decision, f"{type(exc).__name__}: {exc}")
    finally:
        trader.close()
    return _decision_record(decision=decision, agent=agent, output=output, audit=audit, model_used=model_used,
                            budget=budget, t0=t0)


def _decision_record(*, decision: Decision, agent: AgentConfig, output: Any, audit: DecisionAudit, model_used: str,
                     budget: MonthlyBudget | None, t0: float) -> Decision:
    """The final record: cannot fail the record. Values are made storable first; if the save
    still fails, a minimal save closes the decision as error with the reason."""
    error = str(output.error or "")
    event = getattr(budget, "event", None)
    if event is not None:  # the decision says where the budget stop is recorded
        if event.message in error:
            error = f"{error} (risk event {event.pk})"
        else:
            note = f"LLM budget stop: {event.message} (risk event {event.pk})"
            error = f"{error}; {note}" if error else note
    now = timezone.now()
    try:
        timings = {**json_safe(output.node_timings), "total": round((time.perf_counter() - t0) * 1000, 1)}
        fields = dict(
            status=output.status if output.status in Decision.Status.values else Decision.Status.ERROR,
            model_name=clean_text(str(model_used), 100)[:100], finished_at=now,
            market_snapshot=json_safe(output.market_snapshot), context=json_safe(output.context),
            messages=json_safe(output.messages), raw_reply=json_safe(output.raw_replies),
            summary=clean_text(str(output.summary), 2000)[:2000], error=clean_text(error, 4000)[:4000],
            prompt_tokens=audit.prompt_tokens, completion_tokens=audit.completion_tokens, cost_usd=audit.cost,
            node_timings=timings)
        with transaction.atomic():
            for record in output.tool_calls:
                audit.tool_call(record)
            decision_tool_calls_link(decision=decision)  # an order whose id never reached its call
            if _record_final(decision, fields):
                AgentConfig.objects.filter(pk=agent.pk).update(last_run_at=now)
    except Exception as exc:
        logger.exception("decision %s: the final record failed; closing it as error", decision.pk)
        _decision_fallback_close(decision, output=output, exc=exc)
    decision = Decision.objects.get(pk=decision.pk)
    if decision.status != Decision.Status.RUNNING:
        _decision_event(decision)
    orders = [c.order_id for c in output.tool_calls if c.order_id]
    logger.info("decision %s agent=%s status=%s tokens=%s/%s cost=%s", decision.pk, agent.pk, decision.status,
                decision.prompt_tokens, decision.completion_tokens, decision.cost_usd,
                extra={"decision": {"decision_id": decision.pk, "agent_id": agent.pk, "status": decision.status,
                                    "prompt_tokens": decision.prompt_tokens,
                                    "completion_tokens": decision.completion_tokens,
                                    "cost_usd": str(decision.cost_usd), "orders": orders}})
    return decision


def _record_final(decision: Decision, fields: dict[str, Any]) -> bool:
    """The decision's final save, conditional on it still being RUNNING."""
    return Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(**fields) == 1


def _decision_fallback_close(decision: Decision, *, output: Any, exc: BaseException) -> None:
    reason = clean_text(f"The decision's record could not be saved ({type(exc).__name__}: {exc}). "
                        f"Its outcome was: {output.status}: {output.summary}", 3900)
    try:
        with transaction.atomic():
            Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=reason, summary=clean_text(f"error: {reason}", 300)[:300],
                finished_at=timezone.now())
    except Exception:  # the sweep closes it past its deadline
        logger.exception("decision %s: even the fallback save failed", decision.pk)


ABANDONED_ERROR = ("The worker running this decision stopped before it finished (killed or crashed). "
                   "Orders it placed are kept and settled by reconciliation.")
ABANDON_GRACE_SECONDS = 60  # past its deadline, a decision still RUNNING has no live worker


def decisions_close_abandoned(*, now: datetime | None = None) -> int:
    """Close decisions left RUNNING by a worker that died (SIGKILL, out of memory, a lost
    machine): a live decision stops itself at its deadline, so one still RUNNING well past
    it has no worker. The close is conditional, and the decision's own late save is too."""
    now = now or timezone.now()
    grace = timedelta(seconds=ABANDON_GRACE_SECONDS)
    legacy_cutoff = now - timedelta(seconds=settings.AGENT_TICK_TIME_LIMIT) - grace
    closed = 0
    overdue = Decision.objects.filter(status=Decision.Status.RUNNING).filter(
        Q(deadline_at__lt=now - grace) | Q(deadline_at__isnull=True, started_at__lt=legacy_cutoff))
    for decision in overdue:
        with transaction.atomic():
            updated = Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=ABANDONED_ERROR, summary=f"error: {ABANDONED_ERROR[:200]}",
                finished_at=now)
            if updated:
                decision.refresh_from_db()
                decision_tool_calls_link(decision=decision)
                _decision_event(decision)
                closed += 1
    if closed:
        logger.warning("closed %s decision(s) abandoned by a stopped worker", closed)
    return closed


def decision_tool_calls_link(*, decision: Decision) -> int:
    """Link each order tool call of a closed-by-others decision to the order it placed: a
    worker that died (or a time limit that fired) between ``order_submit`` and the tool
    call's update leaves the row ``pending`` without its order. The order is found by its
    client order id, derived from the decision and the tool call's index."""
    linked = 0
    rows = list(ToolCall.objects.filter(decision=decision, order__isnull=True, name__in=ORDER_TOOLS).exclude(
        status=ToolCall.Status.INVALID))
    if not rows:
        return 0
    account_id = AgentConfig.objects.filter(pk=decision.agent_id).values_list("account_id", flat=True).first()
    for call in rows:
        cid = client_order_id_for(decision_id=decision.pk, index=call.index)
        order = Order.objects.filter(account_id=account_id, client_order_id=cid).first()
        if order is None:
            continue
        fields: dict[str, Any] = {"order": order, "risk_event_id": order.risk_event_id}
        if call.status == ToolCall.Status.PENDING:
            fields.update(status=ToolCall.Status.ERROR, result={
                "error": "the decision stopped before this call's outcome was recorded",
                "order_id": order.pk, "order_status": order.status})
        linked += ToolCall.objects.filter(pk=call.pk, order__isnull=True).update(**fields)
    return linked


def _finish_error(decision: Decision, error: str) -> Decision:
    error = clean_text(str(error), 3900)
    with transaction.atomic():
        if Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=error, summary=f"error: {error[:200]}",
                finished_at=timezone.now()):
            decision.refresh_from_db()
            decision_tool_calls_link(decision=decision)
            _decision_event(decision)
        else:
            decision.refresh_from_db()
    return decision
