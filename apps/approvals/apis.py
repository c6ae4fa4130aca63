"""REST endpoints: policies (with a dry run) and requests (list, detail, decide)."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import ValidationFailed
from apps.tenants.drf import WorkspaceGenericViewSet

from . import selectors, services
from .matching import ToolCall
from .models import ApprovalRequest, Policy, RequestMode, RequestStatus
from .serializers import (
    ApprovalRequestDetailSerializer,
    ApprovalRequestSerializer,
    DecideSerializer,
    DryRunResultSerializer,
    DryRunSerializer,
    PolicySerializer,
    PolicyWriteSerializer,
)


class PolicyPagination(CursorPagination):
    page_size = 100
    ordering = ("priority", "created_at")


class RequestPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")


class PolicyViewSet(WorkspaceGenericViewSet):
    """Approval policies. Reading needs approvals.view, changing them policies.manage; every
    change is journaled with its author."""

    read_permission = "approvals.view"
    write_permission = "policies.manage"
    action_permissions = {"dry_run": "approvals.view"}
    serializer_class = PolicySerializer
    pagination_class = PolicyPagination
    queryset = Policy.objects.none()

    def get_queryset(self) -> Any:
        return selectors.policy_list()

    def get_object(self) -> Policy:
        return selectors.policy_get(policy_id=self.kwargs["pk"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PolicySerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(PolicySerializer(self.get_object()).data)

    @extend_schema(request=PolicyWriteSerializer, responses={201: PolicySerializer})
    def create(self, request: Request) -> Response:
        serializer = PolicyWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.policy_create(fields=serializer.validated_data)
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PolicyWriteSerializer, responses=PolicySerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = PolicyWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        policy = services.policy_update(policy=self.get_object(), fields=serializer.validated_data)
        return Response(PolicySerializer(policy).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.policy_delete(policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=DryRunSerializer, responses=DryRunResultSerializer)
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request) -> Response:
        """Which policy would match this tool call, and why (every policy is explained)."""
        serializer = DryRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        evaluation = services.policy_evaluate(call=ToolCall(**data), full_trace=True)
        policy = evaluation.policy
        approval = evaluation.approval
        return Response(
            {
                "action": evaluation.action,
                "gate_action": evaluation.gate_action,
                "source": evaluation.source,
                "reason": evaluation.reason,
                "policy": {"id": str(policy.pk), "name": policy.name, "priority": policy.priority} if policy else None,
                "approval": vars(approval) if approval else None,
                "trace": [item.as_dict() for item in evaluation.trace],
            }
        )


class ApprovalRequestViewSet(WorkspaceGenericViewSet):
    """Approval requests, for integrations that approve from elsewhere."""

    read_permission = "approvals.view"
    write_permission = "approvals.decide"
    action_permissions = {"decide": "approvals.decide"}
    serializer_class = ApprovalRequestSerializer
    pagination_class = RequestPagination
    queryset = ApprovalRequest.objects.none()

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=RequestStatus.values),
            OpenApiParameter("mode", enum=RequestMode.values),
            OpenApiParameter("mission_id", type=str),
            OpenApiParameter("decidable", type=bool, description="Only requests the caller may decide."),
        ]
    )
    def list(self, request: Request) -> Response:
        params = request.query_params
        status_filter = params.get("status") or None
        if status_filter and status_filter not in RequestStatus.values:
            raise ValidationFailed(details={"status": [f"One of {', '.join(RequestStatus.values)}."]})
        mode = params.get("mode") or None
        if mode and mode not in RequestMode.values:
            raise ValidationFailed(details={"mode": [f"One of {', '.join(RequestMode.values)}."]})
        mission_id = None
        if params.get("mission_id"):
            try:
                mission_id = uuid.UUID(params["mission_id"])
            except ValueError:
                raise ValidationFailed(details={"mission_id": ["A UUID."]}) from None
        decidable = params.get("decidable", "").lower() in {"1", "true", "yes"}
        queryset = selectors.request_list(
            status=status_filter,
            mission_id=mission_id,
            mode=mode,
            decidable_by=services.Decider.for_principal(self.principal) if decidable else None,
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ApprovalRequestSerializer(page, many=True).data)

    @extend_schema(responses=ApprovalRequestDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(ApprovalRequestDetailSerializer(selectors.request_get(request_id=pk)).data)

    @extend_schema(request=DecideSerializer, responses=ApprovalRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str) -> Response:
        """Approve (optionally with edited ``arguments``), deny, or comment."""
        serializer = DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        selectors.request_get(request_id=pk, with_events=False)  # 404 before anything else
        services.request_decide(
            request_id=pk,
            decider=services.Decider.for_principal(self.principal),
            decision=data["decision"],
            comment=data.get("comment", ""),
            arguments=data.get("arguments"),
        )
        return Response(ApprovalRequestDetailSerializer(selectors.request_get(request_id=pk)).data)
