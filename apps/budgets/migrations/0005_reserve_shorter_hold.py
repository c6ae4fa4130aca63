"""budgets_reserve, reordered so that the rows every call of a workspace shares (its
workspace and crew windows) are held for less time: the ledger row is written first (it
locks nothing another call waits for), and the window rows are then locked, checked and
charged by one upsert instead of an upsert and an update (one new row version per window
per call instead of two). A refusal still raises, which undoes everything, ledger row
included. Same signature and results as budgets/0004: ``reserved`` and ``spent`` are the
windows' values before this reservation.
"""

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
    INSERT INTO {s}.budgets_ledgerentry ({ledger_columns}, created_at)
    SELECT {ledger_values}, now() FROM jsonb_populate_record(NULL::{s}.budgets_ledgerentry, p_ledger) AS r
    RETURNING id INTO ledger_id;
    -- Find the active budgets of the call's scopes; create, lock and charge their current
    -- window's totals row (in (budget, window) order); RETURNING gives the values after
    -- the charge, so the ones before it are those minus p_amount.
    WITH b AS (
        SELECT b.id, b.limit_microusd, b.warn_percent, b.block_percent,
               CASE b."window"
                   WHEN 'hour' THEN 'hour:' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')
                   WHEN 'day' THEN 'day:' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                   WHEN 'week' THEN 'week:' || to_char(date_trunc('week', p_ts AT TIME ZONE 'UTC'), 'YYYY-MM-DD')
                   WHEN 'month' THEN 'month:' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM')
                   ELSE 'mission:' || coalesce(p_mission::text, 'none') END AS window_key,
               CASE WHEN b."window" = 'mission' THEN NULL
                   ELSE date_trunc(b."window", p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END AS window_start,
               CASE WHEN b."window" = 'mission' THEN NULL
                   ELSE (date_trunc(b."window", p_ts AT TIME ZONE 'UTC') + ('1 ' || b."window")::interval)
                       AT TIME ZONE 'UTC' END AS window_end
        FROM {s}.budgets_budget b
        WHERE b.is_active AND (
            b.scope = 'workspace'
            OR (b.scope = 'crew' AND b.scope_id = p_crew)
            OR (b.scope = 'mission' AND b.scope_id = p_mission)
            OR (b.scope = 'agent' AND b.scope_id = p_agent)
        )
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

    IF v_found IS DISTINCT FROM p_expect THEN
        RAISE EXCEPTION 'the applicable budgets changed' USING ERRCODE = 'QDB01';
    END IF;
    IF v_block THEN
        RAISE EXCEPTION 'a budget blocks this reservation' USING ERRCODE = 'QDB02';
    END IF;
    IF p_guard_warning AND v_warn THEN
        RAISE EXCEPTION 'a budget is past its warning threshold' USING ERRCODE = 'QDB03';
    END IF;

    SELECT array_agg(j.out_seq ORDER BY j.out_seq), array_agg(j.out_prev_hash ORDER BY j.out_seq),
           array_agg(j.out_hash ORDER BY j.out_seq)
    INTO journal_seqs, journal_prev_hashes, journal_hashes
    FROM {s}.audit_journal_append(p_key, false, p_ts, p_entries) AS j;
    RETURN NEXT;
END;
$fn$;
"""

# As in budgets/0004 (a migration keeps its own copy: the model may change later).
LEDGER_COLUMNS = (
    "kind", "reservation_id", "request_id", "crew_id", "mission_id", "agent_id", "model", "price_id",
    "price_version", "price_input_per_mtok", "price_output_per_mtok", "price_cache_read_per_mtok",
    "price_cache_write_per_mtok", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "amount_microusd", "reserved_microusd", "requested_microusd", "budget_ids", "window_keys",
    "blocked_budget_id", "actor", "note",
)  # fmt: skip


def replace_reserve(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:  # no parameters, so the driver leaves RAISE's '%' alone
        cursor.execute(
            RESERVE.replace("{s}", connection.ops.quote_name(connection.schema_name))
            .replace("{ledger_columns}", ", ".join(LEDGER_COLUMNS))
            .replace("{ledger_values}", ", ".join(f"r.{column}" for column in LEDGER_COLUMNS))
        )


def restore_reserve(apps: Any, schema_editor: Any) -> None:
    import importlib

    previous = importlib.import_module("apps.budgets.migrations.0004_reserve_and_close_functions")
    previous.create_functions(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("budgets", "0004_reserve_and_close_functions")]

    operations = [migrations.RunPython(replace_reserve, restore_reserve)]
