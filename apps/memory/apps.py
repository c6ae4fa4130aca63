from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "apps.memory"
    label = "memory"
    verbose_name = "Memory"

    def ready(self) -> None:
        from apps.tenants.demo import register_demo
        from apps.tenants.provisioning import register_defaults

        from . import journal_kinds
        from .demo import seed_demo_memory
        from .embedders.builtin import register_builtin
        from .services import memory_workspace_init

        journal_kinds.register_all()
        register_builtin()
        register_defaults("memory", memory_workspace_init)
        register_demo("memory", seed_demo_memory)
