"""Admin views that act through the services: the manual order form.

Opening it needs ``trading.add_order``. The accounts it offers, and accepts, are the staff
user's own unless they have ``trading.place_order_for_others`` (superusers have both): the
form's queryset is the server-side check, so a posted id outside it is a form error and
nothing is written or sent to a venue."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from alpha_platform.common.errors import ApplicationError
from exchanges.models import ExchangeAccount
from trading.forms import ManualOrderForm
from trading.models import Order
from trading.services import order_submit

PLACE_FOR_OTHERS = "trading.place_order_for_others"


def manual_order_accounts(user):
    """The accounts ``user`` may place a manual order on."""
    accounts = ExchangeAccount.objects.select_related("owner")
    if user.has_perm(PLACE_FOR_OTHERS):
        return accounts.all()
    return accounts.filter(owner=user)


def manual_order_view(model_admin, request):
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = ManualOrderForm(request.POST or None, accounts=manual_order_accounts(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            result = order_submit(source=Order.Source.ADMIN, actor=f"admin:{request.user.get_username()}",
                                  **form.submit_kwargs())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            order = result.order
            if order.status == Order.Status.REJECTED:
                model_admin.message_user(request, f"Rejected: {order.error}", messages.ERROR)
            else:
                model_admin.message_user(request, f"Order {order.client_order_id}: {order.get_status_display()}"
                                         f"{' — ' + order.error if order.error else ''}", messages.SUCCESS)
            if model_admin.has_view_permission(request, order):
                return redirect("admin:trading_order_change", order.pk)
            return redirect("admin:trading_order_add")
    context = {**model_admin.admin_site.each_context(request), "title": "Place an order",
               "form": form, "opts": model_admin.model._meta,
               "note": "The order goes through the same risk gate as every other order."
                       + ("" if request.user.has_perm(PLACE_FOR_OTHERS) else
                          " You can place orders on your own accounts only.")}
    return TemplateResponse(request, "admin/trading/manual_order.html", context)
