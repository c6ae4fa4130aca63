"""LangGraph's checkpoint tables in this workspace's schema (see apps.crews.runtime.checkpoints).

The same SQL as ``PostgresSaver.setup()``, run on the migration's connection, whose search_path
is the workspace schema; CREATE INDEX without CONCURRENTLY, which cannot run in a transaction.
"""

from django.db import migrations


def install(apps, schema_editor):
    from apps.crews.runtime.checkpoints import install_tables

    with schema_editor.connection.cursor() as cursor:
        install_tables(cursor)


def remove(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS checkpoint_writes, checkpoint_blobs, checkpoints, checkpoint_migrations")


class Migration(migrations.Migration):
    dependencies = [("crews", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
