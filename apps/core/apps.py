from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Quarterdeck core"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
