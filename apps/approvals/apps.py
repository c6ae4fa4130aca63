from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo

        from . import demo, integrations, journal_kinds

        journal_kinds.register_kinds()
        register_demo("approvals", demo.seed)
        integrations.connect()
