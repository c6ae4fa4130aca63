"""Install pgvector and AGE from a shared (public-schema) app, so every workspace schema sees
the ``vector`` type and the ``ag_catalog`` functions through its search_path."""
# ruff: noqa: RUF012

from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    # With AGE preloaded, its DDL hook looks up ag_catalog on every DROP; the extension must
    # exist before any other app's migration alters a table.
    run_before = [("contenttypes", "0001_initial")]

    operations = [
        VectorExtension(),
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS age;",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
