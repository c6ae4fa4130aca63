from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"
    verbose_name = "LLM gateway"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo
        from apps.tenants.provisioning import register_defaults

        from . import journal_kinds
        from .defaults import seed_demo_llm, workspace_llm_defaults
        from .providers import register_builtin_providers

        journal_kinds.register_all()
        register_builtin_providers()
        register_defaults("llm", workspace_llm_defaults)
        register_demo("llm", seed_demo_llm)
