from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenants.access import workspace_schema
from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericViewSet

from . import selectors, services
from .models import Budget, LedgerEntry
from .serializers import (
    BudgetCreateSerializer,
    BudgetSerializer,
    BudgetUpdateSerializer,
    LedgerEntrySerializer,
    LedgerFilterSerializer,
    SpendQuerySerializer,
)


class BudgetViewSet(WorkspaceGenericViewSet):
    """Budgets of the workspace. DELETE archives (the ledger keeps pointing at the budget)."""

    read_permission = "budgets.view"
    write_permission = "budgets.manage"
    serializer_class = BudgetSerializer
    queryset = Budget.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> Any:
        params = self.request.query_params
        include_archived = params.get("include_archived") in ("1", "true", "yes")
        return selectors.budget_list(
            scope=params.get("scope") or None, include_archived=include_archived or self.action != "list"
        )

    def _serialize(self, budgets: Any, many: bool = False) -> Any:
        items = list(budgets) if many else [budgets]
        current = selectors.budget_current_spend(budgets=items)
        return BudgetSerializer(budgets, many=many, context={"current": current}).data

    @extend_schema(
        parameters=[
            OpenApiParameter("scope", str, description="workspace, crew, mission or agent"),
            OpenApiParameter("include_archived", bool),
        ]
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self._serialize(page, many=True))

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._serialize(self.get_object()))

    @extend_schema(request=BudgetCreateSerializer, responses={201: BudgetSerializer})
    def create(self, request: Request) -> Response:
        serializer = BudgetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        budget = services.budget_create(**serializer.validated_data)
        return Response(self._serialize(budget), status=status.HTTP_201_CREATED)

    @extend_schema(request=BudgetUpdateSerializer, responses=BudgetSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = BudgetUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        budget = services.budget_update(budget=self.get_object(), **serializer.validated_data)
        return Response(self._serialize(budget))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.budget_archive(budget=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class _Echo:
    def write(self, value: str) -> str:
        return value


class LedgerViewSet(WorkspaceGenericViewSet):
    """The ledger, read-only: every reservation, settlement, release, blocked call and
    adjustment, with tokens, model and prices. Filter with query parameters; ``export/``
    streams the same selection as CSV."""

    read_permission = "budgets.view"
    write_permission = "budgets.manage"
    serializer_class = LedgerEntrySerializer
    queryset = LedgerEntry.objects.none()
    lookup_value_regex = r"\d+"

    def _filters(self) -> dict[str, Any]:
        serializer = LedgerFilterSerializer(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        filters = dict(serializer.validated_data)
        filters.pop("cursor", None)
        filters.pop("page_size", None)
        return filters

    def get_queryset(self) -> Any:
        if self.action == "retrieve":
            return selectors.ledger_list()
        return selectors.ledger_list(filters=self._filters())

    @extend_schema(parameters=[LedgerFilterSerializer])
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(LedgerEntrySerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(LedgerEntrySerializer(self.get_object()).data)

    @extend_schema(parameters=[LedgerFilterSerializer], responses={(200, "text/csv"): str})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> StreamingHttpResponse:
        queryset = self.get_queryset()
        workspace = self.principal.workspace

        def rows() -> Iterator[str]:
            # The body is produced after the view returns: activate the schema for it again.
            writer = csv.writer(_Echo())
            with workspace_schema(workspace):
                for row in selectors.ledger_csv_rows(queryset):
                    yield writer.writerow(row)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="ledger-{self.principal.workspace.slug}-{stamp}.csv"'
        return response


class SpendApi(WorkspaceAPIView):
    """Actual spend grouped by crew, mission, agent, model and/or day (UTC)."""

    read_permission = "budgets.view"
    write_permission = "budgets.manage"

    @extend_schema(parameters=[SpendQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        serializer = SpendQuerySerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        group_by = [part.strip() for part in data.pop("group_by").split(",") if part.strip()]
        since, until = data.pop("since", None), data.pop("until", None)
        return Response(selectors.spend_report(group_by=group_by, since=since, until=until, filters=data))
