from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import apis

router = SimpleRouter(trailing_slash=True)
router.register("llm/rules", apis.RoutingRuleViewSet, basename="llm-rule")
router.register("llm/calls", apis.LlmCallViewSet, basename="llm-call")

api_urlpatterns: list[Any] = [
    path("llm/models/", apis.ModelCatalogApi.as_view(), name="llm-models"),
    path("llm/settings/", apis.LlmSettingsApi.as_view(), name="llm-settings"),
    *router.urls,
]
portal_urlpatterns: list[Any] = []
