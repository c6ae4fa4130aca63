from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import apis, views

router = SimpleRouter(trailing_slash=True)
router.register("crews", apis.CrewViewSet, basename="crew")
router.register("agents", apis.AgentViewSet, basename="agent")
router.register("missions", apis.MissionViewSet, basename="mission")

api_urlpatterns: list[Any] = [
    path("tools/", apis.ToolListApi.as_view(), name="tool-list"),
    *router.urls,
]

portal_urlpatterns: list[Any] = [
    path("missions/", views.mission_list, name="missions"),
    path("missions/start/", views.mission_start, name="mission-start"),
    path("missions/<uuid:mission_id>/", views.mission_detail, name="mission-detail"),
    path("missions/<uuid:mission_id>/control/", views.mission_control, name="mission-control"),
]
