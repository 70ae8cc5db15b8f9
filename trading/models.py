from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from alpha_platform.common import vocabulary as v
from alpha_platform.common.models import TimeStampedModel, decimal_field

# The choices take their values from the vocabulary (alpha_platform/common/vocabulary.py);
# only the labels are said here.


class Side(models.TextChoices):
    BUY = v.OrderSide.BUY.value, "Buy"
    SELL = v.OrderSide.SELL.value, "Sell"


class PositionSide(models.TextChoices):
    LONG = v.PositionSide.LONG.value, "Long"
    SHORT = v.PositionSide.SHORT.value, "Short"


class Order(TimeStampedModel):
    """An order as the platform knows it. Saved as PENDING with its client order id before
    it is sent, so an order accepted by a venue is never lost."""

    class Type(models.TextChoices):
        MARKET = v.OrderType.MARKET.value, "Market"
        LIMIT = v.OrderType.LIMIT.value, "Limit"
        STOP_MARKET = v.OrderType.STOP_MARKET.value, "Stop market"
        TAKE_PROFIT_MARKET = v.OrderType.TAKE_PROFIT_MARKET.value, "Take profit market"

    class Status(models.TextChoices):
        PENDING = v.RecordedStatus.PENDING.value, "Pending (being sent)"
        NEW = v.RecordedStatus.NEW.value, "Open at venue"
        PARTIALLY_FILLED = v.RecordedStatus.PARTIALLY_FILLED.value, "Partially filled"
        FILLED = v.RecordedStatus.FILLED.value, "Filled"
        CANCELLED = v.RecordedStatus.CANCELLED.value, "Cancelled"
        REJECTED = v.RecordedStatus.REJECTED.value, "Rejected"
        EXPIRED = v.RecordedStatus.EXPIRED.value, "Expired"
        FAILED = v.RecordedStatus.FAILED.value, "Failed"
        UNKNOWN = v.RecordedStatus.UNKNOWN.value, "Unknown (awaiting reconciliation)"
        LOST = v.RecordedStatus.LOST.value, "Lost (venue does not know it)"

    OPEN_STATUSES = v.OPEN_ORDER_STATUSES

    class Source(models.TextChoices):
        AGENT = "agent", "Agent"
        API = "api", "API"
        PORTAL = "portal", "Portal"
        ADMIN = "admin", "Admin"
        SYSTEM = "system", "System (kill switch, protective orders)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders")
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="orders")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="attached_orders", help_text="For attached stop-loss / take-profit.")
    risk_event = models.OneToOneField("risk.RiskEvent", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="order")
    source = models.CharField(max_length=8, choices=Source.choices)
    actor = models.CharField(max_length=100, blank=True, default="", help_text="agent:<id>, user:<id>, ...")
    # Unique within its account only: another user's ids are neither visible nor blocking.
    client_order_id = models.CharField(max_length=64)
    # The venue's form of client_order_id (Hyperliquid's cloid), recorded before sending, so
    # any process, with any adapter instance, maps the venue's orders back to ours.
    venue_client_order_id = models.CharField(max_length=66, blank=True, default="")
    exchange_order_id = models.CharField(max_length=100, blank=True, default="", db_index=True)
    symbol = models.CharField(max_length=32, db_index=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    position_side = models.CharField(max_length=5, choices=PositionSide.choices)
    order_type = models.CharField(max_length=20, choices=Type.choices, default=Type.MARKET)
    reduce_only = models.BooleanField(default=False)
    time_in_force = models.CharField(max_length=8, default="GTC")
    quantity = decimal_field()
    price = decimal_field(null=True, blank=True)
    stop_price = decimal_field(null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    executed_quantity = decimal_field(default=0)
    executed_price = decimal_field(null=True, blank=True)
    fees = decimal_field(default=0)
    fee_currency = models.CharField(max_length=10, default="USDT")
    error = models.TextField(blank=True, default="")
    raw_data = models.JSONField(default=dict, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    lookup_failures = models.PositiveSmallIntegerField(default=0)
    # The mark the risk check valued this order at, recorded under the user's risk lock when
    # the order was created: every later check values the order in flight from this figure
    # (or a fresher mark of its symbol), never as nothing.
    reference_price = decimal_field(null=True, blank=True)
    # When this order's executed quantity was folded into a Position row (a position state
    # read after the fill was recorded). Until then the fill counts in every risk picture.
    position_folded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["account", "status"]),
            models.Index(fields=["account", "venue_client_order_id"]),
            # The risk picture's unfolded fills: few rows, found without scanning history.
            models.Index(fields=["owner", "position_folded_at"], name="order_unfolded_fills",
                         condition=Q(executed_quantity__gt=0, position_folded_at__isnull=True)),
        ]
        permissions = [
            ("place_order_for_others", "Can place orders on other users' accounts (admin order form)"),
            ("watch_all_users", "Can receive every user's live updates (the staff stream)"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["account", "client_order_id"], name="order_client_id_unique_per_account"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(executed_quantity__gte=0), name="order_executed_non_negative"),
            models.CheckConstraint(condition=Q(executed_quantity__lte=F("quantity")),
                                   name="order_executed_not_above_quantity"),
            models.CheckConstraint(condition=Q(price__isnull=True) | Q(price__gt=0), name="order_price_positive"),
            models.CheckConstraint(condition=~Q(order_type=v.OrderType.LIMIT.value) | Q(price__isnull=False),
                                   name="order_limit_has_price"),
            models.CheckConstraint(
                condition=~Q(order_type__in=list(v.TRIGGER_ORDER_TYPES)) | Q(stop_price__isnull=False),
                name="order_trigger_has_stop_price"),
            models.CheckConstraint(condition=Q(side__in=list(v.ORDER_SIDES)), name="order_side_valid"),
            models.CheckConstraint(condition=Q(position_side__in=list(v.POSITION_SIDES)),
                                   name="order_position_side_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} {self.order_type} [{self.status}]"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="fills")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = decimal_field()
    price = decimal_field()
    fee = decimal_field(default=0)
    realized_pnl = decimal_field(default=0)
    trade_id = models.CharField(max_length=100)
    filled_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-filled_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "trade_id"], name="fill_unique_trade"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class FundingPayment(models.Model):
    """A funding payment the venue booked on one of the account's positions: ``amount`` is
    what the account received (negative: paid). Part of the account's PnL and its ledger:
    wallet = start + realized - fees + funding."""

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE,
                                related_name="funding_payments")
    symbol = models.CharField(max_length=32)
    payment_id = models.CharField(max_length=100)  # the venue's id, unique per account
    funding_time = models.DateTimeField(db_index=True)
    rate = decimal_field()
    mark_price = decimal_field()
    quantity = decimal_field()  # the position's signed size then
    amount = decimal_field()

    class Meta:
        ordering = ["-funding_time", "-id"]
        constraints = [models.UniqueConstraint(fields=["account", "payment_id"], name="funding_unique_payment")]

    def __str__(self) -> str:
        return f"funding {self.amount} on {self.symbol} at {self.funding_time:%Y-%m-%d %H:%M}"


class Position(TimeStampedModel):
    """The platform's record of a venue position, kept in line by order results and
    reconciliation. Closed positions are kept for history and PnL."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        LIQUIDATED = "liquidated", "Liquidated"

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="positions")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    size = decimal_field()
    entry_price = decimal_field()
    mark_price = decimal_field()
    unrealized_pnl = decimal_field(default=0)
    realized_pnl = decimal_field(default=0)
    percentage_pnl = decimal_field(default=0)
    leverage = decimal_field(default=1)
    margin = decimal_field(default=0)
    liquidation_price = decimal_field(null=True, blank=True)
    margin_type = models.CharField(max_length=10, default=v.MarginMode.CROSS.value)
    position_id = models.CharField(max_length=100, blank=True, default="")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    raw_data = models.JSONField(default=dict, blank=True)
    # The venue's time of the state this row holds, and when our read of it began: a
    # positions_sync holding an older state than either leaves the row alone, so writers
    # committing out of order never put an older state over a newer one.
    venue_state_at = models.DateTimeField(null=True, blank=True)
    read_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol", "side"], condition=Q(status="open"),
                                    name="position_one_open_per_symbol_side"),
            models.CheckConstraint(condition=Q(size__gte=0), name="position_size_non_negative"),
            models.CheckConstraint(condition=~Q(status="open") | Q(size__gt=0), name="position_open_has_size"),
            models.CheckConstraint(condition=Q(leverage__gt=0), name="position_leverage_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.size} {self.symbol} [{self.status}]"

    @property
    def notional(self):
        return self.size * self.mark_price


class BalanceSnapshot(models.Model):
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE,
                                related_name="balance_snapshots")
    taken_at = models.DateTimeField(db_index=True)
    currency = models.CharField(max_length=10, default="USDT")
    total_balance = decimal_field()
    available_balance = decimal_field()
    margin_balance = decimal_field()
    unrealized_pnl = decimal_field(default=0)
    margin_used = decimal_field(default=0)
    maintenance_margin = decimal_field(default=0)
    can_trade = models.BooleanField(default=True)
    account_type = models.CharField(max_length=16, default="futures")
    raw_data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-taken_at", "-id"]
        indexes = [models.Index(fields=["account", "-taken_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(total_balance__gte=0), name="balance_total_non_negative"),
            models.CheckConstraint(condition=Q(available_balance__gte=0), name="balance_available_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.margin_balance} {self.currency} @ {self.taken_at:%Y-%m-%d %H:%M}"
