from django.apps import AppConfig


class LlmCatalogConfig(AppConfig):
    name = "apps.llm.catalog"
    label = "llm_catalog"
    verbose_name = "Model catalog"
