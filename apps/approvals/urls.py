from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import apis, views

router = SimpleRouter(trailing_slash=True)
router.register("approvals/policies", apis.PolicyViewSet, basename="approval-policy")
router.register("approvals/requests", apis.ApprovalRequestViewSet, basename="approval-request")

api_urlpatterns: list[Any] = [*router.urls]

portal_urlpatterns: list[Any] = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<uuid:request_id>/decide/", views.decide, name="decide"),
]
