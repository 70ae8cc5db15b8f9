"""REST API for agents (/api/agents/), their decisions (/api/decisions/) and the user's
own LLM key (/api/llm-credential/, write-only)."""

from __future__ import annotations

import logging

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors
from agents.models import AgentConfig, Decision, LLMCredential
from agents.services import agent_create, agent_delete, agent_pause, agent_resume, agent_update, llm_credential_set
from alpha_platform.web.api.agents.filters import DecisionFilter
from alpha_platform.web.api.agents.serializers import (
    AgentDetailSerializer,
    AgentRunSerializer,
    AgentSerializer,
    AgentWriteSerializer,
    DecisionDetailSerializer,
    DecisionSerializer,
    LLMCredentialSerializer,
)
from alpha_platform.web.api.common import ServiceUnavailable

logger = logging.getLogger(__name__)


def _queue_manual_run(agent_id: int) -> None:
    from agents.tasks import agent_tick_task

    agent_tick_task.delay(agent_id, Decision.Trigger.MANUAL)


@extend_schema_view(
    list=extend_schema(operation_id="agents_list", tags=["agents"]),
    retrieve=extend_schema(operation_id="agents_retrieve", tags=["agents"], responses=AgentDetailSerializer),
    create=extend_schema(operation_id="agents_create", tags=["agents"], request=AgentWriteSerializer,
                         responses={201: AgentSerializer}),
    update=extend_schema(operation_id="agents_update", tags=["agents"], request=AgentWriteSerializer,
                         responses=AgentSerializer),
    partial_update=extend_schema(operation_id="agents_partial_update", tags=["agents"],
                                 request=AgentWriteSerializer, responses=AgentSerializer),
    destroy=extend_schema(operation_id="agents_destroy", tags=["agents"],
                          responses={204: OpenApiResponse(description="Deleted, with its schedule.")}),
)
class AgentViewSet(viewsets.GenericViewSet):
    serializer_class = AgentSerializer
    queryset = AgentConfig.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AgentConfig.objects.none()
        return selectors.agents_for(user=self.request.user)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(AgentDetailSerializer(self.get_object()).data)

    def create(self, request):
        serializer = AgentWriteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        agent = agent_create(owner=request.user, **serializer.validated_data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        agent = self.get_object()
        serializer = AgentWriteSerializer(agent, data=request.data, partial=partial, context={"request": request})
        serializer.is_valid(raise_exception=True)
        agent = agent_update(agent=agent, **serializer.validated_data)
        return Response(AgentSerializer(agent).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        agent_delete(agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="agents_pause", tags=["agents"], request=None, responses=AgentSerializer,
                   description="Stop the agent's schedule until resumed.")
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return Response(AgentSerializer(agent_pause(agent=self.get_object())).data)

    @extend_schema(operation_id="agents_resume", tags=["agents"], request=None, responses=AgentSerializer,
                   description="Restart the agent's schedule (refused while your kill switch is on).")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return Response(AgentSerializer(agent_resume(agent=self.get_object())).data)

    @extend_schema(operation_id="agents_run", tags=["agents"], request=None,
                   responses={202: AgentRunSerializer},
                   description="Run one decision now (queued; the decision appears under /api/decisions/).")
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        agent = self.get_object()
        try:
            # Queued once the request's transaction (if any) commits.
            transaction.on_commit(lambda: _queue_manual_run(agent.pk))
        except Exception as exc:  # the broker is down: say so rather than fail obscurely
            logger.warning("could not queue a run of agent %s: %s", agent.pk, type(exc).__name__)
            raise ServiceUnavailable("The task queue is unavailable: the run was not queued.") from None
        return Response({"queued": True, "agent": agent.pk}, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(operation_id="decisions_list", tags=["decisions"]),
    retrieve=extend_schema(operation_id="decisions_retrieve", tags=["decisions"],
                           description="One decision in full: what the agent saw, the model's messages, each "
                                       "tool call with its risk verdict and order, tokens, cost and timings."),
)
class DecisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    filterset_class = DecisionFilter  # the list's parameters, on top of the user's own decisions
    queryset = Decision.objects.none()

    def get_serializer_class(self):
        return DecisionDetailSerializer if self.action == "retrieve" else DecisionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Decision.objects.none()
        user = self.request.user
        if self.action != "list":
            return Decision.objects.filter(owner=user).select_related("agent").prefetch_related(
                "tool_calls__order__account", "tool_calls__order__risk_event", "tool_calls__risk_event")
        return selectors.decisions(user=user)


class LLMCredentialView(APIView):
    """Your own key for an OpenAI-compatible server, used by your agents' model calls."""

    @extend_schema(operation_id="llm_credential_retrieve", tags=["agents"], responses=LLMCredentialSerializer)
    def get(self, request):
        credential = LLMCredential.objects.filter(owner=request.user).first()
        return Response(LLMCredentialSerializer(LLMCredentialSerializer.state(credential)).data)

    @extend_schema(operation_id="llm_credential_update", tags=["agents"], request=LLMCredentialSerializer,
                   responses=LLMCredentialSerializer)
    def put(self, request):
        serializer = LLMCredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = llm_credential_set(owner=request.user, api_key=serializer.validated_data["api_key"],
                                        base_url=serializer.validated_data.get("base_url") or "")
        return Response(LLMCredentialSerializer(LLMCredentialSerializer.state(credential)).data)
