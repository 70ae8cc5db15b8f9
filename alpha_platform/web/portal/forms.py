"""Portal forms. They collect and shape input; the services validate it again and write.

A service's ValidationError is put back on the form next to the field it names
(``apply_errors``), so the person sees every message where it belongs.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError

from agents.models import MIN_INTERVAL_SECONDS
from alpha_platform.common.config import get_config
from alpha_platform.common.validators import BoundedDecimalsMixin
from alpha_platform.web import login_throttle
from exchanges.credentials import clean_credentials
from exchanges.forms import CREDENTIAL_FIELDS
from risk.models import RiskProfile

HUNDRED = Decimal("100")


def apply_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: by field where it names one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def known_symbols(venue: str | None = None) -> list[str]:
    config = get_config()
    venues = [venue] if venue else config.venues
    symbols: set[str] = set()
    for name in venues:
        symbols.update(config.symbol_map(name))
    return sorted(symbols)


# --------------------------------------------------------------------------- sign-in
class ThrottleMixin:
    """Says why a sign-in is refused while the throttle (alpha_platform.web.login_throttle, in the
    authentication backends) locks it out: the same words for every username."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            wait = login_throttle.seconds_locked(self.request, self.cleaned_data.get("username"))
            if wait:
                raise ValidationError(login_throttle.message(wait), code="throttled") from None
            raise


class ThrottledAuthenticationForm(ThrottleMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottleMixin, AdminAuthenticationForm):
    """For ``admin.site.login_form``: the admin's sign-in throttled the same way."""

    def confirm_login_allowed(self, user):
        try:
            super().confirm_login_allowed(user)
        except ValidationError:
            # The password was right (a user who is not staff): not a guess, so it does not count
            # towards a lockout of the portal and the API.
            login_throttle.login_succeeded(self.request, user.get_username())
            raise


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional; used for nothing but contacting you.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


# --------------------------------------------------------------------------- exchange accounts
class ExchangeAccountCreateForm(forms.Form):
    """Credentials are write-only: password inputs that are never re-rendered."""

    name = forms.CharField(max_length=100)
    venue = forms.ChoiceField()
    testnet = forms.BooleanField(required=False, help_text="Use the venue's test network.")
    api_key = forms.CharField(required=False, label=CREDENTIAL_FIELDS["api_key"],
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    api_secret = forms.CharField(required=False, label=CREDENTIAL_FIELDS["api_secret"],
                                 widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    private_key = forms.CharField(required=False, label=CREDENTIAL_FIELDS["private_key"],
                                  widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    account_address = forms.CharField(required=False, label=CREDENTIAL_FIELDS["account_address"],
                                      help_text="Public address (0x + 40 hex) of the main account.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = get_config()
        self.venue_fields = {v: list(config.auth(v).fields) for v in config.venues}
        self.fields["venue"].choices = [(v, config.display_name(v)) for v in config.venues]
        for name in CREDENTIAL_FIELDS:
            self.fields[name].widget.attrs["data-credential"] = name

    def credentials(self) -> dict[str, str]:
        wanted = self.venue_fields.get(self.cleaned_data.get("venue") or "", [])
        return {name: self.cleaned_data[name] for name in wanted if self.cleaned_data.get(name)}

    def clean(self):
        cleaned = super().clean()
        venue = cleaned.get("venue")
        if venue:
            auth_type = get_config().auth(venue).auth_type
            try:
                clean_credentials(auth_type, self.credentials())
            except ValidationError as exc:
                apply_errors(self, exc)
        return cleaned


# --------------------------------------------------------------------------- risk profile
PERCENT_FIELDS = ("max_position_percent", "max_total_exposure_percent", "max_exchange_exposure_percent",
                  "daily_loss_limit_percent")
PLAIN_FIELDS = ("max_leverage", "max_position_notional_usd", "min_notional_usd", "max_open_positions",
                "max_orders_per_minute", "max_orders_per_hour", "loss_cooldown_seconds", "monthly_llm_budget_usd")


def _plain(value: Decimal) -> Decimal:
    """15.000000 -> 15, 2.5000 -> 2.5 (never 2E+1)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _percent(label: str, help_text: str) -> forms.DecimalField:
    return forms.DecimalField(label=f"{label} (%)", min_value=0, max_value=100, max_digits=7, decimal_places=4,
                              help_text=help_text)


class RiskProfileForm(BoundedDecimalsMixin, forms.Form):
    """The profile in a person's units: shares of equity as percentages (the model keeps
    fractions, 0.15 = 15%). Amounts are bounded as the API's are (money.INPUT_*)."""

    max_leverage = forms.IntegerField(min_value=1, max_value=125)
    max_position_notional_usd = forms.DecimalField(label="Max position per symbol (USD)", min_value=0,
                                                   max_digits=None, decimal_places=2)
    max_position_percent = _percent("Max position per symbol", "Largest position per symbol, share of equity.")
    max_total_exposure_percent = _percent("Max total exposure", "All positions on all accounts, share of equity.")
    max_exchange_exposure_percent = _percent("Max exposure per venue", "Positions on one venue, share of equity.")
    daily_loss_limit_percent = _percent("Daily loss limit",
                                        "A loss this large today (UTC) trips your kill switch.")
    min_notional_usd = forms.DecimalField(label="Min order notional (USD)", min_value=0, max_digits=None,
                                          decimal_places=2)
    max_open_positions = forms.IntegerField(min_value=0, max_value=1000)
    max_orders_per_minute = forms.IntegerField(min_value=0, max_value=10000)
    max_orders_per_hour = forms.IntegerField(min_value=0, max_value=1000000)
    loss_cooldown_seconds = forms.IntegerField(min_value=0, max_value=86400 * 7,
                                               help_text="No new position this long after a losing close.")
    monthly_llm_budget_usd = forms.DecimalField(label="Monthly LLM budget (USD)", min_value=0, max_digits=None,
                                                decimal_places=2)
    allowed_symbols = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                                help_text="Symbols orders may be placed on; none allows none.")

    def __init__(self, *args, profile: RiskProfile, **kwargs):
        initial = {name: _plain(v) if isinstance(v := getattr(profile, name), Decimal) else v
                   for name in PLAIN_FIELDS}
        initial.update({name: _plain(getattr(profile, name) * HUNDRED) for name in PERCENT_FIELDS})
        initial["allowed_symbols"] = list(profile.allowed_symbols or [])
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        choices = sorted(set(known_symbols()) | set(profile.allowed_symbols or []))
        self.fields["allowed_symbols"].choices = [(s, s) for s in choices]

    def changes(self) -> dict:
        data = {name: self.cleaned_data[name] for name in PLAIN_FIELDS}
        data.update({name: self.cleaned_data[name] / HUNDRED for name in PERCENT_FIELDS})
        data["allowed_symbols"] = list(self.cleaned_data["allowed_symbols"])
        return data

    def show_service_errors(self, exc: ValidationError) -> None:
        apply_errors(self, exc)


# --------------------------------------------------------------------------- agents
class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    account = forms.ModelChoiceField(queryset=None, label="Exchange account")
    symbols = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple,
                                        help_text="The markets the agent watches and trades.")
    interval_seconds = forms.IntegerField(label="Run every (seconds)", min_value=MIN_INTERVAL_SECONDS, initial=60)
    model_name = forms.CharField(max_length=100, initial="builtin:trend", label="Model",
                                 widget=forms.TextInput(attrs={"list": "model-names"}),
                                 help_text='"builtin:trend" runs offline; or an OpenAI-compatible model name.')
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    max_leverage = forms.IntegerField(min_value=1, max_value=125, initial=3)
    max_tool_rounds = forms.IntegerField(min_value=1, max_value=20, initial=4,
                                         help_text="How many rounds of tool calls one decision may take.")

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts
        self.fields["symbols"].choices = [(s, s) for s in known_symbols()]

    def clean(self):
        cleaned = super().clean()
        account, symbols = cleaned.get("account"), cleaned.get("symbols")
        if account and symbols:
            traded = set(get_config().symbol_map(account.venue))
            missing = [s for s in symbols if s not in traded]
            if missing:
                self.add_error("symbols", f"Not traded on {account.venue}: {', '.join(missing)}.")
        return cleaned


class KillSwitchForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "Why? (optional)"}))
    confirm = forms.BooleanField(required=True, widget=forms.HiddenInput, initial=True,
                                 error_messages={"required": "Confirm to trip the kill switch."})


class DecisionFilterForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=None, required=False, empty_label="All agents")
    status = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, agents, **kwargs):
        from agents.models import Decision

        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents
        self.fields["status"].choices = [("", "Any status"), *Decision.Status.choices]


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(required=False)
    account = forms.ModelChoiceField(queryset=None, required=False, empty_label="All accounts")
    symbol = forms.CharField(required=False, max_length=32)
    source = forms.ChoiceField(required=False)

    def __init__(self, *args, accounts, **kwargs):
        from trading.models import Order

        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts
        self.fields["status"].choices = [("", "Any status"), *Order.Status.choices]
        self.fields["source"].choices = [("", "Any source"), *Order.Source.choices]
