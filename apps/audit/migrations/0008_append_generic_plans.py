"""The journal's append functions plan their statements once per connection.

A PL/pgSQL statement with parameters is planned again on each call for as long as
PostgreSQL's plan cache judges a custom plan cheaper than the generic one. For the statement
of audit_journal_append_each that unnests its entries that was every call (the generic
plan's row estimates for an array parameter lose to a custom plan's), and every statement was
planned afresh on its connection's first five calls. Planning then cost more server time than
the append itself. The plans do not depend on the values (one head row, the rows given), so
the functions are told to keep the generic plan: ``plan_cache_mode = force_generic_plan``,
for their own statements and for those of the functions they call.

A SET attached to a function only restores that one setting when the function returns;
what the function sets locally (``synchronous_commit``, for an asynchronous commit) still
lasts until the transaction ends. A later migration that recreates one of these functions
(CREATE OR REPLACE drops the attached setting) must attach it again.
"""

from typing import Any

from django.db import migrations

FUNCTIONS = (
    "audit_journal_append(bytea, boolean, timestamptz, text[])",
    "audit_journal_append_each(bytea, boolean, timestamptz[], text[])",
)


def generic_plans(schema_editor: Any, functions: tuple[str, ...], *, on: bool) -> None:
    """Attach (or detach) ``plan_cache_mode = force_generic_plan`` to ``functions`` of the
    schema being migrated."""
    schema = schema_editor.connection.ops.quote_name(schema_editor.connection.schema_name)
    setting = "SET plan_cache_mode = force_generic_plan" if on else "RESET plan_cache_mode"
    for function in functions:
        schema_editor.execute(f"ALTER FUNCTION {schema}.{function} {setting}")


def forward(apps: Any, schema_editor: Any) -> None:
    generic_plans(schema_editor, FUNCTIONS, on=True)


def backward(apps: Any, schema_editor: Any) -> None:
    generic_plans(schema_editor, FUNCTIONS, on=False)


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_append_each_at_its_time")]

    operations = [migrations.RunPython(forward, backward)]
