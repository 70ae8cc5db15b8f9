"""Writes for agents: lifecycle, schedule sync with django-celery-beat, and one decision run.

The schedule is never edited by hand: every change of an agent goes through these
functions, which keep its PeriodicTask (``agent-<id>``) in line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from redis.exceptions import LockError

from agents.context import AgentContext, AgentToolExecutor
from agents.graph import run_decision
from agents.graph.contracts import BudgetExceeded, DecisionInput
from agents.graph.toolspec import ORDER_TOOLS
from agents.llm import make_llm
from agents.models import AgentConfig, Decision, LLMCredential, ToolCall
from agents.pricing import load_pricing
from alpha_platform.common import crypto
from alpha_platform.common.errors import ApplicationError, CredentialsError
from alpha_platform.common.realtime import send_to_user_on_commit
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskEvent, RiskProfile
from risk.services import risk_event_record, user_halt_active
from trading.models import Order
from trading.services import client_order_id_for

logger = logging.getLogger(__name__)
TICK_TASK = "agents.tick"
EDITABLE = {"name", "symbols", "interval_seconds", "model_name", "instructions", "max_leverage", "max_tool_rounds",
            "account"}


# --------------------------------------------------------------------------- schedule
def agent_schedule_sync(*, agent: AgentConfig) -> PeriodicTask:
    """Create or update the agent's PeriodicTask: its interval, and enabled only while
    the agent is active. A tick not picked up within one interval expires (dropped, not
    queued behind the next)."""
    schedule, _ = IntervalSchedule.objects.get_or_create(every=agent.interval_seconds,
                                                         period=IntervalSchedule.SECONDS)
    task, _ = PeriodicTask.objects.update_or_create(
        name=agent.periodic_task_name,
        defaults=dict(interval=schedule, task=TICK_TASK, args=json.dumps([agent.pk]), kwargs="{}",
                      enabled=agent.status == AgentConfig.Status.ACTIVE, expire_seconds=agent.interval_seconds,
                      description=f"Decision tick of agent {agent.pk} ({agent.name})"),
    )
    return task


def _agent_event(agent: AgentConfig) -> None:
    send_to_user_on_commit(agent.owner_id, {"type": "agent", "agent": {
        "id": agent.pk, "name": agent.name, "status": agent.status, "status_reason": agent.status_reason,
        "last_run_at": agent.last_run_at}})


# --------------------------------------------------------------------------- lifecycle
@transaction.atomic
def agent_create(*, owner: AbstractBaseUser, account: ExchangeAccount, name: str, symbols: list[str],
                 interval_seconds: int = 60, model_name: str = "builtin:trend", instructions: str = "",
                 **extra: Any) -> AgentConfig:
    agent = AgentConfig(owner=owner, account=account, name=(name or "").strip(), symbols=symbols,
                        interval_seconds=interval_seconds, model_name=model_name,
                        instructions=instructions, **extra)
    agent.full_clean()
    agent.save()
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_update(*, agent: AgentConfig, **changes: Any) -> AgentConfig:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError(f"Not editable: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(agent, name, value)
    agent.full_clean()
    agent.save()
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_pause(*, agent: AgentConfig, reason: str = "paused by the user") -> AgentConfig:
    agent.status = AgentConfig.Status.PAUSED
    agent.status_reason = reason[:200]
    agent.save(update_fields=["status", "status_reason", "updated_at"])
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_resume(*, agent: AgentConfig) -> AgentConfig:
    if user_halt_active(agent.owner_id):
        raise ApplicationError("The kill switch is on: lift it before resuming agents.")
    agent.status = AgentConfig.Status.ACTIVE
    agent.status_reason = ""
    agent.save(update_fields=["status", "status_reason", "updated_at"])
    agent_schedule_sync(agent=agent)
    _agent_event(agent)
    return agent


@transaction.atomic
def agent_delete(*, agent: AgentConfig) -> None:
    PeriodicTask.objects.filter(name=agent.periodic_task_name).delete()
    agent.delete()


@transaction.atomic
def agents_halt_for_user(*, user_id: int, reason: str) -> int:
    """The kill switch: every agent of the user stops until resumed by hand."""
    agents = list(AgentConfig.objects.select_for_update().filter(owner_id=user_id).exclude(
        status=AgentConfig.Status.HALTED))
    for agent in agents:
        agent.status = AgentConfig.Status.HALTED
        agent.status_reason = reason[:200]
        agent.save(update_fields=["status", "status_reason", "updated_at"])
        agent_schedule_sync(agent=agent)
        _agent_event(agent)
    return len(agents)


@transaction.atomic
def llm_credential_set(*, owner: AbstractBaseUser, api_key: str, base_url: str = "") -> LLMCredential:
    api_key = (api_key or "").strip()
    if len(api_key) < 8:
        raise ValidationError({"api_key": "The API key looks too short."})
    base_url = (base_url or "").strip()
    if base_url:  # checked again before every call (the host may resolve elsewhere later)
        from alpha_platform.common import outbound

        try:
            outbound.check_url(base_url, allowed=outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS,
                                                                        settings.OPENAI_BASE_URL))
        except outbound.OutboundRefused as exc:
            raise ValidationError({"base_url": f"This model server URL is not allowed: {exc}"}) from None
    credential, _ = LLMCredential.objects.get_or_create(owner=owner)
    credential.api_key_encrypted = crypto.encrypt_json({"api_key": api_key})
    credential.api_key_hint = f"…{api_key[-4:]}"
    credential.base_url = base_url
    credential.full_clean()
    credential.save()
    return credential


# --------------------------------------------------------------------------- spend
def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def llm_spend(*, user_id: int, agent_id: int | None = None, since: datetime | None = None) -> Decimal:
    qs = Decimal("0")
    rows = Decision.objects.filter(owner_id=user_id, started_at__gte=since or month_start())
    if agent_id is not None:
        rows = rows.filter(agent_id=agent_id)
    return rows.aggregate(s=Sum("cost_usd"))["s"] or qs


class MonthlyBudget:
    """BudgetGuard: the user's monthly LLM spend cap, checked before each model call. A
    refusal is a RiskEvent (kind ``budget``) with the figures, written once per decision."""

    def __init__(self, user_id: int, *, agent: AgentConfig | None = None, decision: Decision | None = None) -> None:
        self.user_id = user_id
        self.agent, self.decision = agent, decision
        self.cap = RiskProfile.objects.get(user_id=user_id).monthly_llm_budget_usd
        self.spent = llm_spend(user_id=user_id)
        self.event: RiskEvent | None = None

    def check(self) -> None:
        if self.spent >= self.cap:
            message = f"monthly LLM budget of {self.cap} USD is spent ({self.spent} USD)"
            if self.event is None:
                self._record(message)
            raise BudgetExceeded(message)

    def _record(self, message: str) -> None:
        try:
            with transaction.atomic():
                owner = self.agent.owner if self.agent is not None else RiskProfile.objects.get(
                    user_id=self.user_id).user
                self.event = risk_event_record(
                    user=owner, allowed=False, rule="monthly_llm_budget", message=message,
                    kind=RiskEvent.Kind.BUDGET, actor=f"agent:{self.agent.pk}" if self.agent else "system",
                    details={"cap_usd": str(self.cap), "spent_usd": str(self.spent),
                             "month_start": month_start().isoformat(),
                             "agent_id": getattr(self.agent, "pk", None),
                             "decision_id": getattr(self.decision, "pk", None)})
        except Exception:  # the refusal stands even if its event cannot be written
            logger.exception("could not record the budget stop of user %s", self.user_id)

    def add(self, cost: Decimal) -> None:
        self.spent += _money(cost)


# --------------------------------------------------------------------------- one decision
_http = {"client": None, "pid": 0}
_http_lock = threading.Lock()


def _shared_http_client() -> Any:
    """One HTTP connection pool per worker process for every OpenAI-compatible call: building
    an ``openai`` client with its own pool (and TLS context) cost ~45 ms of CPU per decision.
    httpx clients are thread-safe; a forked child builds its own."""
    with _http_lock:
        if _http["client"] is None or _http["pid"] != os.getpid():
            from alpha_platform.common import outbound

            # The SSRF guard, read from the settings on every request: https on public
            # addresses, or a host the operator allows (LLM_ALLOWED_HOSTS, OPENAI_BASE_URL);
            # checked at connect time, no redirects followed, the reply's size bounded.
            policy = outbound.OutboundPolicy(
                lambda: outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS, settings.OPENAI_BASE_URL))
            _http["client"] = outbound.guarded_http_client(policy, max_response_bytes=settings.LLM_MAX_RESPONSE_BYTES)
            _http["pid"] = os.getpid()
        return _http["client"]


def _llm_for(agent: AgentConfig) -> tuple[Any, str]:
    """The model client, and the model name actually used (the built-in one when no key
    or server is configured for an OpenAI model name)."""
    if agent.is_builtin_model:
        return make_llm(agent.model_name), agent.model_name
    api_key, base_url = settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
    own = LLMCredential.objects.filter(owner_id=agent.owner_id).first()
    if own is not None and own.api_key_encrypted:
        api_key = own.credentials()["api_key"]
        if own.base_url:  # a user's URL: checked now (and by the HTTP client at connect time)
            from alpha_platform.common import outbound

            outbound.check_url(own.base_url, allowed=outbound.allowed_hosts(settings.LLM_ALLOWED_HOSTS,
                                                                            settings.OPENAI_BASE_URL))
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


# --------------------------------------------------------------------------- storage-safe values
INT_COLUMN_MAX = 2_147_483_647  # PositiveIntegerField on PostgreSQL
SMALL_COLUMN_MAX = 32_767  # PositiveSmallIntegerField
JSON_MAX_STR = 20_000  # characters per string inside an audit JSON value
JSON_MAX_ITEMS = 500  # items per list / keys per object
JSON_MAX_DEPTH = 24
COST_MAX = Decimal("1e9")


def _clean_str(value: str, limit: int) -> str:
    """PostgreSQL refuses NUL characters and lone surrogates in text and jsonb: replace them."""
    text = value.replace("\x00", "\ufffd")
    if len(text) > limit:
        text = text[:limit] + f"…[{len(value) - limit} characters cut]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def json_safe(value: Any, *, max_str: int = JSON_MAX_STR, _depth: int = 0) -> Any:
    """A copy of ``value`` that every database stores as JSON: no NaN/Infinity (PostgreSQL
    jsonb refuses them; they become strings), no NUL or lone surrogates, Decimals and
    other objects as text, strings, lists and objects bounded."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) < value < 2 ** 63 else str(value)[:64]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_str(value, max_str)
    if _depth >= JSON_MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= JSON_MAX_ITEMS:
                out["…"] = f"[{len(value) - JSON_MAX_ITEMS} keys cut]"
                break
            out[_clean_str(str(key), 200)] = json_safe(item, max_str=max_str, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [json_safe(item, max_str=max_str, _depth=_depth + 1) for item in list(value)[:JSON_MAX_ITEMS]]
        if len(value) > JSON_MAX_ITEMS:
            items.append(f"…[{len(value) - JSON_MAX_ITEMS} items cut]")
        return items
    if isinstance(value, datetime):
        return value.isoformat()
    return _clean_str(str(value), max_str)


def _count(value: Any, top: int = INT_COLUMN_MAX) -> int:
    """A count clamped into its column (0..top); anything that is not a number counts 0."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(number, top))


def _money(value: Any) -> Decimal:
    """A cost clamped into ``cost_usd`` (finite, >= 0, 12 places); anything else counts 0."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return Decimal("0")
    if not amount.is_finite() or amount < 0:
        return Decimal("0")
    return min(amount, COST_MAX).quantize(Decimal("1e-12"), rounding=ROUND_DOWN)


def _tool_call_fields(record: Any) -> dict[str, Any]:
    status = str(record.status)
    arguments = json_safe(record.arguments if isinstance(record.arguments, dict) else {"value": record.arguments})
    result = json_safe(record.result if isinstance(record.result, dict) else {"value": record.result})
    return dict(round=_count(record.round, SMALL_COLUMN_MAX), call_id=_clean_str(str(record.call_id or ""), 100)[:100],
                name=_clean_str(str(record.name or ""), 64)[:64], arguments=arguments,
                raw_arguments=_clean_str(str(record.raw_arguments or ""), 10_000),
                status=status if status in ToolCall.Status.values else ToolCall.Status.ERROR, result=result,
                order_id=record.order_id if isinstance(record.order_id, int) else None,
                risk_event_id=record.risk_event_id if isinstance(record.risk_event_id, int) else None,
                duration_ms=_count(record.duration_ms))


# --------------------------------------------------------------------------- the audit as it happens
class DecisionAudit:
    """The graph's ``DecisionRecorder``: every model reply's spend and every tool call are
    written to the database at once (each in its own transaction), so an order never
    exists without its Decision and ToolCall, and the budget sees every call paid for,
    whatever fails later. Saves of the decision's status are conditional on it still being
    RUNNING: a decision the sweep (or a redelivered tick) closed is never rewritten."""

    def __init__(self, decision: Decision, *, lease: Any = None) -> None:
        self.decision = decision
        self.lease = lease
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = Decimal("0")
        self.llm_calls = 0

    # -- DecisionRecorder
    def llm_reply(self, *, prompt_tokens: int, completion_tokens: int, cost: Decimal, model: str,
                  llm_calls: int = 1) -> None:
        self.prompt_tokens = _count(self.prompt_tokens + _count(prompt_tokens))
        self.completion_tokens = _count(self.completion_tokens + _count(completion_tokens))
        self.cost = _money(self.cost + _money(cost))
        self.llm_calls += _count(llm_calls)
        # The spend is a fact: written even on a decision closed meanwhile (the budget sums it).
        with transaction.atomic():
            Decision.objects.filter(pk=self.decision.pk).update(
                prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, cost_usd=self.cost)

    def tool_call(self, record: Any) -> None:
        with transaction.atomic():
            ToolCall.objects.update_or_create(decision_id=self.decision.pk,
                                              index=_count(record.index, SMALL_COLUMN_MAX),
                                              defaults=_tool_call_fields(record))

    def active(self) -> str:
        if self.lease is not None and not self.lease.held():
            return "the agent's lock was lost (another worker may run it): stopped"
        if not Decision.objects.filter(pk=self.decision.pk, status=Decision.Status.RUNNING).exists():
            return "the decision was closed meanwhile (time limit or abandoned): stopped"
        return ""

    # -- the Django side's own hooks
    def order_placed(self, *, index: int, order_id: int, risk_event_id: int | None) -> None:
        """Right after ``order_submit`` returns: the tool call's row points at its order."""
        try:
            with transaction.atomic():
                ToolCall.objects.filter(decision_id=self.decision.pk, index=index).update(
                    order_id=order_id, risk_event_id=risk_event_id)
        except Exception:  # the final record links it again
            logger.exception("could not link order %s to tool call %s of decision %s", order_id, index,
                             self.decision.pk)

    def update_running(self, **fields: Any) -> bool:
        """A conditional save: only while the decision is still RUNNING."""
        with transaction.atomic():
            return Decision.objects.filter(pk=self.decision.pk, status=Decision.Status.RUNNING).update(**fields) == 1


# --------------------------------------------------------------------------- the per-agent lock
def agent_lock_key(agent_id: int) -> str:
    return f"lock:agent:{agent_id}"


class AgentLock:
    """The per-agent lock: a Redis lock (redis-py's ``Lock`` through django-redis) with a
    short TTL, renewed by a background thread while the decision runs. A dead worker's lock
    expires within one TTL; a decision whose lock could not be renewed (``held()`` False)
    stops before its next model call or order, so it never runs beside the next tick."""

    def __init__(self, agent_id: int, *, ttl: float | None = None) -> None:
        self.ttl = float(ttl if ttl is not None else settings.AGENT_LOCK_TTL_SECONDS)
        self._lock = cache.lock(agent_lock_key(agent_id), timeout=self.ttl, blocking=False, thread_local=False)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewed = 0.0
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._renewed = time.monotonic()
        self._thread = threading.Thread(target=self._renew, name=f"lock-{self._lock.name}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        interval = max(self.ttl / 3.0, 0.05)
        while not self._stop.wait(interval):
            try:
                self._lock.extend(self.ttl, replace_ttl=True)
                self._renewed = time.monotonic()
            except LockError:  # expired and maybe taken by another tick: never run beside it
                logger.error("lost the lock %s", self._lock.name)
                self._lost.set()
                return
            except Exception:  # Redis unreachable: held() turns False once the TTL has run out
                logger.warning("could not renew the lock %s", self._lock.name, exc_info=True)

    def held(self) -> bool:
        return not self._lost.is_set() and time.monotonic() - self._renewed < self.ttl

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ttl)
        try:
            self._lock.release()
        except LockError:
            pass
        except Exception:
            logger.warning("could not release the lock %s", self._lock.name, exc_info=True)

    @staticmethod
    def locked(agent_id: int) -> bool:
        return bool(cache.lock(agent_lock_key(agent_id)).locked())


# --------------------------------------------------------------------------- one tick
def _deadline_passed(decision: Decision, now: datetime) -> bool:
    deadline = decision.deadline_at or decision.started_at + timedelta(seconds=settings.AGENT_TICK_TIME_LIMIT)
    return now > deadline


def agent_tick_run(*, agent_id: int, trigger: str = Decision.Trigger.SCHEDULE, tick_id: str | None = None,
                   started: float | None = None) -> int | None:
    """One tick as the worker runs it: a redelivered tick (same ``tick_id``) never runs a
    second decision; the per-agent lock is held, renewed, for as long as the decision runs;
    a tick that finds it taken is recorded as skipped."""
    started = time.monotonic() if started is None else started
    agent = AgentConfig.objects.select_related("account", "owner").filter(pk=agent_id).first()
    if agent is None:
        return None
    if tick_id:
        existing = Decision.objects.filter(tick_id=tick_id).first()
        if existing is not None:  # delivered again (a worker died or the broker redelivered)
            if (existing.status == Decision.Status.RUNNING and _deadline_passed(existing, timezone.now())
                    and not AgentLock.locked(agent_id)):
                decision_close_overdue(decision=existing, reason=REDELIVERED_ERROR)
            return existing.pk
    if trigger == Decision.Trigger.SCHEDULE and agent.status != AgentConfig.Status.ACTIVE:
        return None  # paused between the schedule firing and this tick running
    lock = AgentLock(agent_id)
    if not lock.acquire():
        return decision_skip(agent=agent, reason="The previous tick is still running.", trigger=trigger,
                             tick_id=tick_id).pk
    try:
        return agent_decision_run(agent=agent, trigger=trigger, tick_id=tick_id, lease=lock,
                                  deadline=started + settings.AGENT_TICK_TIME_LIMIT).pk
    finally:
        lock.release()


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
            _decision_event(decision)
    return bool(updated)


def agent_decision_run(*, agent: AgentConfig, trigger: str = Decision.Trigger.SCHEDULE, tick_id: str | None = None,
                       lease: Any = None, deadline: float | None = None) -> Decision:
    """Run one decision tick for the agent and record it completely.

    ``deadline`` (a ``time.monotonic()`` value; default AGENT_TICK_TIME_LIMIT from now) is
    enforced by the decision itself; ``lease`` (an ``AgentLock``) stops it if lost."""
    if deadline is None:
        deadline = time.monotonic() + settings.AGENT_TICK_TIME_LIMIT
    if user_halt_active(agent.owner_id):
        return decision_skip(agent=agent, reason="The kill switch is on: no decision was made.", trigger=trigger,
                             tick_id=tick_id)
    started = timezone.now()
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
    audit = DecisionAudit(decision, lease=lease)
    t0 = time.perf_counter()
    try:
        trader = trader_for_account(agent.account)
    except CredentialsError as exc:
        return _finish_error(decision, exc.message)
    budget = None
    try:
        llm, model_used = _llm_for(agent)
        inp = DecisionInput(agent_id=agent.pk, model_name=model_used, instructions=agent.instructions,
                            symbols=tuple(agent.symbols), max_tool_rounds=agent.max_tool_rounds,
                            max_leverage=min(agent.max_leverage,
                                             RiskProfile.objects.get(user_id=agent.owner_id).max_leverage),
                            now=started, deadline=deadline, time_limit=settings.AGENT_TICK_TIME_LIMIT)
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


def _link_orders(agent: AgentConfig, decision: Decision, records: list[Any]) -> None:
    """A placed order whose id never reached its tool call (a crash between the two) is found
    by its client order id, which is derived from the decision and the tool call."""
    for record in records:
        if record.order_id is None and record.name in ORDER_TOOLS and record.status != ToolCall.Status.INVALID:
            cid = client_order_id_for(decision_id=decision.pk, index=record.index)
            record.order_id = (Order.objects.filter(account_id=agent.account_id, client_order_id=cid)
                               .values_list("pk", flat=True).first())


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
            model_name=_clean_str(str(model_used), 100)[:100], finished_at=now,
            market_snapshot=json_safe(output.market_snapshot), context=json_safe(output.context),
            messages=json_safe(output.messages), raw_reply=json_safe(output.raw_replies),
            summary=_clean_str(str(output.summary), 2000)[:2000], error=_clean_str(error, 4000)[:4000],
            prompt_tokens=audit.prompt_tokens, completion_tokens=audit.completion_tokens, cost_usd=audit.cost,
            node_timings=timings)
        with transaction.atomic():
            _link_orders(agent, decision, output.tool_calls)
            for record in output.tool_calls:
                audit.tool_call(record)
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
    reason = _clean_str(f"The decision's record could not be saved ({type(exc).__name__}: {exc}). "
                        f"Its outcome was: {output.status}: {output.summary}", 3900)
    try:
        with transaction.atomic():
            Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=reason, summary=_clean_str(f"error: {reason}", 300)[:300],
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
                _decision_event(decision)
                closed += 1
    if closed:
        logger.warning("closed %s decision(s) abandoned by a stopped worker", closed)
    return closed


def _finish_error(decision: Decision, error: str) -> Decision:
    error = _clean_str(str(error), 3900)
    with transaction.atomic():
        if Decision.objects.filter(pk=decision.pk, status=Decision.Status.RUNNING).update(
                status=Decision.Status.ERROR, error=error, summary=f"error: {error[:200]}",
                finished_at=timezone.now()):
            decision.refresh_from_db()
            _decision_event(decision)
        else:
            decision.refresh_from_db()
    return decision
