from __future__ import annotations

from django.contrib import admin

from risk.models import KillSwitch, RiskEvent, RiskProfile


@admin.register(RiskProfile)
class RiskProfileAdmin(admin.ModelAdmin):
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


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    list_display = ("created_at", "scope", "user", "active", "tripped_by_label", "reason", "lifted_at")
    list_filter = ("scope", "active")
    search_fields = ("user__username", "reason", "tripped_by_label")
    readonly_fields = [f.name for f in KillSwitch._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
