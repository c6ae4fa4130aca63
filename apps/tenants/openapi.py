"""How the OpenAPI schema (drf-spectacular) describes our authentication: API-key requests
carry ``Authorization: Bearer qdk_<prefix>_<secret>`` (``ApiKeyAuthentication``). Imported by
``TenantsConfig.ready()``, which registers the extension."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "qdk_<prefix>_<secret>"}
