from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "apps.tenants"
    label = "tenants"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        from . import openapi  # noqa: F401  (registers the API-key scheme with drf-spectacular)
