from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit journal"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo

        from . import journal_kinds
        from .demo import checkpoint_demo

        journal_kinds.register_all()
        # Named to run after the other apps' demo seeders, so it signs what they journaled.
        register_demo("zz_journal_checkpoint", checkpoint_demo)
