from typing import Any

from rest_framework.routers import SimpleRouter

from . import apis

router = SimpleRouter(trailing_slash=True)
router.register("vault/secrets", apis.SecretViewSet, basename="vault-secret")
router.register("vault/grants", apis.GrantViewSet, basename="vault-grant")
router.register("vault/access", apis.AccessRecordViewSet, basename="vault-access")
router.register("vault/oauth-connections", apis.OAuthConnectionViewSet, basename="vault-oauth-connection")

api_urlpatterns = [*router.urls]
portal_urlpatterns: list[Any] = []
