"""Reservations and closes of several calls in one statement (``budgets_reserve_batch``,
``budgets_close_batch``): what budgets_reserve (budgets/0005) and budgets_close (budgets/0004)
do for one call, done for all the calls of a batch at once, in one transaction.

A process's calls that arrive while one of its reservations (or closes) is in flight are
sent together (apps.core.combine, apps.budgets.services): the rows every call of a
workspace shares, its workspace and crew windows and the journal head, are then locked once
per batch instead of once per call, and the batch has one commit and one durability barrier.

As in the single functions, the ledger rows are written first (they lock nothing another
call waits for), then every window of every call is created if need be, locked and charged
(with the batch's sum) by one upsert, in (budget, window) order, so a batch never deadlocks
with another batch or a single call; then the journal. Each call is checked as if the calls
came one at a time, in the batch's order, against the totals the calls before it left: the
sums of the calls before it (a window function) are added to the totals before the batch.
What the single function would refuse (the applicable budgets are not those the client
expects, a budget blocks, one is past its warning threshold when the client asked to be
told) makes the batch raise QDB05, which undoes all of it, and each call of the batch is
then sent alone. A second close of a reservation fails the batch the same way (the ledger's
unique index). Each call gets back what the single function returns: its ledger row, its
windows' totals (before the reservation; after the close) and its journal entries.

Per call, the parameters are parallel arrays; the budgets a call expects, the windows a
close applies to and the journal documents are flattened, with a count per call. The
entries keep each call's time (audit_journal_append_each, audit/0007).
"""

import importlib
from typing import Any

from django.db import migrations

_FUNCTIONS = importlib.import_module("apps.budgets.migrations.0004_reserve_and_close_functions")


def _budgets_in_force(ts: str, crew: str, mission: str, agent: str) -> str:
    """The budgets-in-force query of budgets/0004 for one call's values."""
    return (
        _FUNCTIONS.BUDGETS_IN_FORCE.replace("p_ts", ts)
        .replace("p_crew", crew)
        .replace("p_mission", mission)
        .replace("p_agent", agent)
        .strip("\n")
    )


RESERVE_BATCH = r"""
CREATE OR REPLACE FUNCTION {s}.budgets_reserve_batch(
    p_key bytea, p_async boolean, p_ts timestamptz[], p_crew uuid[], p_mission uuid[], p_agent uuid[],
    p_amount bigint[], p_guard boolean[], p_nexpect int[], p_expect text[], p_ledgers jsonb,
    p_nentries int[], p_entries text[]
{batch_head}
    v_refused boolean;
BEGIN
{async_commit}
{ledger_insert_all}
    WITH i AS (
        SELECT u.*, (sum(u.nexpect) OVER (ORDER BY u.n) - u.nexpect)::int AS xoff
        FROM unnest(p_ts, p_crew, p_mission, p_agent, p_amount, p_guard, p_nexpect)
            WITH ORDINALITY AS u(ts, crew, mission, agent, amount, guard, nexpect, n)
    ), l AS (  -- each call's budgets in force, with their current window
        SELECT i.n, i.amount, w.* FROM i CROSS JOIN LATERAL (
{budgets_in_force_of_i}
        ) AS w
    ), sums AS (
        SELECT l.id, l.window_key, min(l.window_start) AS ws, min(l.window_end) AS we,
               sum(l.amount)::bigint AS amount
        FROM l GROUP BY l.id, l.window_key
    ), up AS (
        INSERT INTO {s}.budgets_budgettotal AS tot
            (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
        SELECT s.id, s.window_key, s.ws, s.we, s.amount, 0, now() FROM sums s ORDER BY s.id, s.window_key
        ON CONFLICT (budget_id, window_key) DO UPDATE SET
            reserved_microusd = tot.reserved_microusd + EXCLUDED.reserved_microusd,
            updated_at = EXCLUDED.updated_at
        RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd AS reserved_after, tot.spent_microusd AS spent_now
    ), c AS (  -- per call and window: the totals before this call (the batch's calls before it included)
        SELECT l.n, l.id, l.window_key, l.limit_microusd, l.warn_percent, l.block_percent, l.amount, up.spent_now,
               (up.reserved_after - s.amount
                + sum(l.amount) OVER (PARTITION BY l.id, l.window_key ORDER BY l.n) - l.amount)::bigint AS before
        FROM l JOIN up ON up.budget_id = l.id AND up.window_key = l.window_key
               JOIN sums s ON s.id = l.id AND s.window_key = l.window_key
    ), per AS (
        SELECT i.n,
               coalesce(array_agg(concat_ws('|', c.id, c.window_key, c.limit_microusd,
                                            coalesce(c.warn_percent::text, '-'), c.block_percent)
                                  ORDER BY c.id, c.window_key) FILTER (WHERE c.id IS NOT NULL), '{}') AS found,
               p_expect[i.xoff + 1 : i.xoff + i.nexpect] AS expected,
               coalesce(bool_or(c.spent_now + c.before + c.amount > c.limit_microusd * c.block_percent / 100), false)
                   AS blocks,
               coalesce(bool_or(i.guard AND c.warn_percent IS NOT NULL
                                AND c.spent_now + c.before >= c.limit_microusd * c.warn_percent / 100), false) AS warns,
               coalesce(array_agg(c.before ORDER BY c.id, c.window_key) FILTER (WHERE c.id IS NOT NULL), '{}')::text
                   AS before_txt,
               coalesce(array_agg(c.spent_now ORDER BY c.id, c.window_key) FILTER (WHERE c.id IS NOT NULL), '{}')::text
                   AS spent_txt
        FROM i LEFT JOIN c ON c.n = i.n
        GROUP BY i.n, i.xoff, i.nexpect
    )
    SELECT bool_or(per.found IS DISTINCT FROM per.expected OR per.blocks OR per.warns),
           array_agg(per.before_txt ORDER BY per.n), array_agg(per.spent_txt ORDER BY per.n)
    INTO v_refused, v_reserved, v_spent
    FROM per;
    IF v_refused THEN
        RAISE EXCEPTION 'a call of the batch is not for the batch to decide' USING ERRCODE = 'QDB05';
    END IF;
{journal_append_all}
END;
$fn$;
"""

CLOSE_BATCH = r"""
CREATE OR REPLACE FUNCTION {s}.budgets_close_batch(
    p_key bytea, p_async boolean, p_ts timestamptz[], p_nlines int[], p_ids bigint[], p_keys text[],
    p_starts timestamptz[], p_ends timestamptz[], p_reserved bigint[], p_spent bigint[], p_ledgers jsonb,
    p_nentries int[], p_entries text[]
{batch_head}
BEGIN
{async_commit}
    -- A reservation closed before (or twice in this batch) fails here (unique index).
{ledger_insert_all}
    WITH i AS (
        SELECT u.*, (sum(u.nlines) OVER (ORDER BY u.n) - u.nlines)::int AS loff
        FROM unnest(p_nlines, p_reserved, p_spent) WITH ORDINALITY AS u(nlines, r, sp, n)
    ), d AS (  -- each call's windows
        SELECT i.n, i.r, i.sp, f.b, f.k, f.ws, f.we
        FROM unnest(p_ids, p_keys, p_starts, p_ends) WITH ORDINALITY AS f(b, k, ws, we, pos)
        JOIN i ON f.pos > i.loff AND f.pos <= i.loff + i.nlines
    ), sums AS (
        SELECT d.b, d.k, min(d.ws) AS ws, min(d.we) AS we, sum(d.r)::bigint AS r, sum(d.sp)::bigint AS sp
        FROM d GROUP BY d.b, d.k
    ), up AS (
        INSERT INTO {s}.budgets_budgettotal AS tot
            (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd, updated_at)
        SELECT s.b, s.k, s.ws, s.we, s.r, s.sp, now() FROM sums s ORDER BY s.b, s.k
        ON CONFLICT (budget_id, window_key) DO UPDATE SET
            reserved_microusd = tot.reserved_microusd + EXCLUDED.reserved_microusd,
            spent_microusd = tot.spent_microusd + EXCLUDED.spent_microusd,
            updated_at = EXCLUDED.updated_at
        RETURNING tot.budget_id, tot.window_key, tot.reserved_microusd AS reserved_after,
                  tot.spent_microusd AS spent_after
    ), c AS (  -- per call and window: the totals after this call (the batch's calls before it included)
        SELECT d.n, d.b, d.k,
               (up.reserved_after - s.r + sum(d.r) OVER (PARTITION BY d.b, d.k ORDER BY d.n))::bigint AS r_after,
               (up.spent_after - s.sp + sum(d.sp) OVER (PARTITION BY d.b, d.k ORDER BY d.n))::bigint AS sp_after
        FROM d JOIN up ON up.budget_id = d.b AND up.window_key = d.k
               JOIN sums s ON s.b = d.b AND s.k = d.k
    ), per AS (
        SELECT i.n,
               coalesce(array_agg(c.r_after ORDER BY c.b, c.k) FILTER (WHERE c.b IS NOT NULL), '{}')::text AS r_txt,
               coalesce(array_agg(c.sp_after ORDER BY c.b, c.k) FILTER (WHERE c.b IS NOT NULL), '{}')::text AS sp_txt
        FROM i LEFT JOIN c ON c.n = i.n
        GROUP BY i.n
    )
    SELECT array_agg(per.r_txt ORDER BY per.n), array_agg(per.sp_txt ORDER BY per.n) INTO v_reserved, v_spent
    FROM per;
{journal_append_all}
END;
$fn$;
"""

# What both batch functions return (one row per call, as the single functions return it) and
# the variables both declare (the ledger ids, and each call's windows' totals as array text).
BATCH_HEAD = r"""
) RETURNS TABLE (
    item int, ledger_id bigint, reserved bigint[], spent bigint[],
    journal_seqs bigint[], journal_prev_hashes text[], journal_hashes text[]
)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_ledger bigint[];
    v_reserved text[];
    v_spent text[];
"""

ASYNC_COMMIT = r"""
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
"""

# The ledger rows of every call (p_ledgers, a JSON array of objects of LEDGER_COLUMNS), their
# ids into v_ledger in the calls' order.
LEDGER_INSERT_ALL = r"""
    WITH e AS (
        SELECT e.doc, e.n FROM jsonb_array_elements(p_ledgers) WITH ORDINALITY AS e(doc, n)
    ), ins AS (
        INSERT INTO {s}.budgets_ledgerentry ({ledger_columns}, created_at)
        SELECT {ledger_values}, now() FROM jsonb_populate_recordset(NULL::{s}.budgets_ledgerentry, p_ledgers) AS r
        RETURNING id, reservation_id
    )
    SELECT array_agg(ins.id ORDER BY e.n) INTO v_ledger
    FROM e JOIN ins ON ins.reservation_id = (e.doc ->> 'reservation_id')::uuid;
"""

# Every call's journal entries in one append, each at its call's time; then one row per
# call: its ledger row, its windows' totals and its entries.
JOURNAL_APPEND_ALL = r"""
    RETURN QUERY
    WITH o AS (
        SELECT u.n::int AS n, u.cnt, (sum(u.cnt) OVER (ORDER BY u.n) - u.cnt)::int AS off
        FROM unnest(p_nentries) WITH ORDINALITY AS u(cnt, n)
    ), j AS (
        SELECT array_agg(a.out_seq ORDER BY a.out_seq) AS seqs, array_agg(a.out_prev_hash ORDER BY a.out_seq) AS prevs,
               array_agg(a.out_hash ORDER BY a.out_seq) AS hashes
        FROM {s}.audit_journal_append_each(
            p_key, false,
            ARRAY(SELECT p_ts[o.n] FROM o CROSS JOIN generate_series(1, o.cnt) ORDER BY o.n),
            p_entries
        ) AS a
    )
    SELECT o.n, v_ledger[o.n], v_reserved[o.n]::bigint[], v_spent[o.n]::bigint[],
           j.seqs[o.off + 1 : o.off + o.cnt], j.prevs[o.off + 1 : o.off + o.cnt], j.hashes[o.off + 1 : o.off + o.cnt]
    FROM o CROSS JOIN j
    ORDER BY o.n;
"""


def _render(sql: str, schema_editor: Any) -> str:
    sql = (
        sql.replace("{budgets_in_force_of_i}", _budgets_in_force("i.ts", "i.crew", "i.mission", "i.agent"))
        .replace("{batch_head}", BATCH_HEAD.strip("\n"))
        .replace("{async_commit}", ASYNC_COMMIT.strip("\n"))
        .replace("{ledger_insert_all}", LEDGER_INSERT_ALL.strip("\n"))
        .replace("{journal_append_all}", JOURNAL_APPEND_ALL.strip("\n"))
    )
    return _FUNCTIONS.render(sql, schema_editor)


def create_functions(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:  # no parameters: the driver leaves '%' alone
        cursor.execute(_render(RESERVE_BATCH, schema_editor))
        cursor.execute(_render(CLOSE_BATCH, schema_editor))


def drop_functions(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(
        "DROP FUNCTION IF EXISTS budgets_reserve_batch(bytea, boolean, timestamptz[], uuid[], uuid[], uuid[], "
        "bigint[], boolean[], int[], text[], jsonb, int[], text[]); "
        "DROP FUNCTION IF EXISTS budgets_close_batch(bytea, boolean, timestamptz[], int[], bigint[], text[], "
        "timestamptz[], timestamptz[], bigint[], bigint[], jsonb, int[], text[]);"
    )


class Migration(migrations.Migration):
    dependencies = [("budgets", "0005_reserve_shorter_hold"), ("audit", "0007_append_each_at_its_time")]

    operations = [migrations.RunPython(create_functions, drop_functions)]
