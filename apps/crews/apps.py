from django.apps import AppConfig


class CrewsConfig(AppConfig):
    name = "apps.crews"
    label = "crews"
    verbose_name = "Crews"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo

        from . import demo, integrations, journal_kinds, offline_scripts

        journal_kinds.register_kinds()
        offline_scripts.register_scripts()
        register_demo("crews", demo.seed)
        integrations.connect()
