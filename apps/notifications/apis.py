from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericAPIView

from . import selectors, services
from .models import Notification
from .serializers import MarkedSerializer, MarkReadSerializer, NotificationSerializer


class NotificationListApi(WorkspaceGenericAPIView):
    """The caller's own notifications in this workspace (API keys have none)."""

    read_permission = "workspace.view"
    serializer_class = NotificationSerializer
    queryset = Notification.objects.none()

    def get_queryset(self) -> Any:
        user = self.principal.user
        if user is None:
            return Notification.objects.none()
        unread = self.request.query_params.get("unread") in {"1", "true"}
        return selectors.notification_list(user=user, unread_only=unread)

    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="only unread notices")],
        responses=NotificationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(NotificationSerializer(page, many=True).data)


class NotificationMarkReadApi(WorkspaceAPIView):
    read_permission = "workspace.view"
    write_permission = "workspace.view"  # everyone may mark their own notices read

    @extend_schema(request=MarkReadSerializer, responses=MarkedSerializer)
    def post(self, request: Request) -> Response:
        serializer = MarkReadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = self.principal.user
        ids = serializer.validated_data.get("ids")
        marked = 0 if user is None else services.notification_mark_read(user=user, ids=ids)
        return Response({"marked": marked})
