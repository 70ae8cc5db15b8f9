"""Portal pages. Thin: read through selectors, write through services, and show a
service's errors next to the fields they name. Every object is looked up with
``owner=request.user``, so another user's URL is a 404.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agents import selectors as agent_selectors
from agents import services as agent_services
from agents.models import AgentConfig, Decision
from alpha_platform.common.errors import ApplicationError
from alpha_platform.web.portal import forms
from exchanges import services as exchange_services
from exchanges.models import ExchangeAccount
from risk.models import RiskProfile
from risk.services import flatten_progress, risk_profile_update
from trading import selectors as trading_selectors
from trading import services as trading_services
from trading.forms import ManualOrderForm
from trading.models import Order

RECENT = 15
PAGE_SIZE = 50


def _common(user) -> dict[str, Any]:
    """What every signed-in page shows: the kill-switch banner, and the names the live
    script needs to label events (which carry ids only)."""
    refs = {
        "accounts": dict(ExchangeAccount.objects.filter(owner=user).values_list("pk", "name")),
        "agents": dict(agent_selectors.agents_for(user=user).values_list("pk", "name")),
    }
    halt = trading_selectors.halt_state(user=user)
    return {"halt": halt, "halt_progress": flatten_progress(halt["user"]) if halt["user"] else None, "refs": refs}


def _page(request, template: str, context: dict[str, Any] | None = None, *, status: int = 200):
    return render(request, template, {**_common(request.user), **(context or {})}, status=status)


# --------------------------------------------------------------------------- sign-in pages
class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = forms.ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs),
                "signup_enabled": getattr(settings, "PORTAL_SIGNUP_ENABLED", False)}


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/portal_password_change.html"
    success_url = reverse_lazy("portal:password_change_done")

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **_common(self.request.user)}


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "registration/portal_password_change_done.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **_common(self.request.user)}


def _actor(request) -> str:
    return f"user:{request.user.pk}"


def _back(request, default: str):
    """Back to the page the button was on (``next``), if it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(default)


# --------------------------------------------------------------------------- sign-up
def signup(request):
    if not getattr(settings, "PORTAL_SIGNUP_ENABLED", False):
        raise Http404("Sign-up is closed.")
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    form = forms.SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome! Add an exchange account to start: a paper account needs no keys.")
        return redirect("portal:accounts")
    return render(request, "registration/signup.html", {"form": form})


# --------------------------------------------------------------------------- dashboard
@login_required
def dashboard(request):
    user = request.user
    balances, totals = trading_selectors.account_balances(user=user)
    curve = trading_selectors.equity_curve(user=user)
    ids = {row.account.name: row.account.pk for row in balances}
    chart = {
        "accounts": [{"id": ids.get(name), "name": name, "points": points}
                     for name, points in curve["accounts"].items()],
        "total": curve["total"],
    }
    agents = [(agent, agent_selectors.last_decision(agent=agent)) for agent in agent_selectors.agents_for(user=user)]
    return _page(request, "portal/dashboard.html", {
        "balances": balances, "totals": totals, "chart": chart,
        "positions": trading_selectors.open_positions(user=user),
        "orders": trading_selectors.orders(user=user)[:RECENT],
        "agents": agents,
        "decisions": agent_selectors.decisions(user=user)[:RECENT],
        "pnl": trading_selectors.pnl_today(user=user),
        "open_orders": trading_selectors.open_order_count(user=user),
        "active_agents": sum(1 for agent, _ in agents if agent.status == AgentConfig.Status.ACTIVE),
    })


# --------------------------------------------------------------------------- exchange accounts
@login_required
def accounts(request):
    form = forms.ExchangeAccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            account = exchange_services.exchange_account_create(
                owner=request.user, name=data["name"], venue=data["venue"], credentials=form.credentials(),
                testnet=data["testnet"])
        except ValidationError as exc:
            forms.apply_errors(form, exc)
        else:
            messages.success(request, f"Added {account.name}. Test the connection to check the credentials.")
            return redirect("portal:accounts")
    rows = ExchangeAccount.objects.filter(owner=request.user).order_by("name")
    return _page(request, "portal/accounts.html", {"accounts": rows, "form": form,
                                                   "venue_fields_json": json.dumps(form.venue_fields)},
                 status=400 if form.errors else 200)


@login_required
@require_POST
def account_test(request, pk: int):
    account = get_object_or_404(ExchangeAccount, pk=pk, owner=request.user)
    account = exchange_services.exchange_account_test_connection(account=account)
    if account.status == ExchangeAccount.Status.OK:
        messages.success(request, f"{account.name}: connected.")
    else:
        messages.error(request, f"{account.name}: {account.last_error}")
    return redirect("portal:accounts")


@login_required
def account_delete(request, pk: int):
    account = get_object_or_404(ExchangeAccount, pk=pk, owner=request.user)
    if request.method == "POST":
        try:
            exchange_services.exchange_account_delete(account=account)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Deleted {account.name}.")
        return redirect("portal:accounts")
    return _page(request, "portal/confirm.html", {
        "title": f"Delete {account.name}?",
        "question": "The account and its order history are deleted; its stored credentials are destroyed.",
        "confirm_label": "Delete the account", "cancel_url": "portal:accounts", "danger": True})


# --------------------------------------------------------------------------- risk profile
@login_required
def risk(request):
    profile = RiskProfile.objects.get(user=request.user)
    form = forms.RiskProfileForm(request.POST or None, profile=profile)
    if request.method == "POST" and form.is_valid():
        try:
            risk_profile_update(profile=profile, **form.changes())
        except ValidationError as exc:
            form.show_service_errors(exc)
        else:
            messages.success(request, "Risk profile saved: it applies to the next order.")
            return redirect("portal:risk")
    return _page(request, "portal/risk.html", {"form": form, "profile": profile},
                 status=400 if form.errors else 200)


# --------------------------------------------------------------------------- agents
def _own_agent(request, pk: int) -> AgentConfig:
    return get_object_or_404(AgentConfig.objects.select_related("account"), pk=pk, owner=request.user)


def _accounts_of(user):
    return ExchangeAccount.objects.filter(owner=user).exclude(status=ExchangeAccount.Status.DISABLED).order_by("name")


@login_required
def agents(request):
    rows = [(a, agent_selectors.last_decision(agent=a)) for a in agent_selectors.agents_for(user=request.user)]
    return _page(request, "portal/agents.html", {"agents": rows})


@login_required
def agent_create(request):
    form = forms.AgentForm(request.POST or None, accounts=_accounts_of(request.user))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            agent = agent_services.agent_create(
                owner=request.user, account=data["account"], name=data["name"], symbols=list(data["symbols"]),
                interval_seconds=data["interval_seconds"], model_name=data["model_name"].strip(),
                instructions=data["instructions"], max_leverage=data["max_leverage"],
                max_tool_rounds=data["max_tool_rounds"])
        except ValidationError as exc:
            forms.apply_errors(form, exc)
        else:
            messages.success(request, f"Agent {agent.name} created.")
            return redirect("portal:agent_detail", pk=agent.pk)
    return _page(request, "portal/agent_form.html", {"form": form, "agent": None},
                 status=400 if form.errors else 200)


@login_required
def agent_detail(request, pk: int):
    agent = _own_agent(request, pk)
    return _page(request, "portal/agent_detail.html", {
        "agent": agent, "pnl": agent_selectors.agent_pnl(agent=agent),
        "last": agent_selectors.last_decision(agent=agent),
        "decisions": agent_selectors.decisions(user=request.user, agent_id=agent.pk)[:RECENT]})


@login_required
def agent_edit(request, pk: int):
    agent = _own_agent(request, pk)
    initial = {name: getattr(agent, name) for name in agent_services.EDITABLE}
    form = forms.AgentForm(request.POST or None, accounts=_accounts_of(request.user), initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in agent_services.EDITABLE}
        if "symbols" in changes:
            changes["symbols"] = list(changes["symbols"])
        try:
            agent_services.agent_update(agent=agent, **changes)
        except ValidationError as exc:
            forms.apply_errors(form, exc)
        else:
            messages.success(request, f"Agent {agent.name} saved.")
            return redirect("portal:agent_detail", pk=agent.pk)
    return _page(request, "portal/agent_form.html", {"form": form, "agent": agent},
                 status=400 if form.errors else 200)


@login_required
@require_POST
def agent_pause(request, pk: int):
    agent = agent_services.agent_pause(agent=_own_agent(request, pk), reason="paused in the portal")
    messages.success(request, f"{agent.name} paused.")
    return _back(request, "portal:agents")


@login_required
@require_POST
def agent_resume(request, pk: int):
    agent = _own_agent(request, pk)
    try:
        agent_services.agent_resume(agent=agent)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{agent.name} resumed.")
    return _back(request, "portal:agents")


@login_required
@require_POST
def agent_run(request, pk: int):
    from agents.tasks import agent_tick_task

    agent = _own_agent(request, pk)
    transaction.on_commit(lambda: agent_tick_task.delay(agent.pk, Decision.Trigger.MANUAL))
    note = f"{agent.name}: a decision was queued; it appears here when it is done."
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"queued": True, "agent_id": agent.pk, "message": note}, status=202)
    messages.info(request, note)
    return _back(request, "portal:agents")


@login_required
def agent_delete(request, pk: int):
    agent = _own_agent(request, pk)
    if request.method == "POST":
        agent_services.agent_delete(agent=agent)
        messages.success(request, f"Agent {agent.name} deleted.")
        return redirect("portal:agents")
    return _page(request, "portal/confirm.html", {
        "title": f"Delete agent {agent.name}?",
        "question": "Its schedule stops and its decision log is deleted. Orders and positions it opened stay.",
        "confirm_label": "Delete the agent", "cancel_url": "portal:agents", "danger": True})


# --------------------------------------------------------------------------- decisions
@login_required
def decisions(request):
    form = forms.DecisionFilterForm(request.GET or None, agents=agent_selectors.agents_for(user=request.user))
    filters: dict[str, Any] = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {"agent_id": data["agent"].pk if data["agent"] else None, "status": data["status"] or None}
        if data["since"]:
            filters["since"] = _day_start(data["since"])
        if data["until"]:
            filters["until"] = _day_start(data["until"]) + timedelta(days=1)
    page = Paginator(agent_selectors.decisions(user=request.user, **filters), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return _page(request, "portal/decisions.html", {
        "form": form, "page": page, "filtered": any(v for v in filters.values()),
        "query": _query_without_page(request)})


@login_required
def decision_detail(request, pk: int):
    try:
        decision = agent_selectors.decision_detail(user=request.user, pk=pk)
    except Decision.DoesNotExist:
        raise Http404("No such decision.") from None
    timings = decision.node_timings or {}
    conversation = [_message(m) for m in decision.messages or [] if isinstance(m, dict)]
    return _page(request, "portal/decision_detail.html", {
        "decision": decision,
        "tool_calls": [{"call": c, "arguments": _pretty(c.arguments), "result": _pretty(c.result)}
                       for c in decision.tool_calls.all()],
        "conversation": conversation,
        "context_json": _pretty(decision.context), "market_json": _pretty(decision.market_snapshot),
        "raw_json": _pretty(decision.raw_reply),
        "timings": [(k, v) for k, v in timings.items() if k != "total"], "total_ms": timings.get("total")})


def _message(message: dict) -> dict:
    """A chat message for display: JSON content (tool results) and tool calls pretty-printed."""
    content = message.get("content")
    content_json = ""
    if isinstance(content, str) and content[:1] in ("{", "["):
        try:
            content_json = _pretty(json.loads(content))
        except ValueError:
            pass
    return {**message, "content_json": content_json,
            "tool_calls_json": _pretty(message["tool_calls"]) if message.get("tool_calls") else ""}


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def _day_start(day):
    return timezone.make_aware(datetime.combine(day, time.min))


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --------------------------------------------------------------------------- orders
@login_required
def orders(request):
    user = request.user
    accounts = _accounts_of(user)
    form = ManualOrderForm(request.POST or None, accounts=accounts, prefix="order")
    form.fields["account"].empty_label = None  # preselect the first account
    if request.method == "POST" and form.is_valid():
        kwargs = form.submit_kwargs()
        account = kwargs.pop("account")
        try:
            result = trading_services.order_submit(account=account, source=Order.Source.PORTAL,
                                                   actor=_actor(request), **kwargs)
        except ValidationError as exc:
            forms.apply_errors(form, exc)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            _order_message(request, result)
            return redirect("portal:orders")
    filters_form = forms.OrderFilterForm(request.GET or None, accounts=ExchangeAccount.objects.filter(owner=user))
    filters: dict[str, Any] = {}
    if filters_form.is_valid():
        data = filters_form.cleaned_data
        filters = {"status": data["status"] or None, "account_id": data["account"].pk if data["account"] else None,
                   "symbol": data["symbol"].strip() or None, "source": data["source"] or None}
    page = Paginator(trading_selectors.orders(user=user, **filters), PAGE_SIZE).get_page(request.GET.get("page"))
    return _page(request, "portal/orders.html", {
        "form": form, "filters": filters_form, "page": page, "filtered": any(v for v in filters.values()),
        "query": _query_without_page(request), "has_accounts": accounts.exists()},
        status=400 if form.errors else 200)


def _order_message(request, result) -> None:
    order = result.order
    label = f"{order.side} {order.quantity.normalize():f} {order.symbol}"
    if order.status == Order.Status.REJECTED and result.risk_event is not None and not result.risk_event.allowed:
        messages.error(request, f"{label}: rejected by the risk check — {result.risk_event.message}")
    elif order.status in (Order.Status.REJECTED, Order.Status.FAILED):
        messages.error(request, f"{label}: {order.get_status_display().lower()} — {order.error}")
    elif order.status == Order.Status.FILLED:
        messages.success(request, f"{label}: filled at {order.executed_price.normalize():f}.")
    else:
        messages.info(request, f"{label}: {order.get_status_display().lower()}.")


@login_required
def order_detail(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("account", "risk_event", "parent"), pk=pk,
                              owner=request.user)
    return _page(request, "portal/order_detail.html", {
        "order": order, "actor": trading_selectors.order_actor_for(order, request.user), "fills": order.fills.all(),
        "children": order.attached_orders.all(),
        "tool_calls": order.tool_calls.select_related("decision__agent")})


@login_required
@require_POST
def order_cancel(request, pk: int):
    order = get_object_or_404(Order, pk=pk, owner=request.user)
    try:
        trading_services.order_cancel(order=order, actor=_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.client_order_id} cancelled.")
    return redirect("portal:order_detail", pk=order.pk)


# --------------------------------------------------------------------------- kill switch
@login_required
def kill_switch(request):
    user = request.user
    form = forms.KillSwitchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"].strip() or "stopped from the portal"
        trading_services.kill_switch_trip(user=user, label=f"portal:{user.get_username()}", reason=reason, by=user)
        # The flattening runs in a worker: the banner's progress line (every page) and the
        # kill switch page follow it live; the dashboard's positions close as it goes.
        messages.warning(request, "Kill switch ON: new orders refused, agents halted. Your accounts are being "
                                  "flattened (open orders cancelled, positions closed at market).")
        return redirect("portal:dashboard")
    return _page(request, "portal/kill_switch.html", {
        "form": form,
        "open_orders": trading_selectors.open_order_count(user=user),
        "open_positions": trading_selectors.open_positions(user=user).count(),
        "active_agents": agent_selectors.agents_for(user=user).filter(status=AgentConfig.Status.ACTIVE).count()})


@login_required
@require_POST
def kill_switch_retry(request):
    """Flatten again the accounts a failed pass could not (the others stay done)."""
    from trading.services.kill_switch import kill_switch_flatten_retry

    if kill_switch_flatten_retry(user=request.user, by=request.user):
        messages.info(request, "Flattening queued again for the accounts that failed.")
    else:
        messages.info(request, "Nothing to retry: the flattening has not failed.")
    return redirect("portal:kill_switch")


@login_required
@require_POST
def kill_switch_lift(request):
    if trading_services.kill_switch_lift(user=request.user, by=request.user):
        messages.success(request, "Kill switch lifted. Your agents stay halted until you resume them.")
    return redirect("portal:dashboard")
