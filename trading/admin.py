from __future__ import annotations

from django.contrib import admin

from trading.models import BalanceSnapshot, Fill, Order, Position


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

    def has_add_permission(self, request):
        return False  # orders are placed through the order form, which goes through the risk gate

    def has_change_permission(self, request, obj=None):
        return False


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
