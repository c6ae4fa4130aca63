from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "apps.budgets"
    label = "budgets"
    verbose_name = "Budgets"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo

        from . import journal_kinds
        from .defaults import seed_demo_budgets

        journal_kinds.register_all()
        register_demo("budgets", seed_demo_budgets)
