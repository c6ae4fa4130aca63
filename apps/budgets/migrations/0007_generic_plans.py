"""The budgets' reserve and close functions plan their statements once per connection, as
the journal's append functions do (audit/0008, which explains why): their statements'
plans do not depend on the values, and planning them on every call (the batch functions'
statements) or on a connection's first five calls (all of them) cost a good part of a
reservation's server time. The journal append they call runs under the same setting.

A later migration that recreates one of these functions must attach the setting again.
"""

import importlib
from typing import Any

from django.db import migrations

_AUDIT = importlib.import_module("apps.audit.migrations.0008_append_generic_plans")

FUNCTIONS = (
    "budgets_reserve(bytea, boolean, timestamptz, uuid, uuid, uuid, bigint, text[], boolean, jsonb, text[])",
    "budgets_close(bytea, boolean, timestamptz, bigint[], text[], timestamptz[], timestamptz[], bigint, bigint, "
    "jsonb, text[])",
    "budgets_reserve_batch(bytea, boolean, timestamptz[], uuid[], uuid[], uuid[], bigint[], boolean[], int[], "
    "text[], jsonb, int[], text[])",
    "budgets_close_batch(bytea, boolean, timestamptz[], int[], bigint[], text[], timestamptz[], timestamptz[], "
    "bigint[], bigint[], jsonb, int[], text[])",
)


def forward(apps: Any, schema_editor: Any) -> None:
    _AUDIT.generic_plans(schema_editor, FUNCTIONS, on=True)


def backward(apps: Any, schema_editor: Any) -> None:
    _AUDIT.generic_plans(schema_editor, FUNCTIONS, on=False)


class Migration(migrations.Migration):
    dependencies = [("budgets", "0006_reserve_and_close_batches"), ("audit", "0008_append_generic_plans")]

    operations = [migrations.RunPython(forward, backward)]
