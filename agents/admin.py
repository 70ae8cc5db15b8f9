from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.html import format_html, format_html_join

from agents import services
from agents.models import AgentConfig, Decision, LLMCredential, ToolCall
from alpha_platform.common.errors import ApplicationError


@admin.register(AgentConfig)
class AgentConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "account", "model_name", "symbols", "interval_seconds", "status", "last_run_at")
    list_filter = ("status", "model_name", "account__venue")
    search_fields = ("name", "owner__username", "model_name")
    list_select_related = ("owner", "account")
    readonly_fields = ("status", "status_reason", "last_run_at", "created_at", "updated_at")
    # Acting on (other users') agents needs agents.change_agentconfig: Django offers and
    # accepts an action only to those with its permissions (checked again on the POST).
    actions = ["pause", "resume", "run_now"]

    def save_model(self, request, obj, form, change):
        # Through the services, so the agent's beat schedule follows every change.
        if change:
            services.agent_update(agent=obj, **{f: form.cleaned_data[f] for f in form.changed_data
                                                if f in services.EDITABLE})
        else:
            fields = {f: form.cleaned_data[f] for f in form.cleaned_data if f not in ("owner", "account", "name",
                                                                                       "symbols")}
            agent = services.agent_create(owner=form.cleaned_data["owner"], account=form.cleaned_data["account"],
                                          name=form.cleaned_data["name"], symbols=form.cleaned_data["symbols"],
                                          **fields)
            obj.pk = agent.pk

    def delete_model(self, request, obj):
        services.agent_delete(agent=obj)

    def delete_queryset(self, request, queryset):
        for agent in queryset:
            services.agent_delete(agent=agent)

    @admin.action(description="Pause selected agents", permissions=["change"])
    def pause(self, request, queryset):
        for agent in queryset:
            # The owner sees the reason: another user's agent says "an operator", not a staff name.
            who = request.user.get_username() if agent.owner_id == request.user.pk else "an operator"
            services.agent_pause(agent=agent, reason=f"paused by {who} (admin)")
        self.message_user(request, f"Paused {queryset.count()} agent(s).")

    @admin.action(description="Resume selected agents", permissions=["change"])
    def resume(self, request, queryset):
        for agent in queryset:
            try:
                services.agent_resume(agent=agent)
            except ApplicationError as exc:
                self.message_user(request, f"{agent}: {exc.message}", messages.ERROR)

    @admin.action(description="Run now (one decision, queued to a worker)", permissions=["change"])
    def run_now(self, request, queryset):
        from agents.tasks import agent_tick_task

        for agent in queryset:
            transaction.on_commit(lambda pk=agent.pk: agent_tick_task.delay(pk, Decision.Trigger.MANUAL))
        self.message_user(request, f"Queued {queryset.count()} decision(s); they appear in Decisions when done.")


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    extra = 0
    can_delete = False
    fields = ("index", "round", "name", "arguments", "status", "result", "order", "risk_event", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


def _pre(value) -> str:
    return format_html('<pre style="white-space:pre-wrap;max-width:1100px">{}</pre>',
                       json.dumps(value, indent=2, default=str))


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("started_at", "agent", "owner", "status", "trigger", "model_name", "summary",
                    "prompt_tokens", "completion_tokens", "cost_usd")
    list_filter = ("status", "trigger", "model_name")
    search_fields = ("agent__name", "owner__username", "summary")
    date_hierarchy = "started_at"
    list_select_related = ("agent", "owner")
    inlines = [ToolCallInline]
    fieldsets = (
        (None, {"fields": ("agent", "owner", "status", "trigger", "model_name", "summary", "error")}),
        ("Timing and cost", {"fields": ("started_at", "deadline_at", "finished_at", "tick_id", "timings",
                                        "prompt_tokens", "completion_tokens", "cost_usd")}),
        ("What the model saw", {"fields": ("context_pretty", "conversation")}),
        ("Raw", {"classes": ("collapse",), "fields": ("market_snapshot_pretty", "raw_reply_pretty")}),
    )
    readonly_fields = ("agent", "owner", "status", "trigger", "model_name", "summary", "error", "started_at",
                       "deadline_at", "finished_at", "tick_id", "timings", "prompt_tokens", "completion_tokens", "cost_usd", "context_pretty",
                       "conversation", "market_snapshot_pretty", "raw_reply_pretty")

    @admin.display(description="Time per graph node (ms)")
    def timings(self, obj):
        return ", ".join(f"{k} {v:.0f}" for k, v in (obj.node_timings or {}).items())

    @admin.display(description="Context")
    def context_pretty(self, obj):
        return _pre(obj.context)

    @admin.display(description="Messages")
    def conversation(self, obj):
        rows = ((m.get("role", "?"), m.get("content") or json.dumps(m.get("tool_calls", ""), default=str))
                for m in obj.messages or [])
        return format_html_join("", '<p><b>{}</b><br><span style="white-space:pre-wrap">{}</span></p>', rows)

    @admin.display(description="Market snapshot")
    def market_snapshot_pretty(self, obj):
        return _pre(obj.market_snapshot)

    @admin.display(description="Raw replies")
    def raw_reply_pretty(self, obj):
        return _pre(obj.raw_reply)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LLMCredentialForm(forms.ModelForm):
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=200)

    class Meta:
        model = LLMCredential
        fields = ("owner", "base_url")

    def clean_base_url(self) -> str:
        try:
            return services.llm_base_url_check(self.cleaned_data.get("base_url") or "")
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["base_url"]) from None


@admin.register(LLMCredential)
class LLMCredentialAdmin(admin.ModelAdmin):
    form = LLMCredentialForm  # the admin saves a base URL through the same check as the API
    list_display = ("owner", "base_url", "api_key_hint", "updated_at")
    search_fields = ("owner__username",)
    fields = ("owner", "base_url", "api_key_hint")
    readonly_fields = ("api_key_hint",)
