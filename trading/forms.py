"""The manual order form (admin now, the portal later): it only collects the intent;
order_submit validates it and runs the risk gate."""

from __future__ import annotations

from django import forms

from exchanges.models import ExchangeAccount
from trading.models import Order, PositionSide, Side


class ManualOrderForm(forms.Form):
    account = forms.ModelChoiceField(queryset=ExchangeAccount.objects.none())
    symbol = forms.CharField(max_length=32, initial="BTC/USDT", help_text='Internal symbol, e.g. "BTC/USDT".')
    side = forms.ChoiceField(choices=Side.choices)
    position_side = forms.ChoiceField(choices=PositionSide.choices, label="Position side",
                                      help_text="BUY+LONG opens a long, SELL+LONG closes it; SELL+SHORT opens a short.")
    order_type = forms.ChoiceField(choices=Order.Type.choices, initial=Order.Type.MARKET)
    quantity = forms.DecimalField(min_value=0, max_digits=32, decimal_places=12)
    price = forms.DecimalField(required=False, min_value=0, max_digits=32, decimal_places=12,
                               help_text="Limit price (LIMIT orders).")
    stop_price = forms.DecimalField(required=False, min_value=0, max_digits=32, decimal_places=12,
                                    help_text="Trigger price (STOP_MARKET / TAKE_PROFIT_MARKET).")
    leverage = forms.IntegerField(required=False, min_value=1, max_value=125)
    reduce_only = forms.BooleanField(required=False)
    stop_loss = forms.DecimalField(required=False, min_value=0, max_digits=32, decimal_places=12)
    take_profit = forms.DecimalField(required=False, min_value=0, max_digits=32, decimal_places=12)

    def __init__(self, *args, accounts=None, **kwargs):
        super().__init__(*args, **kwargs)
        # The caller says which accounts the person may use (admin: their own, or all with
        # trading.place_order_for_others); none by default. Validation accepts only these.
        self.fields["account"].queryset = accounts if accounts is not None else ExchangeAccount.objects.none()

    def submit_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        return {k: v for k, v in data.items() if v not in (None, "")}
