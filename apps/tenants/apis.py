from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import NotFound

from . import selectors, services
from .drf import WorkspaceAPIView, WorkspaceGenericViewSet
from .models import ApiKey, Membership
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    ProvisionedSerializer,
    WorkspaceProvisionSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)


class WorkspaceListApi(APIView):
    """Workspaces the caller can see; super-admins provision new ones here."""

    @extend_schema(responses=WorkspaceSerializer(many=True))
    def get(self, request: Request) -> Response:
        if isinstance(request.auth, ApiKey):
            workspaces = [request.auth.workspace]
        else:
            workspaces = list(selectors.workspace_list_for_user(user=request.user))
        return Response(WorkspaceSerializer(workspaces, many=True).data)

    @extend_schema(request=WorkspaceProvisionSerializer, responses={201: ProvisionedSerializer})
    def post(self, request: Request) -> Response:
        if not getattr(request.user, "is_superuser", False):
            raise PermissionDenied("Only super-admins provision workspaces.")
        serializer = WorkspaceProvisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        owner = None
        if data.get("owner"):
            user_model = get_user_model()
            owner = (
                user_model.objects.filter(username=data["owner"]).first()
                or user_model.objects.filter(email__iexact=data["owner"]).first()
            )
            if owner is None:
                raise NotFound("No user with this username or email.", details={"owner": data["owner"]})
        provisioned = services.workspace_provision(
            name=data["name"],
            slug=data["slug"],
            owner=owner,
            created_by=request.user,
            email_domains=data.get("email_domains"),
        )
        return Response(ProvisionedSerializer(provisioned).data, status=status.HTTP_201_CREATED)


class CurrentWorkspaceApi(WorkspaceAPIView):
    read_permission = "workspace.view"
    write_permission = "workspace.manage"

    @extend_schema(responses=WorkspaceSerializer)
    def get(self, request: Request) -> Response:
        return Response(WorkspaceSerializer(self.principal.workspace).data)

    @extend_schema(request=WorkspaceUpdateSerializer, responses=WorkspaceSerializer)
    def patch(self, request: Request) -> Response:
        serializer = WorkspaceUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_update(workspace=self.principal.workspace, **serializer.validated_data)
        return Response(WorkspaceSerializer(workspace).data)


class MembershipViewSet(WorkspaceGenericViewSet):
    read_permission = "members.view"
    write_permission = "members.manage"
    serializer_class = MembershipSerializer
    queryset = Membership.objects.none()

    def get_queryset(self) -> Any:
        return selectors.membership_list(workspace=self.principal.workspace)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(MembershipSerializer(self.get_object()).data)

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def create(self, request: Request) -> Response:
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(
            workspace=self.principal.workspace, by_role=self.principal.role, **serializer.validated_data
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        membership = self.get_object()  # another workspace's membership is not found, whatever the body
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, role=serializer.validated_data["role"], by_role=self.principal.role
        )
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.membership_remove(membership=self.get_object(), by_role=self.principal.role)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(WorkspaceGenericViewSet):
    read_permission = "apikeys.manage"
    write_permission = "apikeys.manage"
    serializer_class = ApiKeySerializer
    queryset = ApiKey.objects.none()

    def get_queryset(self) -> Any:
        return selectors.api_key_list(workspace=self.principal.workspace)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(ApiKeySerializer(self.get_object()).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created_by = request.user if getattr(request.user, "pk", None) else None
        api_key, token = services.api_key_create(
            workspace=self.principal.workspace,
            created_by=created_by,
            by_role=self.principal.role,
            **serializer.validated_data,
        )
        data = ApiKeySerializer(api_key).data
        data["token"] = token
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ApiKeySerializer)
    def destroy(self, request: Request, pk: str) -> Response:
        """Revoke the key. It stops working on its next request."""
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)
