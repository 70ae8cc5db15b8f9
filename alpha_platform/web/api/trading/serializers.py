"""Serializers of the trading API. Money, prices and quantities are JSON strings."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from alpha_platform.web.api.common import ApiModelSerializer, MoneyField
from alpha_platform.web.api.exchanges.views import AccountBriefSerializer, venue_choices, venue_order_capabilities
from alpha_platform.web.api.risk.views import KillSwitchProgressSerializer
from exchanges.models import ExchangeAccount
from risk.models import KillSwitch, RiskEvent
from trading.models import Order, Position, PositionSide, Side
from trading.selectors import order_actor_for
from trading.services.orders import CLIENT_ID, RESERVED_PREFIX, client_order_id_error

TIME_IN_FORCE = ["GTC", "IOC", "FOK", "ALO"]


class RiskVerdictSerializer(ApiModelSerializer):
    class Meta:
        model = RiskEvent
        fields = ["allowed", "rule", "message", "details"]
        read_only_fields = fields


class OrderSerializer(ApiModelSerializer):
    account = AccountBriefSerializer(read_only=True)
    venue = serializers.CharField(source="account.venue", read_only=True)
    risk = RiskVerdictSerializer(source="risk_event", read_only=True, allow_null=True,
                                 help_text="The risk gate's verdict on this order.")
    actor = serializers.SerializerMethodField(
        help_text='Who placed it: "agent:<id>", "user:<id>", or "an operator" for staff acting on your account.')

    class Meta:
        model = Order
        fields = ["id", "client_order_id", "exchange_order_id", "account", "venue", "symbol", "side",
                  "position_side", "order_type", "reduce_only", "time_in_force", "quantity", "price", "stop_price",
                  "leverage", "status", "executed_quantity", "executed_price", "fees", "fee_currency", "error",
                  "source", "actor", "parent", "risk", "created_at", "submitted_at", "closed_at", "updated_at"]
        read_only_fields = fields

    def get_actor(self, order: Order) -> str:
        request = self.context.get("request")
        return order_actor_for(order, getattr(request, "user", None))


class OrderCreateSerializer(serializers.Serializer):
    """A manual order. Give ``account``, or ``venue`` when you have exactly one account there."""

    account = serializers.PrimaryKeyRelatedField(queryset=ExchangeAccount.objects.none(), required=False,
                                                 allow_null=True, help_text="One of your exchange account ids.")
    venue = serializers.ChoiceField(choices=[], required=False, allow_null=True,
                                    help_text="Instead of account: the venue of your only account there.")
    symbol = serializers.CharField(max_length=32, help_text='Internal symbol, e.g. "BTC/USDT".')
    side = serializers.ChoiceField(choices=Side.choices)
    position_side = serializers.ChoiceField(
        choices=PositionSide.choices,
        help_text="BUY+LONG opens a long, SELL+LONG closes it; SELL+SHORT opens a short, BUY+SHORT closes it.")
    quantity = MoneyField(help_text="In the base asset, e.g. 0.01 (BTC).")
    order_type = serializers.ChoiceField(choices=Order.Type.choices, default=Order.Type.MARKET)
    price = MoneyField(required=False, allow_null=True, help_text="Limit price (LIMIT orders).")
    stop_price = MoneyField(required=False, allow_null=True,
                            help_text="Trigger price (STOP_MARKET and TAKE_PROFIT_MARKET orders).")
    leverage = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=125)
    reduce_only = serializers.BooleanField(default=False)
    time_in_force = serializers.ChoiceField(choices=TIME_IN_FORCE, required=False,
                                            help_text="Defaults to GTC; the venue must support it.")
    stop_loss = MoneyField(required=False, allow_null=True, help_text="Attach a protective stop at this price.")
    take_profit = MoneyField(required=False, allow_null=True, help_text="Attach a take-profit at this price.")
    client_order_id = serializers.CharField(
        required=False, max_length=32, validators=[RegexValidator(CLIENT_ID.pattern)],
        help_text="Your id for idempotent retries (1 to 32 of A-Z a-z 0-9 _ - : .): sending the same id again "
                  "for the same account returns that order instead of placing a second one. Ids are per "
                  "account: other accounts' ids neither clash with yours nor show. Ids starting with "
                  f'"{RESERVED_PREFIX}" are reserved for the platform\'s own orders and refused.')

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["account"].queryset = ExchangeAccount.objects.filter(owner=request.user)
        self.fields["venue"].choices = venue_choices()

    def validate_client_order_id(self, value: str) -> str:
        # The same check as order_submit's, here so that it answers before anything else is
        # looked at; it depends on the id alone, never on which ids exist.
        error = client_order_id_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        account = attrs.get("account")
        venue = attrs.pop("venue", None)
        if account is None and not venue:
            raise serializers.ValidationError({"account": "Give account (an exchange account id) or venue."})
        if account is not None and venue and account.venue != venue:
            raise serializers.ValidationError(
                {"venue": f"Account {account.pk} is on {account.venue}, not {venue}."})
        if account is None:
            request = self.context["request"]
            candidates = list(ExchangeAccount.objects.filter(owner=request.user, venue=venue).order_by("name")[:3])
            if not candidates:
                raise serializers.ValidationError({"venue": f"You have no account on {venue}."})
            if len(candidates) > 1:
                raise serializers.ValidationError(
                    {"venue": f"You have more than one account on {venue}: give account instead."})
            account = attrs["account"] = candidates[0]
        order_types, tifs = venue_order_capabilities(account.venue)
        if attrs["order_type"] not in order_types:
            raise serializers.ValidationError(
                {"order_type": f"{attrs['order_type']} orders are not supported on {account.venue}."})
        if attrs.get("time_in_force") and attrs["time_in_force"] not in tifs:
            raise serializers.ValidationError(
                {"time_in_force": f"{account.venue} supports {', '.join(tifs)}."})
        return attrs


class OrderRejectionExtraSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="The risk rule that refused the order, or venue_rejected / venue_failed, "
                                           "or not_sent (503: nothing reached the venue).")
    details = serializers.DictField(child=serializers.JSONField(), help_text="The numbers behind the verdict.")
    order = OrderSerializer(help_text="The order as recorded (status REJECTED or FAILED).")


class OrderRejectionSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="Why, in a sentence.")
    extra = OrderRejectionExtraSerializer()


class OrderPendingExtraSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text='Always "pending_confirmation".')
    details = serializers.DictField(child=serializers.JSONField(), help_text="Empty.")
    order = OrderSerializer(help_text="The order as recorded (status UNKNOWN until the platform settles it).")


class OrderPendingSerializer(serializers.Serializer):
    message = serializers.CharField(
        help_text="pending confirmation: the venue's answer was lost; do not resend, the platform will settle it")
    extra = OrderPendingExtraSerializer()


class PositionSerializer(ApiModelSerializer):
    account = AccountBriefSerializer(read_only=True)
    venue = serializers.CharField(source="account.venue", read_only=True)
    notional = MoneyField(read_only=True, help_text="size x mark price, in USD.")

    class Meta:
        model = Position
        fields = ["id", "account", "venue", "symbol", "side", "status", "size", "entry_price", "mark_price",
                  "notional", "unrealized_pnl", "realized_pnl", "percentage_pnl", "leverage", "margin",
                  "liquidation_price", "margin_type", "position_id", "opened_at", "closed_at", "updated_at"]
        read_only_fields = fields


# --------------------------------------------------------------------------- balance, equity, PnL
class BalanceFiguresSerializer(serializers.Serializer):
    total_balance = MoneyField()
    available_balance = MoneyField()
    margin_balance = MoneyField(help_text="Equity: wallet balance plus unrealized PnL.")
    unrealized_pnl = MoneyField()
    margin_used = MoneyField()


class AccountBalanceSerializer(serializers.Serializer):
    account = AccountBriefSerializer()
    venue = serializers.CharField()
    currency = serializers.CharField(allow_null=True)
    total_balance = MoneyField(allow_null=True)
    available_balance = MoneyField(allow_null=True)
    margin_balance = MoneyField(allow_null=True)
    unrealized_pnl = MoneyField(allow_null=True)
    margin_used = MoneyField(allow_null=True)
    can_trade = serializers.BooleanField(allow_null=True)
    taken_at = serializers.DateTimeField(allow_null=True,
                                         help_text="When the figures were read from the venue (null: not yet).")


class VenueBalanceSerializer(BalanceFiguresSerializer):
    venue = serializers.CharField()
    display_name = serializers.CharField()


class BalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    total = BalanceFiguresSerializer()
    by_venue = VenueBalanceSerializer(many=True)
    accounts = AccountBalanceSerializer(many=True)


class EquityCurveSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    accounts = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField(child=serializers.CharField(), min_length=2,
                                                                max_length=2)),
        help_text='Per account name: [["<ISO time>", "<equity>"], ...].')
    total = serializers.ListField(child=serializers.ListField(child=serializers.CharField(), min_length=2,
                                                              max_length=2),
                                  help_text='[["<ISO time>", "<equity of all accounts>"], ...].')


class PnlTodaySerializer(serializers.Serializer):
    equity = MoneyField(allow_null=True)
    day_start_equity = MoneyField(allow_null=True)
    change = MoneyField(allow_null=True)
    realized = MoneyField()
    fees = MoneyField()
    unrealized = MoneyField()
    loss_limit = MoneyField(allow_null=True, help_text="Today's loss that trips the kill switch, in USD.")
    limit_used = MoneyField(help_text="Share of the daily loss limit used, 0 to 1.")
    limit_percent = MoneyField(help_text="The daily loss limit as a share of the day's starting equity.")


class PnlDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    realized = MoneyField()
    fees = MoneyField()
    net = MoneyField()
    fills = serializers.IntegerField()


class PnlAccountSerializer(serializers.Serializer):
    account = AccountBriefSerializer()
    realized = MoneyField()
    fees = MoneyField()
    funding = MoneyField(help_text="Funding received on the account's positions (negative: paid).")
    unrealized = MoneyField()


class PnlSerializer(serializers.Serializer):
    today = PnlTodaySerializer()
    by_day = PnlDaySerializer(many=True)
    by_account = PnlAccountSerializer(many=True)


# --------------------------------------------------------------------------- kill switch
class KillSwitchSerializer(ApiModelSerializer):
    flatten = KillSwitchProgressSerializer(source="*", read_only=True, help_text=(
        "The flattening (cancel orders, close positions) a worker does after the trip, as it goes."))

    class Meta:
        model = KillSwitch
        fields = ["id", "scope", "active", "reason", "tripped_by_label", "created_at", "lifted_at", "summary",
                  "flatten"]
        read_only_fields = fields


class KillSwitchStatusSerializer(serializers.Serializer):
    active = serializers.BooleanField(help_text="Your kill switch is on: no new orders, agents halted.")
    switch = KillSwitchSerializer(allow_null=True)
    global_halt = KillSwitchSerializer(allow_null=True, help_text="A platform-wide halt by the operators.")
    trading_allowed = serializers.BooleanField()


class KillSwitchTripSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="Tripped through the API")
