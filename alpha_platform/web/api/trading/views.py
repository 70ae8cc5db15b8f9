"""REST API for trading: balance, positions, orders, equity, PnL and the kill switch.

Every order goes through ``trading.services.order_submit`` and its risk gate. Answers:

- 201: placed (FILLED, NEW, ...); 200: this account's existing order for a repeated
  ``client_order_id``.
- 202: pending confirmation: the order was sent, the venue's answer was lost (status
  UNKNOWN). It may well exist at the venue: do not resend it under a new id; the platform
  settles it (reconciliation) and the order's status tells the outcome.
- 422: refused, and recorded: by the risk gate (status REJECTED) or by the venue (REJECTED,
  or FAILED for an account problem such as revoked credentials):
  ``{"message": <reason>, "extra": {"rule": ..., "details": {...}, "order": {...}}}``.
- 503: certainly not sent (status FAILED "not sent": the platform's guard state could not be
  read, the circuit breaker is open, a rate limit): temporary, nothing reached the venue, so
  a new order (a new client order id) may be tried later. Same body, ``rule: "not_sent"``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from alpha_platform.common.errors import ApplicationError
from alpha_platform.common.money import ZERO
from alpha_platform.common.vocabulary import closing_side
from alpha_platform.web.api.common import OrderThrottle, UserThrottle, error_body, query_values
from alpha_platform.web.api.exchanges.views import venue_display_name
from alpha_platform.web.api.trading.filters import EquityQuery, OrderFilter, PnlQuery, PositionFilter
from alpha_platform.web.api.trading.serializers import (
    BalanceSerializer,
    EquityCurveSerializer,
    KillSwitchStatusSerializer,
    KillSwitchTripSerializer,
    OrderCreateSerializer,
    OrderPendingSerializer,
    OrderRejectionSerializer,
    OrderSerializer,
    PnlSerializer,
    PositionSerializer,
)
from trading import selectors
from trading.models import Order, Position
from trading.services import (
    SubmitResult,
    kill_switch_lift,
    kill_switch_trip,
    order_cancel,
    order_submit,
    verdict_summary,
)

FIGURES = ("total_balance", "available_balance", "margin_balance", "unrealized_pnl", "margin_used")


def _actor(request) -> str:
    return f"api:{request.user.get_username()}"


PENDING_MESSAGE = ("pending confirmation: the venue's answer was lost; do not resend, the platform will "
                   "settle it")


def _not_sent(order: Order) -> bool:
    """FAILED because nothing left the platform (order_submit records "not sent"), as
    opposed to a venue or account refusal."""
    text = order.error.lower()
    return order.status == Order.Status.FAILED and ("not sent" in text or text.startswith("not placed"))


def submit_response(result: SubmitResult) -> Response:
    """201 (placed), 200 (the account's existing order for a repeated client_order_id), 202
    (pending confirmation: sent, the answer lost), 422 (refused by the risk gate or the
    venue; a retry of a refused order is refused the same way) or 503 (certainly not sent:
    the platform could not send it now).
    An id another account uses is a fresh id here: the answer never shows what others hold."""
    order = Order.objects.select_related("account", "risk_event").get(pk=result.order.pk)
    if order.status == Order.Status.UNKNOWN:
        # Not 422: a refusal invites a retry under a new client order id, which would double
        # the position if the venue did take this one.
        return Response(error_body(PENDING_MESSAGE, {"rule": "pending_confirmation", "details": {},
                                                     "order": OrderSerializer(order).data}),
                        status=status.HTTP_202_ACCEPTED)
    if _not_sent(order):
        return Response(error_body(order.error or "The order was not sent.",
                                   {"rule": "not_sent", "details": {}, "order": OrderSerializer(order).data}),
                        status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if order.status in (Order.Status.REJECTED, Order.Status.FAILED):
        event = order.risk_event
        if event is not None and not event.allowed:
            rule = event.rule
            details = verdict_summary(result.verdict)["details"] if result.verdict else event.details
            message = event.message
        else:
            rule = "venue_rejected" if order.status == Order.Status.REJECTED else "venue_failed"
            details, message = {}, order.error or "The venue did not accept the order."
        return Response(error_body(message, {"rule": rule, "details": details, "order": OrderSerializer(order).data}),
                        status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    return Response(OrderSerializer(order).data,
                    status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


SUBMIT_RESPONSES = {
    201: OpenApiResponse(OrderSerializer, description="Placed (see status: FILLED, NEW, ...)."),
    202: OpenApiResponse(OrderPendingSerializer,
                         description="Pending confirmation: the order was sent and the venue's answer was lost "
                                     "(status UNKNOWN). Do not resend it (least of all under a new "
                                     "client_order_id): the platform settles it and its status shows the outcome."),
    422: OpenApiResponse(OrderRejectionSerializer,
                         description="Refused by the risk gate (or the venue); the refusal is recorded."),
    503: OpenApiResponse(OrderRejectionSerializer,
                         description="Certainly not sent (status FAILED, rule not_sent): the platform could not "
                                     "send it now (its guard state unreadable, the circuit breaker open, a rate "
                                     "limit). Nothing reached the venue; try again later with a new order."),
}


# --------------------------------------------------------------------------- balance
class BalanceView(APIView):
    @extend_schema(operation_id="balance_retrieve", tags=["dashboard"], responses=BalanceSerializer,
                   description="Your balances: each account's latest figures from its venue, the total, and "
                               "a breakdown by venue. Figures are as of each account's taken_at.")
    def get(self, request):
        rows, totals = selectors.account_balances(user=request.user)
        accounts = []
        by_venue: dict[str, dict[str, Decimal]] = defaultdict(lambda: {f: ZERO for f in FIGURES})
        for row in rows:
            snap = row.snapshot
            item: dict[str, Any] = {"account": row.account, "venue": row.account.venue,
                                    "currency": snap.currency if snap else None,
                                    "can_trade": snap.can_trade if snap else None,
                                    "taken_at": snap.taken_at if snap else None}
            for name in FIGURES:
                item[name] = getattr(snap, name) if snap else None
                if snap:
                    by_venue[row.account.venue][name] += getattr(snap, name)
            by_venue.setdefault(row.account.venue, {f: ZERO for f in FIGURES})
            accounts.append(item)
        data = {
            "currency": "USDT",
            "total": {name: totals.get(name, ZERO) for name in FIGURES},
            "by_venue": [{"venue": venue, "display_name": venue_display_name(venue), **figures}
                         for venue, figures in by_venue.items()],
            "accounts": accounts,
        }
        return Response(BalanceSerializer(data).data)


# --------------------------------------------------------------------------- positions
@extend_schema_view(
    list=extend_schema(operation_id="positions_list", tags=["dashboard"],
                       description="Your positions with per-venue detail (open ones unless status says otherwise)."),
    retrieve=extend_schema(operation_id="positions_retrieve", tags=["dashboard"]),
)
class PositionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PositionSerializer
    filterset_class = PositionFilter  # the list's parameters, on top of the user's own positions
    queryset = Position.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Position.objects.none()
        return Position.objects.filter(owner=self.request.user).select_related("account")

    @extend_schema(operation_id="positions_close", tags=["dashboard"], request=None, responses=SUBMIT_RESPONSES,
                   description="Close the whole position with a reduce-only market order, through the risk "
                               "gate like any other order.")
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        position = self.get_object()
        if position.status != Position.Status.OPEN:
            raise ApplicationError("This position is already closed.")
        result = order_submit(account=position.account, symbol=position.symbol,
                              side=closing_side(position.side).value, position_side=position.side,
                              quantity=position.size, reduce_only=True, source=Order.Source.API,
                              actor=_actor(request))
        return submit_response(result)


# --------------------------------------------------------------------------- orders
@extend_schema_view(
    list=extend_schema(operation_id="orders_list", tags=["orders"]),
    retrieve=extend_schema(operation_id="orders_retrieve", tags=["orders"]),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OrderSerializer
    filterset_class = OrderFilter  # the list's parameters, on top of the user's own orders
    queryset = Order.objects.none()

    def get_throttles(self):
        if self.action == "create":
            return [UserThrottle(), OrderThrottle()]
        return super().get_throttles()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return selectors.orders(user=self.request.user)

    @extend_schema(
        operation_id="orders_create", tags=["orders"], request=OrderCreateSerializer,
        responses={
            **SUBMIT_RESPONSES,
            200: OpenApiResponse(OrderSerializer, description="This account already has an order with this "
                                                              "client_order_id: it is returned, nothing new is "
                                                              "placed."),
        },
        description="Place an order through the risk gate. Choose the account by id, or by venue when you "
                    "have one account there.")
    def create(self, request):
        serializer = OrderCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = {k: v for k, v in serializer.validated_data.items() if v is not None}
        return submit_response(order_submit(source=Order.Source.API, actor=_actor(request), **data))

    @extend_schema(operation_id="orders_cancel", tags=["orders"], request=None, responses={200: OrderSerializer},
                   description="Cancel an open order at its venue.")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        order = order_cancel(order=self.get_object(), actor=_actor(request))
        order = Order.objects.select_related("account", "risk_event").get(pk=order.pk)
        return Response(OrderSerializer(order).data)


# --------------------------------------------------------------------------- equity and PnL
class EquityView(APIView):
    @extend_schema(operation_id="equity_retrieve", tags=["dashboard"], responses=EquityCurveSerializer,
                   parameters=[EquityQuery],
                   description="Equity over time, per account and in total, for charts.")
    def get(self, request):
        since = timezone.now() - timedelta(days=query_values(EquityQuery, request)["days"])
        curve = selectors.equity_curve(user=request.user, since=since)
        return Response(EquityCurveSerializer({"since": since, **curve}).data)


class PnlView(APIView):
    @extend_schema(operation_id="pnl_retrieve", tags=["dashboard"], responses=PnlSerializer,
                   parameters=[PnlQuery],
                   description="Today's PnL against the daily loss limit, realized PnL by day, and PnL by "
                               "account.")
    def get(self, request):
        days = query_values(PnlQuery, request)["days"]
        user = request.user
        data = {"today": selectors.pnl_today(user=user), "by_day": selectors.pnl_by_day(user=user, days=days),
                "by_account": selectors.pnl_by_account(user=user)}
        return Response(PnlSerializer(data).data)


# --------------------------------------------------------------------------- kill switch
def _kill_switch_status(user) -> dict[str, Any]:
    state = selectors.halt_state(user=user)
    return {"active": state["user"] is not None, "switch": state["user"], "global_halt": state["global"],
            "trading_allowed": state["user"] is None and state["global"] is None}


class KillSwitchView(APIView):
    @extend_schema(operation_id="kill_switch_retrieve", tags=["kill-switch"], responses=KillSwitchStatusSerializer,
                   description="Whether your kill switch is on, and whether the platform is halted.")
    def get(self, request):
        return Response(KillSwitchStatusSerializer(_kill_switch_status(request.user)).data)


class KillSwitchTripView(APIView):
    @extend_schema(operation_id="kill_switch_trip", tags=["kill-switch"], request=KillSwitchTripSerializer,
                   responses=KillSwitchStatusSerializer,
                   description="Trip your kill switch: agents halted and no order accepted until you lift "
                               "it, at once; a worker then cancels the open orders and closes the positions "
                               "of every account, its progress in switch.flatten (poll GET /api/kill-switch/ "
                               "or follow the kill_switch events). Idempotent.")
    def post(self, request):
        serializer = KillSwitchTripSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        kill_switch_trip(user=request.user, label=_actor(request), reason=serializer.validated_data["reason"],
                         by=request.user)
        return Response(KillSwitchStatusSerializer(_kill_switch_status(request.user)).data)


class KillSwitchLiftView(APIView):
    @extend_schema(operation_id="kill_switch_lift", tags=["kill-switch"], request=None,
                   responses=KillSwitchStatusSerializer,
                   description="Lift your kill switch. Agents stay halted until you resume them.")
    def post(self, request):
        kill_switch_lift(user=request.user, by=request.user)
        return Response(KillSwitchStatusSerializer(_kill_switch_status(request.user)).data)
