"""REST API of the vault. Values are write-only: no response ever carries one.

The endpoints that accept values answer JSON only (no browsable API), so a rejected value is
never rendered back into an HTML form, and their handlers are ``sensitive_variables`` so an
error report shows no request data.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import NotFound, ValidationFailed
from apps.tenants.drf import WorkspaceGenericViewSet, WorkspaceReadOnlyViewSet

from . import selectors, services
from .models import AccessRecord, Grant, OAuthConnection, Secret
from .serializers import (
    AccessFilterSerializer,
    AccessRecordSerializer,
    GrantCreateSerializer,
    GrantRevokeSerializer,
    GrantSerializer,
    OAuthConnectionCreateSerializer,
    OAuthConnectionSerializer,
    OAuthConnectionUpdateSerializer,
    SecretCreateSerializer,
    SecretSerializer,
    SecretUpdateSerializer,
)

_sensitive = method_decorator(sensitive_variables())


def _uuid_param(params: Any, name: str) -> uuid.UUID | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed(details={name: ["Must be a UUID."]}) from None


class SecretViewSet(WorkspaceGenericViewSet):
    """Secrets: metadata for readers; values can be written, never read."""

    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    serializer_class = SecretSerializer
    queryset = Secret.objects.none()
    renderer_classes = [JSONRenderer]

    def get_queryset(self) -> QuerySet[Secret]:
        now = timezone.now()
        live = Q(grants__revoked_at__isnull=True) & (Q(grants__expires_at__isnull=True) | Q(grants__expires_at__gt=now))
        return selectors.secret_list().annotate(live_grants=Count("grants", filter=live))

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SecretSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(SecretSerializer(self.get_object()).data)

    @extend_schema(request=SecretCreateSerializer, responses={201: SecretSerializer})
    @_sensitive
    def create(self, request: Request) -> Response:
        serializer = SecretCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = services.secret_create(**serializer.validated_data)
        return Response(SecretSerializer(secret).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SecretUpdateSerializer, responses=SecretSerializer)
    @_sensitive
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = SecretUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret = services.secret_update(secret=self.get_object(), **serializer.validated_data)
        return Response(SecretSerializer(secret).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.secret_delete(secret=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class GrantViewSet(WorkspaceGenericViewSet):
    """Grants of secrets to crews and agents. DELETE (or POST .../revoke/) revokes."""

    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    serializer_class = GrantSerializer
    queryset = Grant.objects.none()

    def get_queryset(self) -> QuerySet[Grant]:
        params = self.request.query_params
        return selectors.grant_list(
            secret_id=_uuid_param(params, "secret"),
            subject_id=_uuid_param(params, "subject"),
            live_only=params.get("state") == "live",
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("secret", str, description="Secret id"),
            OpenApiParameter("subject", str, description="Crew or agent id"),
            OpenApiParameter("state", str, enum=["live"], description="Only live grants"),
        ]
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(GrantSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(GrantSerializer(self.get_object()).data)

    @extend_schema(request=GrantCreateSerializer, responses={201: GrantSerializer})
    def create(self, request: Request) -> Response:
        serializer = GrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        secret = Secret.objects.filter(pk=data.pop("secret")).first()
        if secret is None:
            raise NotFound("No such secret in this workspace.", details={"secret": ["Unknown secret."]})
        lease_seconds = data.pop("lease_seconds", None)
        if lease_seconds:
            data["expires_at"] = timezone.now() + timedelta(seconds=lease_seconds)
        grant = services.grant_create(secret=secret, **data)
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GrantRevokeSerializer, responses=GrantSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        serializer = GrantRevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = services.grant_revoke(grant=self.get_object(), reason=serializer.validated_data["reason"])
        return Response(GrantSerializer(grant).data)

    @extend_schema(responses=GrantSerializer)
    def destroy(self, request: Request, pk: str) -> Response:
        """Revoke the grant; it stops working on the next request. The record stays."""
        return Response(GrantSerializer(services.grant_revoke(grant=self.get_object())).data)


class AccessRecordViewSet(WorkspaceReadOnlyViewSet):
    """The access history: every Keeper decision, allowed, denied or pending."""

    read_permission = "secrets.view"
    serializer_class = AccessRecordSerializer
    queryset = AccessRecord.objects.none()

    def get_queryset(self) -> QuerySet[AccessRecord]:
        filters = AccessFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        return selectors.access_list(
            secret_id=data.get("secret"),
            decision=data.get("decision"),
            crew_id=data.get("crew"),
            agent_id=data.get("agent"),
            mission_id=data.get("mission"),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("secret", str),
            OpenApiParameter("decision", str, enum=["allowed", "denied", "pending"]),
            OpenApiParameter("crew", str),
            OpenApiParameter("agent", str),
            OpenApiParameter("mission", str),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class OAuthConnectionViewSet(WorkspaceGenericViewSet):
    """OAuth connections: their state for readers; secrets and tokens are write-only."""

    read_permission = "secrets.view"
    write_permission = "secrets.manage"
    serializer_class = OAuthConnectionSerializer
    queryset = OAuthConnection.objects.none()
    renderer_classes = [JSONRenderer]

    def get_queryset(self) -> QuerySet[OAuthConnection]:
        return selectors.oauth_connection_list()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(OAuthConnectionSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(OAuthConnectionSerializer(self.get_object()).data)

    @extend_schema(request=OAuthConnectionCreateSerializer, responses={201: OAuthConnectionSerializer})
    @_sensitive
    def create(self, request: Request) -> Response:
        serializer = OAuthConnectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.oauth_connection_create(**serializer.validated_data)
        return Response(OAuthConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=OAuthConnectionUpdateSerializer, responses=OAuthConnectionSerializer)
    @_sensitive
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change settings, or reconnect by sending new tokens (that makes it healthy again)."""
        serializer = OAuthConnectionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.oauth_connection_update(connection=self.get_object(), **serializer.validated_data)
        return Response(OAuthConnectionSerializer(connection).data)
