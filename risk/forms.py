"""Forms of the risk app (the admin's risk profile form)."""

from __future__ import annotations

from django import forms

from alpha_platform.common.validators import BoundedDecimalsMixin
from risk.models import RiskProfile


class RiskProfileAdminForm(BoundedDecimalsMixin, forms.ModelForm):
    """The admin's form: every Decimal limit bounded like the API's and the portal's."""

    class Meta:
        model = RiskProfile
        fields = "__all__"
