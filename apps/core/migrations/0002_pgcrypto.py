"""pgcrypto, in the public schema: the journal's append function computes its HMAC chain in
the database (see apps/audit/migrations/0005_append_function.py)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("core", "0001_extensions")]

    operations = [
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;", migrations.RunSQL.noop),
    ]
