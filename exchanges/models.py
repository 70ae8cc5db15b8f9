from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from alpha_platform.common import crypto
from alpha_platform.common.models import EncryptedTextField, TimeStampedModel, decimal_field
from alpha_platform.common.secrets import Credentials


def validate_venue(value: str) -> None:
    from alpha_platform.common.config import get_config

    venues = get_config().venues
    if value not in venues:
        raise ValidationError(
            f"Unknown venue {value!r}; choose one of: {', '.join(venues)}", code="unknown_venue"
        )


class ExchangeAccount(TimeStampedModel):
    class Status(models.TextChoices):
        UNTESTED = "untested", "Not tested yet"
        OK = "ok", "Connected"
        ERROR = "error", "Error"
        DISABLED = "disabled", "Disabled"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="exchange_accounts")
    name = models.CharField(max_length=100)
    venue = models.CharField(max_length=32, validators=[validate_venue], db_index=True)
    testnet = models.BooleanField(default=False)
    # Ciphertext only (a Fernet token of the JSON credentials). Read through credentials().
    credentials_encrypted = EncryptedTextField()
    # A non-secret hint so a person can tell keys apart (e.g. "api_key …9f3a").
    credentials_hint = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNTESTED)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="exchange_account_unique_name"),
            models.CheckConstraint(condition=~models.Q(name=""), name="exchange_account_name_not_empty"),
            models.CheckConstraint(
                condition=models.Q(status__in=["untested", "ok", "error", "disabled"]),
                name="exchange_account_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.venue}{', testnet' if self.testnet else ''})"

    def __repr__(self) -> str:
        return f"<ExchangeAccount id={self.pk} owner={self.owner_id} venue={self.venue} name={self.name!r}>"

    def credentials(self) -> Credentials:
        """Decrypt on demand. Raises CredentialsError if no configured key fits."""
        return crypto.decrypt_credentials(self.credentials_encrypted)

    @property
    def account_ref(self) -> str:
        return f"acct{self.pk}"


class PaperAccountState(TimeStampedModel):
    """The paper venue's book for one account (``exchanges.paper_store.DjangoPaperStore``).

    ``book`` is the ``PaperBook``'s state as JSON (Decimals as strings: wallet, positions,
    leverage, totals); its orders are ``PaperOrderRecord`` rows. The columns beside it are
    copies kept for queries and admin lists. The row is also the account's lock: every
    change to the book happens under ``select_for_update`` on it.
    """

    account_ref = models.CharField(max_length=64, unique=True)
    # Set when the ref names an ExchangeAccount ("acct<pk>"), so deleting the account
    # deletes its simulated book.
    account = models.OneToOneField(ExchangeAccount, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="paper_state")
    starting_balance = decimal_field()
    wallet_balance = decimal_field()
    open_positions = models.JSONField(default=dict, blank=True)  # symbol -> {quantity, entry_price}
    open_orders = models.PositiveIntegerField(default=0)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    book = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["account_ref"]
        verbose_name = "paper account state"

    def __str__(self) -> str:
        return f"paper book {self.account_ref}"


class PaperOrderRecord(models.Model):
    """One order of a paper book, with its fills (``PaperOrder.to_dict()`` in ``data``); the
    columns beside it are what the store looks orders up by."""

    state = models.ForeignKey(PaperAccountState, on_delete=models.CASCADE, related_name="order_records")
    order_id = models.CharField(max_length=32)
    client_order_id = models.CharField(max_length=128)
    is_open = models.BooleanField()
    liquidation = models.BooleanField(default=False)
    updated_at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["state", "order_id"], name="paper_order_id_per_book")]
        # Partial indexes: "is_open" and "liquidation" are tested as bare booleans, which a
        # column of a composite index cannot serve (SQLite then scans the book's records).
        indexes = [
            models.Index(fields=["state", "client_order_id"], name="paper_order_cid"),
            models.Index(fields=["state"], condition=models.Q(is_open=True), name="paper_order_open"),
            models.Index(fields=["state", "updated_at"], condition=models.Q(liquidation=True),
                         name="paper_order_liquidation"),
        ]

    def __str__(self) -> str:
        return f"paper order {self.order_id} ({self.client_order_id})"


class PaperFundingRecord(models.Model):
    """One funding payment of a paper book (``PaperFunding.to_dict()`` in ``data``)."""

    state = models.ForeignKey(PaperAccountState, on_delete=models.CASCADE, related_name="funding_records")
    payment_id = models.CharField(max_length=32)
    funding_time = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        ordering = ["funding_time", "pk"]
        constraints = [models.UniqueConstraint(fields=["state", "payment_id"], name="paper_funding_id_per_book")]
        indexes = [models.Index(fields=["state", "funding_time"], name="paper_funding_time")]

    def __str__(self) -> str:
        return f"paper funding {self.payment_id}"
