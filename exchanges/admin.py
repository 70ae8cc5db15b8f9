from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction

from exchanges.forms import ExchangeAccountForm
from exchanges.models import ExchangeAccount
from exchanges import services


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    form = ExchangeAccountForm
    list_display = ("name", "owner", "venue", "testnet", "status", "credentials_hint", "last_checked_at", "created_at")
    list_filter = ("venue", "testnet", "status")
    search_fields = ("name", "owner__username", "owner__email")
    readonly_fields = ("credentials_display", "status", "last_error", "last_checked_at", "created_at", "updated_at")
    list_select_related = ("owner",)
    # Uses the owner's credentials and records the result: exchanges.change_exchangeaccount.
    actions = ["test_connection"]

    fieldsets = (
        (None, {"fields": ("owner", "name", "venue", "testnet")}),
        ("Credentials (write-only: leave empty to keep the stored ones)", {
            "fields": ("credentials_display", "api_key", "api_secret", "private_key", "account_address"),
        }),
        ("Status", {"fields": ("status", "last_error", "last_checked_at", "created_at", "updated_at")}),
    )

    @admin.display(description="Stored credentials")
    def credentials_display(self, obj: ExchangeAccount) -> str:
        if not obj.pk or not obj.credentials_encrypted:
            return "none"
        return f"•••••••• (encrypted){' — ' + obj.credentials_hint if obj.credentials_hint else ''}"

    def save_model(self, request, obj, form, change):
        # Through the services, never a raw save: validation and encryption live there.
        creds = form.credentials_given()
        with transaction.atomic():
            if not change:
                account = services.exchange_account_create(
                    owner=form.cleaned_data["owner"], name=form.cleaned_data["name"],
                    venue=form.cleaned_data["venue"], credentials=creds,
                    testnet=form.cleaned_data["testnet"])
                obj.pk = account.pk
                obj.__dict__.update(account.__dict__)
                return
            services.exchange_account_update(account=obj, name=form.cleaned_data["name"],
                                             testnet=form.cleaned_data["testnet"])
            if creds:
                services.exchange_account_set_credentials(account=obj, credentials=creds)

    def delete_model(self, request, obj):
        try:
            services.exchange_account_delete(account=obj)
        except ValidationError as exc:
            self.message_user(request, f"{obj} was not deleted: {' '.join(exc.messages)}", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for account in queryset:
            self.delete_model(request, account)

    @admin.action(description="Test connection (fetch the balance)", permissions=["change"])
    def test_connection(self, request, queryset):
        from exchanges.services import exchange_account_test_connection

        for account in queryset:
            result = exchange_account_test_connection(account=account)
            level = messages.SUCCESS if result.status == ExchangeAccount.Status.OK else messages.ERROR
            self.message_user(request, f"{account}: {result.get_status_display()}"
                              f"{' — ' + result.last_error if result.last_error else ''}", level)
