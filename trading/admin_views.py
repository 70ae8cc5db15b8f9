"""Admin views that act through the services: the manual order form."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from alpha_platform.common.errors import ApplicationError
from trading.forms import ManualOrderForm
from trading.models import Order
from trading.services import order_submit


def manual_order_view(model_admin, request):
    form = ManualOrderForm(request.POST or None)
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
            return redirect("admin:trading_order_change", order.pk)
    context = {**model_admin.admin_site.each_context(request), "title": "Place an order",
               "form": form, "opts": model_admin.model._meta,
               "note": "The order goes through the same risk gate as every other order."}
    return TemplateResponse(request, "admin/trading/manual_order.html", context)
