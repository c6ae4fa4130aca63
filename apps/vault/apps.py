from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "apps.vault"
    label = "vault"
    verbose_name = "Vault"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo

        from . import checks, demo, integrations, journal_kinds, judges  # noqa: F401  (checks register themselves)

        journal_kinds.register_all()
        judges.register_builtin_judges()
        integrations.connect()  # the LLM gateway's offline judge script and provider-key resolver
        register_demo("vault", demo.seed_demo_vault)
