"""Retire the seeded models whose end of life has passed (claude-sonnet-4-5, on November 30th,
2026, as the anthropic SDK's table of deprecated models gives it): inactive in the catalog,
prices kept for the ledger's history, and out of every fallback list, so routing never sends
a call to a model the provider no longer serves. A fallback list left empty gets the seed's
current replacement (claude-opus-4-5 then falls back to claude-sonnet-4-6)."""

from django.db import migrations


def retire(apps, schema_editor):
    from apps.llm.catalog.seed import retire_models

    retire_models(apps.get_model("llm_catalog", "CatalogModel"), apps.get_model("llm_catalog", "ModelFallback"))


class Migration(migrations.Migration):
    dependencies = [("llm_catalog", "0002_seed_catalog")]

    operations = [migrations.RunPython(retire, migrations.RunPython.noop)]
