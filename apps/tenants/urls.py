from django.urls import path
from rest_framework.routers import SimpleRouter

from . import apis

router = SimpleRouter(trailing_slash=True)
router.register("members", apis.MembershipViewSet, basename="member")
router.register("api-keys", apis.ApiKeyViewSet, basename="api-key")

api_urlpatterns = [
    path("workspaces/", apis.WorkspaceListApi.as_view(), name="workspace-list"),
    path("workspace/", apis.CurrentWorkspaceApi.as_view(), name="workspace-current"),
    *router.urls,
]
portal_urlpatterns: list = []  # type: ignore[type-arg]
