"""The append function (audit/0005) with a third commit mode, for an append that is its own
transaction and was not told how to commit (``p_async`` NULL): it waits for the disk at
commit unless it had to wait for the head, that is, unless another transaction (another
process's append, typically) held it. Then it commits without waiting, so the head is
freed before the fsync and writers queued on it from several processes share their flushes;
the client reads the mode it chose (``current_setting('synchronous_commit')`` in the same
statement) and waits for the flush itself (apps.core.db.durability_barrier) before it
reports the entry written.

``p_async`` true and false keep their meaning (asynchronous commit; the caller's own
transaction, whose commit mode is never changed). The hash and everything else are as in
audit/0005.
"""

import importlib
from typing import Any

from django.db import migrations

_PREVIOUS = importlib.import_module("apps.audit.migrations.0005_append_function")

OLD_LOCK = """    SELECT h.last_seq, h.last_hash, h.journal_id INTO v_seq, v_hash, v_journal
        FROM {s}.audit_journalhead h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN"""
NEW_LOCK = """    SELECT h.last_seq, h.last_hash, h.journal_id INTO v_seq, v_hash, v_journal
        FROM {s}.audit_journalhead h WHERE h.id = 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        -- Held by another transaction: queue for it, and (when ours is a transaction of its
        -- own that left the choice to us) do not hold it through our fsync in turn.
        IF p_async IS NULL THEN
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        SELECT h.last_seq, h.last_hash, h.journal_id INTO v_seq, v_hash, v_journal
            FROM {s}.audit_journalhead h WHERE h.id = 1 FOR UPDATE;
    END IF;
    IF NOT FOUND THEN"""


def _function(previous: bool) -> str:
    if previous:
        return _PREVIOUS.FUNCTION
    assert OLD_LOCK in _PREVIOUS.FUNCTION
    return _PREVIOUS.FUNCTION.replace(OLD_LOCK, NEW_LOCK)


def render(sql: str, schema_editor: Any) -> str:
    """An append function's text for the schema being migrated."""
    connection = schema_editor.connection
    schema = connection.schema_name
    return (
        sql.replace("{s}", connection.ops.quote_name(schema))
        .replace("{schema_literal}", "'" + schema.replace("'", "''") + "'")
        .replace("{format_version}", str(_PREVIOUS.FORMAT_VERSION))
    )


def _create(schema_editor: Any, *, previous: bool) -> None:
    schema_editor.execute(render(_function(previous), schema_editor))


def forward(apps: Any, schema_editor: Any) -> None:
    _create(schema_editor, previous=False)


def backward(apps: Any, schema_editor: Any) -> None:
    _create(schema_editor, previous=True)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_append_function")]

    operations = [migrations.RunPython(forward, backward)]
