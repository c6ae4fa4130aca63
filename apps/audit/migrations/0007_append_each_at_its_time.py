"""``audit_journal_append_each``: the append function (audit/0006) for entries that do not
share one time: ``p_ts`` holds each entry's time, in the order of ``p_entries``. Everything
else (the head's lock and commit modes, the chain, the hash) is audit/0006's.

The budgets' batch functions (budgets/0006) journal the calls of a batch with it: each call's
entries keep the time their documents were made with, so verify recomputes the same hashes.
"""

import importlib
from typing import Any

from django.db import migrations

_ADAPTIVE = importlib.import_module("apps.audit.migrations.0006_append_adaptive_commit")

CHANGES = (
    (
        "FUNCTION {s}.audit_journal_append(\n    p_key bytea, p_async boolean, p_ts timestamptz, p_entries text[]\n)",
        "FUNCTION {s}.audit_journal_append_each(\n    p_key bytea, p_async boolean, p_ts timestamptz[], p_entries text[]\n)",
    ),
    ("    SELECT e.seq, p_ts, d->>1,", "    SELECT e.seq, e.ts, d->>1,"),
    (
        "FROM unnest(v_seqs, v_prevs, v_hashes, v_docs) AS e(seq, prev, hash, d);",
        "FROM unnest(v_seqs, v_prevs, v_hashes, v_docs, p_ts) AS e(seq, prev, hash, d, ts);",
    ),
)


def _function() -> str:
    sql = _ADAPTIVE._function(previous=False)
    for old, new in CHANGES:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


def forward(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(_ADAPTIVE.render(_function(), schema_editor))


def backward(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_journal_append_each(bytea, boolean, timestamptz[], text[])")


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_append_adaptive_commit")]

    operations = [migrations.RunPython(forward, backward)]
