from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericViewSet

from . import selectors, services
from .catalog.selectors import global_default_model_id, model_list_routable
from .models import LlmCall, RoutingRule
from .serializers import (
    CatalogModelSerializer,
    LlmCallFilterSerializer,
    LlmCallSerializer,
    LlmSettingsSerializer,
    LlmSettingsUpdateSerializer,
    RoutingRuleSerializer,
    RoutingRuleUpdateSerializer,
    RoutingRuleWriteSerializer,
)


class ModelCatalogApi(WorkspaceAPIView):
    """Models a call can be routed to, with current prices (the catalog is platform-wide)."""

    read_permission = "llm.view"
    write_permission = "llm.manage"

    @extend_schema(responses=CatalogModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(CatalogModelSerializer(model_list_routable(), many=True).data)


class LlmSettingsApi(WorkspaceAPIView):
    """The workspace's default model (empty: the global default set by super-admins)."""

    read_permission = "llm.view"
    write_permission = "llm.manage"

    def _data(self) -> dict[str, Any]:
        row = services.workspace_llm_settings_get()
        return LlmSettingsSerializer(
            {
                "default_model": row.default_model,
                "effective_default_model": row.default_model or global_default_model_id(),
                "updated_at": row.updated_at,
            }
        ).data

    @extend_schema(responses=LlmSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(self._data())

    @extend_schema(request=LlmSettingsUpdateSerializer, responses=LlmSettingsSerializer)
    def patch(self, request: Request) -> Response:
        serializer = LlmSettingsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.workspace_llm_settings_update(default_model=serializer.validated_data["default_model"])
        return Response(self._data())


class RoutingRuleViewSet(WorkspaceGenericViewSet):
    """Tier-downgrade rules: once a budget a call counts against passes its warning
    threshold, the call goes to ``to_model`` (a lower tier)."""

    read_permission = "llm.view"
    write_permission = "llm.manage"
    serializer_class = RoutingRuleSerializer
    queryset = RoutingRule.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> Any:
        return selectors.routing_rule_list()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RoutingRuleSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RoutingRuleSerializer(self.get_object()).data)

    @extend_schema(request=RoutingRuleWriteSerializer, responses={201: RoutingRuleSerializer})
    def create(self, request: Request) -> Response:
        serializer = RoutingRuleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.routing_rule_create(**serializer.validated_data)
        return Response(RoutingRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RoutingRuleUpdateSerializer, responses=RoutingRuleSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = RoutingRuleUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.routing_rule_update(rule=self.get_object(), **serializer.validated_data)
        return Response(RoutingRuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.routing_rule_delete(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class LlmCallViewSet(WorkspaceGenericViewSet):
    """Every model call made through the gateway (read-only), newest first."""

    read_permission = "llm.view"
    write_permission = "llm.manage"
    serializer_class = LlmCallSerializer
    queryset = LlmCall.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> Any:
        if self.action == "retrieve":
            return selectors.llm_call_list()
        serializer = LlmCallFilterSerializer(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        filters = {k: v for k, v in serializer.validated_data.items() if k not in ("cursor", "page_size")}
        return selectors.llm_call_list(filters=filters)

    @extend_schema(parameters=[LlmCallFilterSerializer])
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(LlmCallSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(LlmCallSerializer(self.get_object()).data)
