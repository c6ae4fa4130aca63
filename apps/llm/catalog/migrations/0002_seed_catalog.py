"""Seed the catalog with current Anthropic models and the offline models (idempotent)."""

from django.db import migrations


def seed(apps, schema_editor):
    from apps.llm.catalog.seed import seed_catalog

    seed_catalog(
        apps.get_model("llm_catalog", "CatalogModel"),
        apps.get_model("llm_catalog", "ModelPrice"),
        apps.get_model("llm_catalog", "ModelFallback"),
        apps.get_model("llm_catalog", "GlobalRouting"),
    )


class Migration(migrations.Migration):
    dependencies = [("llm_catalog", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
