from __future__ import annotations

from celery import current_app
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from risk.forms import RiskProfileAdminForm
from risk.models import KillSwitch, RiskEvent, RiskProfile
from risk.services import (
    can_trip_global_halt,
    flatten_progress_text,
    global_halt_active,
    global_halt_lift,
    global_halt_trip,
    kill_switch_flatten_retry_mark,
    user_halt_lift,
)


@admin.register(RiskProfile)
class RiskProfileAdmin(admin.ModelAdmin):
    form = RiskProfileAdminForm
    list_display = ("user", "max_leverage", "max_position_notional_usd", "max_total_exposure_percent",
                    "max_exchange_exposure_percent", "daily_loss_limit_percent", "monthly_llm_budget_usd",
                    "updated_at")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("user",)}),
        ("Size and leverage", {"fields": ("max_leverage", "max_position_notional_usd", "max_position_percent",
                                          "min_notional_usd", "max_open_positions", "allowed_symbols")}),
        ("Exposure (shares of equity: 0.3 = 30%)", {"fields": ("max_total_exposure_percent",
                                                                "max_exchange_exposure_percent",
                                                                "daily_loss_limit_percent")}),
        ("Frequency", {"fields": ("max_orders_per_minute", "max_orders_per_hour", "loss_cooldown_seconds")}),
        ("LLM spend", {"fields": ("monthly_llm_budget_usd",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def save_model(self, request, obj, form, change):
        from risk.services import risk_profile_update

        if change:
            risk_profile_update(profile=obj, **{f: form.cleaned_data[f] for f in form.changed_data
                                                if f != "user"})
        else:
            super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False  # a user always has exactly one


@admin.register(RiskEvent)
class RiskEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "allowed", "rule", "symbol", "venue", "actor", "short_message")
    list_filter = ("kind", "allowed", "rule", "venue")
    search_fields = ("user__username", "message", "symbol", "actor")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = [f.name for f in RiskEvent._meta.fields]

    @admin.display(description="Message")
    def short_message(self, obj: RiskEvent) -> str:
        return obj.message if len(obj.message) <= 100 else obj.message[:97] + "…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


FLATTEN_TASK = "trading.kill_switch_flatten"


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    # Staff see who did it (tripped_by, lifted_by); users only ever see the label ("an operator").
    list_display = ("created_at", "scope", "user", "active", "tripped_by_label", "tripped_by", "reason",
                    "flattening", "lifted_at", "lifted_by")
    list_filter = ("scope", "active", "flatten_state")
    search_fields = ("user__username", "reason", "tripped_by_label", "tripped_by__username")
    list_select_related = ("user", "tripped_by", "lifted_by")
    readonly_fields = [f.name for f in KillSwitch._meta.fields]
    actions = ["lift", "retry_flatten"]
    change_list_template = "admin/risk/killswitch_changelist.html"

    @admin.display(description="Flattening", ordering="flatten_state")
    def flattening(self, obj: KillSwitch) -> str:
        # Live: the list refreshes on every kill_switch event (admin_live.js).
        return flatten_progress_text(obj) or "—"

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        return [path("global-halt/", self.admin_site.admin_view(self.global_halt_view),
                     name="risk_killswitch_global_halt")] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "global_halt": global_halt_active(),
                         "can_global_halt": can_trip_global_halt(request.user)}
        return super().changelist_view(request, extra_context)

    def global_halt_view(self, request):
        """Trip (with a reason) or lift the platform-wide halt, after a confirmation. Needs
        ``risk.trip_global_halt`` (403 otherwise, on the page as on the POST)."""
        if not can_trip_global_halt(request.user):
            raise PermissionDenied
        active = global_halt_active()
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            try:
                if active:
                    global_halt_lift(by=request.user)
                    self.message_user(request, "Global halt lifted: orders flow again.", messages.SUCCESS)
                else:
                    global_halt_trip(by=request.user, reason=request.POST.get("reason", ""))
                    self.message_user(request, "Global halt ON: every order on the platform is refused.",
                                      messages.WARNING)
            except PermissionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:risk_killswitch_changelist")
        return TemplateResponse(request, "admin/confirm_action.html", {
            **self.admin_site.each_context(request),
            "title": "Lift the global halt" if active else "Halt all trading",
            "question": ("Let orders flow again on the whole platform?" if active else
                         "Refuse every order of every user, agents and manual alike, until lifted?"),
            "ask_reason": not active, "hidden": [],
            "confirm_label": "Yes, lift it" if active else "Yes, halt everything",
            "cancel_url": reverse("admin:risk_killswitch_changelist")})

    @admin.action(description="Lift the selected kill switches")
    def lift(self, request, queryset):
        """The global halt needs ``risk.trip_global_halt``; another user's switch
        ``risk.change_killswitch`` (the services refuse otherwise)."""
        for switch in queryset.filter(active=True).select_related("user"):
            try:
                if switch.scope == KillSwitch.Scope.GLOBAL:
                    global_halt_lift(by=request.user)
                else:
                    user_halt_lift(user=switch.user, by=request.user)
            except PermissionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{switch}: lifted", messages.SUCCESS)

    @admin.action(description="Retry the flattening of the selected (failed) kill switches")
    def retry_flatten(self, request, queryset):
        """Queue again the accounts a failed flattening could not do. Another user's switch
        needs ``risk.change_killswitch``."""
        if not request.user.has_perm("risk.change_killswitch"):
            self.message_user(request, "Retrying a flattening needs the permission to change kill switches.",
                              messages.ERROR)
            return
        for switch in queryset.filter(scope=KillSwitch.Scope.USER, active=True):
            with transaction.atomic():
                retried = kill_switch_flatten_retry_mark(switch_id=switch.pk)
                if retried is not None:
                    # By name: the task is trading's, and risk does not import trading.
                    transaction.on_commit(lambda pk=switch.pk: current_app.send_task(
                        FLATTEN_TASK, args=[pk]), robust=True)
            self.message_user(request, f"{switch}: flattening queued again" if retried else
                              f"{switch}: its flattening has not failed", messages.INFO)

    def has_change_permission(self, request, obj=None):
        return False
