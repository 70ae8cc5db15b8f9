from __future__ import annotations

from django.contrib import admin

from agents.models import AgentConfig, Decision, LLMCredential, ToolCall


@admin.register(AgentConfig)
class AgentConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "account", "model_name", "symbols", "interval_seconds", "status", "last_run_at")
    list_filter = ("status", "model_name", "account__venue")
    search_fields = ("name", "owner__username", "model_name")
    list_select_related = ("owner", "account")
    readonly_fields = ("last_run_at", "created_at", "updated_at")


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    extra = 0
    can_delete = False
    fields = ("index", "round", "name", "arguments", "status", "result", "order", "risk_event", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("started_at", "agent", "owner", "status", "trigger", "model_name", "summary",
                    "prompt_tokens", "completion_tokens", "cost_usd")
    list_filter = ("status", "trigger", "model_name")
    search_fields = ("agent__name", "owner__username", "summary")
    date_hierarchy = "started_at"
    list_select_related = ("agent", "owner")
    readonly_fields = [f.name for f in Decision._meta.fields]
    inlines = [ToolCallInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(LLMCredential)
class LLMCredentialAdmin(admin.ModelAdmin):
    list_display = ("owner", "base_url", "api_key_hint", "updated_at")
    search_fields = ("owner__username",)
    fields = ("owner", "base_url", "api_key_hint")
    readonly_fields = ("api_key_hint",)
