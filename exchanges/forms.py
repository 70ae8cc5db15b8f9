"""Admin/portal forms for exchange accounts: credentials are write-only inputs."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from alpha_platform.common.config import get_config
from exchanges.credentials import clean_credentials
from exchanges.models import ExchangeAccount

CREDENTIAL_FIELDS = {
    "api_key": "API key",
    "api_secret": "API secret",
    "private_key": "Agent wallet private key",
    "account_address": "Main account address",
}


class ExchangeAccountForm(forms.ModelForm):
    """Credential inputs are never pre-filled (render_value=False) and never read back.
    Leaving them empty on an existing account keeps the stored ones."""

    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              label=CREDENTIAL_FIELDS["api_key"])
    api_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                 label=CREDENTIAL_FIELDS["api_secret"])
    private_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                  label=CREDENTIAL_FIELDS["private_key"])
    account_address = forms.CharField(required=False, label=CREDENTIAL_FIELDS["account_address"],
                                      help_text="Public address (0x + 40 hex) of the main account.")

    class Meta:
        model = ExchangeAccount
        fields = ["owner", "name", "venue", "testnet"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        venues = get_config().venues
        self.fields["venue"] = forms.ChoiceField(
            choices=[(v, get_config().display_name(v)) for v in venues])
        if self.instance.pk:
            self.fields["venue"].disabled = True
            self.fields["owner"].disabled = True

    def credentials_given(self) -> dict[str, str]:
        venue = self.cleaned_data.get("venue") or self.instance.venue
        wanted = list(get_config().auth(venue).fields) if venue else []
        return {name: self.cleaned_data.get(name, "") for name in wanted if self.cleaned_data.get(name)}

    def clean(self):
        cleaned = super().clean()
        venue = cleaned.get("venue") or self.instance.venue
        if not venue:
            return cleaned
        auth = get_config().auth(venue)
        given = self.credentials_given()
        if self.instance.pk and not given:
            return cleaned  # keep the stored credentials
        try:
            clean_credentials(auth.auth_type, given)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned
