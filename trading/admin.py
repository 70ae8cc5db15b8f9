from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.template.response import TemplateResponse

from alpha_platform.common.errors import ApplicationError
from risk.services import flatten_progress_text
from trading.admin_views import manual_order_view
from trading.models import BalanceSnapshot, Fill, Order, Position
from trading.services import kill_switch_lift, kill_switch_trip, order_cancel


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    fields = ("filled_at", "side", "quantity", "price", "fee", "realized_pnl", "trade_id")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("created_at", "owner", "account", "symbol", "side", "position_side", "order_type",
                    "quantity", "price", "status", "executed_quantity", "executed_price", "source")
    list_filter = ("status", "source", "order_type", "side", "account__venue")
    search_fields = ("client_order_id", "exchange_order_id", "symbol", "owner__username", "actor")
    date_hierarchy = "created_at"
    list_select_related = ("owner", "account")
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [FillInline]
    actions = ["cancel_orders"]

    def add_view(self, request, form_url="", extra_context=None):
        # "Add order" is the manual order form: it goes through order_submit and the risk gate.
        return manual_order_view(self, request)

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel selected open orders at the venue")
    def cancel_orders(self, request, queryset):
        """Another user's orders need ``trading.change_order``; one's own need nothing more."""
        may_change_others = request.user.has_perm("trading.change_order")
        for order in queryset.select_related("account"):
            if not order.is_open:
                continue
            if order.owner_id != request.user.pk and not may_change_others:
                self.message_user(request, f"{order.client_order_id}: not cancelled — cancelling another user's "
                                           "order needs the permission to change orders.", messages.ERROR)
                continue
            try:
                order_cancel(order=order, actor=f"admin:{request.user.get_username()}")
            except ApplicationError as exc:
                self.message_user(request, f"{order.client_order_id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{order.client_order_id}: cancelled", messages.SUCCESS)


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ("opened_at", "owner", "account", "symbol", "side", "size", "entry_price", "mark_price",
                    "unrealized_pnl", "realized_pnl", "leverage", "liquidation_price", "status")
    list_filter = ("status", "side", "account__venue")
    search_fields = ("symbol", "owner__username", "account__name")
    list_select_related = ("owner", "account")
    readonly_fields = [f.name for f in Position._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(admin.ModelAdmin):
    list_display = ("taken_at", "account", "total_balance", "available_balance", "margin_balance",
                    "unrealized_pnl", "margin_used", "currency")
    list_filter = ("account__venue",)
    search_fields = ("account__name", "account__owner__username")
    date_hierarchy = "taken_at"
    list_select_related = ("account",)
    readonly_fields = [f.name for f in BalanceSnapshot._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Fill)
class FillAdmin(admin.ModelAdmin):
    list_display = ("filled_at", "account", "symbol", "side", "quantity", "price", "fee", "realized_pnl", "order")
    list_filter = ("side", "account__venue")
    search_fields = ("symbol", "trade_id", "order__client_order_id")
    readonly_fields = [f.name for f in Fill._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class PlatformUserAdmin(UserAdmin):
    """The user admin, with the user's kill switch (after a confirmation page)."""

    actions = ["trip_kill_switch", "lift_kill_switch"]

    def _refuse_others(self, request, queryset, perm: str, verb: str) -> bool:
        """One's own kill switch is one's own; another user's needs ``perm``. Refuses the whole
        action (nothing done) when any selected user is out of reach."""
        if request.user.has_perm(perm):
            return False
        others = [u.get_username() for u in queryset if u.pk != request.user.pk]
        if not others:
            return False
        self.message_user(request, f"Not done: to {verb} the kill switch of another user ({', '.join(others)}) "
                                   f"you need the permission {perm}.", messages.ERROR)
        return True

    @admin.action(description="Trip kill switch: cancel orders, close every position, halt agents")
    def trip_kill_switch(self, request, queryset):
        if self._refuse_others(request, queryset, "risk.add_killswitch", "trip"):
            return None
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(request, "admin/confirm_action.html", {
                **self.admin_site.each_context(request), "title": "Trip kill switch",
                "question": "Cancel every open order, close every position on every account and halt every "
                            "agent of these users?",
                "items": [u.get_username() for u in queryset], "ask_reason": True,
                "hidden": [("action", "trip_kill_switch")] + [("_selected_action", u.pk) for u in queryset],
                "confirm_label": "Yes, trip it", "cancel_url": request.get_full_path()})
        reason = request.POST.get("reason") or "tripped by an operator"
        for user in queryset:
            try:
                switch = kill_switch_trip(user=user, label=f"admin:{request.user.get_username()}", reason=reason,
                                          by=request.user)
            except PermissionError as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
                continue
            # The flattening runs in a worker; its progress shows live on the kill switches list.
            self.message_user(request, f"{user}: kill switch on. {flatten_progress_text(switch)}", messages.WARNING)

    @admin.action(description="Lift kill switch (agents stay paused until resumed)")
    def lift_kill_switch(self, request, queryset):
        if self._refuse_others(request, queryset, "risk.change_killswitch", "lift"):
            return
        for user in queryset:
            try:
                lifted = kill_switch_lift(user=user, by=request.user)
            except PermissionError as exc:
                self.message_user(request, f"{user}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{user}: {'lifted' if lifted else 'was not on'}")
