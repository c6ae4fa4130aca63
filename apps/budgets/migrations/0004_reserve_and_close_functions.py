"""Reserve and close (settle or release) as database functions: each is one statement that
locks the budget windows, writes the ledger row and the totals, and journals (through the
journal's own append function, audit/0005), so the rows that every call of a workspace
shares (its workspace and crew windows, the journal head) are locked for the server's work
only, never across a round trip or a client's time slice.

``budgets_reserve`` takes the budget windows the client expects to apply (each as
"id|window key|limit|warn%|block%", in budget order); when the applicable budgets are not
exactly those, when a budget would block, or (``p_guard_warning``) when one is past its
warning threshold, it raises (SQLSTATE QDB01/QDB02/QDB03) and nothing it did stays: the
client then takes its general path, which decides in Python under the same locks. Table
names are qualified with the workspace's schema (baked in at migration time).
"""

from typing import Any

from django.db import migrations

# Pieces both functions (and budgets/0005) use.
# The active budgets of the call's scopes, with the key and bounds of their current window.
BUDGETS_IN_FORCE = r"""
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
"""
# The ledger row (p_ledger, a JSON object of LEDGER_COLUMNS); its id into ledger_id.
LEDGER_INSERT = r"""
    INSERT INTO {s}.budgets_ledgerentry ({ledger_columns}, created_at)
    SELECT {ledger_values}, now() FROM jsonb_populate_record(NULL::{s}.budgets_ledgerentry, p_ledger) AS r
    RETURNING id INTO ledger_id;
"""
# The journal entries (p_entries), through the journal's append function.
JOURNAL_APPEND = r"""
    SELECT array_agg(j.out_seq ORDER BY j.out_seq), array_agg(j.out_prev_hash ORDER BY j.out_seq),
           array_agg(j.out_hash ORDER BY j.out_seq)
    INTO journal_seqs, journal_prev_hashes, journal_hashes
    FROM {s}.audit_journal_append(p_key, false, p_ts, p_entries) AS j;
"""
# The reservation's refusals: the client's budgets were not the applicable ones, a budget
# blocks, or (p_guard_warning) one is past its warning threshold.
RESERVE_CHECKS = r"""
    IF v_found IS DISTINCT FROM p_expect THEN
        RAISE EXCEPTION 'the applicable budgets changed' USING ERRCODE = 'QDB01';
    END IF;
    IF v_block THEN
        RAISE EXCEPTION 'a budget blocks this reservation' USING ERRCODE = 'QDB02';
    END IF;
    IF p_guard_warning AND v_warn THEN
        RAISE EXCEPTION 'a budget is past its warning threshold' USING ERRCODE = 'QDB03';
    END IF;
"""

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION {s}.budgets_abort(p_state text, p_message text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '%', p_message USING ERRCODE = p_state;
END;
$fn$;

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
    v_ids bigint[];
    v_keys text[];
    v_block boolean;
    v_warn boolean;
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    -- Find the active budgets of the call's scopes, upsert their current window's totals row
    -- and lock it (ON CONFLICT DO UPDATE takes the row lock), in (budget, window) order.
    WITH b AS (
{budgets_in_force}
    ), up AS (
        INSERT INTO {s}.budgets_budgettotal AS tot
            (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
        SELECT b.id, b.window_key, b.window_start, b.window_end, 0, 0, now() FROM b ORDER BY b.id, b.window_key
        ON CONFLICT (budget_id, window_key) DO UPDATE SET updated_at = EXCLUDED.updated_at
        RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd, tot.spent_microusd
    )
    SELECT coalesce(array_agg(concat_ws('|', b.id, b.window_key, b.limit_microusd, coalesce(b.warn_percent::text, '-'),
                                        b.block_percent) ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(b.id ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(b.window_key ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(up.reserved_microusd ORDER BY b.id, b.window_key), '{}'),
           coalesce(array_agg(up.spent_microusd ORDER BY b.id, b.window_key), '{}'),
           coalesce(bool_or(up.spent_microusd + up.reserved_microusd + p_amount
                            > b.limit_microusd * b.block_percent / 100), false),
           coalesce(bool_or(b.warn_percent IS NOT NULL AND up.spent_microusd + up.reserved_microusd
                            >= b.limit_microusd * b.warn_percent / 100), false)
    INTO v_found, v_ids, v_keys, reserved, spent, v_block, v_warn
    FROM up JOIN b ON b.id = up.budget_id AND b.window_key = up.window_key;

{reserve_checks}

{ledger_insert}
    UPDATE {s}.budgets_budgettotal AS t
    SET reserved_microusd = t.reserved_microusd + p_amount, updated_at = now()
    FROM unnest(v_ids, v_keys) AS k(budget_id, window_key)
    WHERE t.budget_id = k.budget_id AND t.window_key = k.window_key;
{journal_append}
    RETURN NEXT;
END;
$fn$;

CREATE OR REPLACE FUNCTION {s}.budgets_close(
    p_key bytea, p_async boolean, p_ts timestamptz, p_ids bigint[], p_keys text[], p_starts timestamptz[],
    p_ends timestamptz[], p_reserved bigint, p_spent bigint, p_ledger jsonb, p_entries text[]
) RETURNS TABLE (
    ledger_id bigint, reserved bigint[], spent bigint[],
    journal_seqs bigint[], journal_prev_hashes text[], journal_hashes text[]
)
LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    -- A second settlement or release of the same reservation fails here (unique index).
{ledger_insert}
    WITH up AS (
        INSERT INTO {s}.budgets_budgettotal AS tot
            (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
        SELECT d.b, d.k, d.ws, d.we, p_reserved, p_spent, now()
        FROM unnest(p_ids, p_keys, p_starts, p_ends) AS d(b, k, ws, we) ORDER BY d.b, d.k
        ON CONFLICT (budget_id, window_key) DO UPDATE SET
            reserved_microusd = tot.reserved_microusd + EXCLUDED.reserved_microusd,
            spent_microusd = tot.spent_microusd + EXCLUDED.spent_microusd,
            updated_at = EXCLUDED.updated_at
        RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd, tot.spent_microusd
    )
    SELECT coalesce(array_agg(up.reserved_microusd ORDER BY up.budget_id, up.window_key), '{}'),
           coalesce(array_agg(up.spent_microusd ORDER BY up.budget_id, up.window_key), '{}')
    INTO reserved, spent FROM up;
{journal_append}
    RETURN NEXT;
END;
$fn$;
"""

LEDGER_COLUMNS = (
    "kind",
    "reservation_id",
    "request_id",
    "crew_id",
    "mission_id",
    "agent_id",
    "model",
    "price_id",
    "price_version",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "price_cache_read_per_mtok",
    "price_cache_write_per_mtok",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "amount_microusd",
    "reserved_microusd",
    "requested_microusd",
    "budget_ids",
    "window_keys",
    "blocked_budget_id",
    "actor",
    "note",
)


def render(sql: str, schema_editor: Any) -> str:
    """``sql`` with its pieces filled in, for the schema being migrated."""
    connection = schema_editor.connection
    return (
        sql.replace("{budgets_in_force}", BUDGETS_IN_FORCE.strip("\n"))
        .replace("{ledger_insert}", LEDGER_INSERT.strip("\n"))
        .replace("{journal_append}", JOURNAL_APPEND.strip("\n"))
        .replace("{reserve_checks}", RESERVE_CHECKS.strip("\n"))
        .replace("{s}", connection.ops.quote_name(connection.schema_name))
        .replace("{ledger_columns}", ", ".join(LEDGER_COLUMNS))
        .replace("{ledger_values}", ", ".join(f"r.{column}" for column in LEDGER_COLUMNS))
    )


def create_functions(apps: Any, schema_editor: Any) -> None:
    # No parameters, so the driver leaves the '%' of RAISE alone.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(render(FUNCTIONS, schema_editor))


def drop_functions(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(
        "DROP FUNCTION IF EXISTS budgets_reserve(bytea, boolean, timestamptz, uuid, uuid, uuid, bigint, text[], "
        "boolean, jsonb, text[]); "
        "DROP FUNCTION IF EXISTS budgets_close(bytea, boolean, timestamptz, bigint[], text[], timestamptz[], "
        "timestamptz[], bigint, bigint, jsonb, text[]); "
        "DROP FUNCTION IF EXISTS budgets_abort(text, text);"
    )


class Migration(migrations.Migration):
    dependencies = [("budgets", "0003_lean_ledger_indexes"), ("audit", "0005_append_function")]

    operations = [migrations.RunPython(create_functions, drop_functions)]
