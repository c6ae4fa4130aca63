"""budgets_reserve, reordered so that the rows every call of a workspace shares (its
workspace and crew windows) are held for less time: the ledger row is written first (it
locks nothing another call waits for), and the window rows are then locked, checked and
charged by one upsert instead of an upsert and an update (one new row version per window
per call instead of two). A refusal still raises, which undoes everything, ledger row
included. Same signature and results as budgets/0004: ``reserved`` and ``spent`` are the
windows' values before this reservation.
"""

import importlib
from typing import Any

from django.db import migrations

RESERVE = r"""
CREATE OR REPLACE FUNCTION {s}.budgets_reserve(
    p_key bytea, p_async boolean, p_ts timestamptz, p_crew uuid, p_mission uuid, p_agent uuid,
    p_amount bigint, p_expect text[], p_guard_warning boolean, p_ledger jsonb, p_entries text[]
) RETURNS TABLE (
    ledger_id bigint, reserved bigint[], spent bigint[],
    journal_seqs bigint[], journal_prev_hashes text[], journal_hashes text[]
)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_found text[];
    v_block boolean;
    v_warn boolean;
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
{ledger_insert}
    -- Find the active budgets of the call's scopes; create, lock and charge their current
    -- window's totals row (in (budget, window) order); RETURNING gives the values after
    -- the charge, so the ones before it are those minus p_amount.
    WITH b AS (
{budgets_in_force}
    ), up AS (
        INSERT INTO {s}.budgets_budgettotal AS tot
            (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
        SELECT b.id, b.window_key, b.window_start, b.window_end, p_amount, 0, now() FROM b ORDER BY b.id, b.window_key
        ON CONFLICT (budget_id, window_key) DO UPDATE SET
            reserved_microusd = tot.reserved_microusd + EXCLUDED.reserved_microusd,
            updated_at = EXCLUDED.updated_at
        RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd - p_amount AS reserved_before,
                  tot.spent_microusd
    )
    SELECT coalesce(array_agg(concat_ws('|', b.id, b.window_key, b.limit_microusd, coalesce(b.warn_percent::text, '-'),
                                        b.block_percent) ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(up.reserved_before ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(up.spent_microusd ORDER BY b.id, b.window_key), '{}'),
           coalesce(bool_or(up.spent_microusd + up.reserved_before + p_amount
                            > b.limit_microusd * b.block_percent / 100), false),
           coalesce(bool_or(b.warn_percent IS NOT NULL AND up.spent_microusd + up.reserved_before
                            >= b.limit_microusd * b.warn_percent / 100), false)
    INTO v_found, reserved, spent, v_block, v_warn
    FROM up JOIN b ON b.id = up.budget_id AND b.window_key = up.window_key;

{reserve_checks}

{journal_append}
    RETURN NEXT;
END;
$fn$;
"""

# The pieces (window keys, ledger insert, refusals, journal call) and their rendering are budgets/0004's.
_PREVIOUS = importlib.import_module("apps.budgets.migrations.0004_reserve_and_close_functions")


def replace_reserve(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:  # no parameters: the driver leaves RAISE's '%' alone
        cursor.execute(_PREVIOUS.render(RESERVE, schema_editor))


def restore_reserve(apps: Any, schema_editor: Any) -> None:
    _PREVIOUS.create_functions(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("budgets", "0004_reserve_and_close_functions")]

    operations = [migrations.RunPython(replace_reserve, restore_reserve)]
