#!/usr/bin/env bash
# `make bench-db-floor`: what PostgreSQL alone does on this machine with the rows that one
# budget reserve+settle pair writes, so that `make bench-budgets`' reserve_settle_per_s can be
# read against it. No Python, no PL/pgSQL, no HMAC: pgbench (inside the Postgres container, on
# its unix socket) runs, per pair, two transactions of the same shape as budgets_reserve and
# budgets_close: a ledger row, four budget windows upserted (two shared by every client, as the
# workspace and crew windows are, two of the client's own), the journal head moved and a
# journal row inserted, into copies of the real tables with all their indexes. The first
# transaction commits without waiting for its flush and is followed by the durability barrier,
# as a gateway reservation is. Tables live in a scratch schema (bench_floor), dropped at the end.
#
# CLIENTS (default 32) and DURATION in seconds (default 10) set the load; DATABASE (default
# quarterdeck) names the database, whose first workspace lends its tables' layout. Last line: JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-10}
DATABASE=${DATABASE:-quarterdeck}
pg() { scripts/infra.sh pg-exec "$@"; }
psql_() { pg env PGOPTIONS="-c client_min_messages=warning" psql -q -X -v ON_ERROR_STOP=1 -U quarterdeck -d "$DATABASE" "$@"; }

schema=$(psql_ -tA -c "SELECT schema_name FROM tenants_workspace ORDER BY id LIMIT 1")
[ -n "$schema" ] || { echo "no workspace yet: run make demo or make bench-budgets first" >&2; exit 1; }

psql_ <<SQL
DROP SCHEMA IF EXISTS bench_floor CASCADE;
CREATE SCHEMA bench_floor;
CREATE TABLE bench_floor.ledger (LIKE "$schema".budgets_ledgerentry INCLUDING ALL);
CREATE TABLE bench_floor.journal (LIKE "$schema".audit_journalentry INCLUDING ALL);
CREATE TABLE bench_floor.totals (LIKE "$schema".budgets_budgettotal INCLUDING ALL);
CREATE TABLE bench_floor.head (id integer PRIMARY KEY, last_seq bigint NOT NULL, last_hash text NOT NULL);
INSERT INTO bench_floor.head VALUES (1, 0, '');
INSERT INTO bench_floor.totals (budget_id, window_key, window_start, window_end, reserved_microusd, spent_microusd,
                                updated_at)
    SELECT g, 'day-floor', now(), now(), 0, 0, now() FROM generate_series(1, 2 + 2 * $CLIENTS) AS g;
SQL

# One transaction of a pair, of ledger kind $1; :client picks the client's own windows. (pgbench
# reads a colon followed by a name as a variable, even inside a string literal: none below.)
half() {
  sed "s/@kind@/$1/" <<'SQL'
BEGIN;
SET LOCAL synchronous_commit = off;
INSERT INTO bench_floor.ledger (kind, reservation_id, request_id, crew_id, mission_id, agent_id, model, price_id,
    price_version, price_input_per_mtok, price_output_per_mtok, price_cache_read_per_mtok, price_cache_write_per_mtok,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, amount_microusd, reserved_microusd,
    requested_microusd, budget_ids, window_keys, actor, note)
VALUES ('@kind@', gen_random_uuid(), 'floor-' || (:client)::text, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
    'claude-haiku-4-5', 6, 1, 1000000, 5000000, 100000, 1250000, 800, 90, 0, 0, 3210, 5000, 5000, '{1,2,3,4}',
    '{month-2026-11,day-2026-11-22,day-2026-11-22,hour-2026-11-22T03}', 'bench_db_floor', '');
INSERT INTO bench_floor.totals AS t (budget_id, window_key, window_start, window_end, reserved_microusd,
                                     spent_microusd, updated_at)
    SELECT b, 'day-floor', now(), now(), 5000, 0, now() FROM unnest(ARRAY[1, 2, (:client)::int + 3, (:client)::int + 3 + (:clients)::int]) AS b
    ORDER BY b
    ON CONFLICT (budget_id, window_key) DO UPDATE
    SET reserved_microusd = t.reserved_microusd + 5000, updated_at = EXCLUDED.updated_at;
UPDATE bench_floor.head SET last_seq = last_seq + 1, last_hash = md5(last_hash) WHERE id = 1;
INSERT INTO bench_floor.journal (seq, created_at, kind, severity, actor_kind, actor_id, actor_label, crew_id,
    mission_id, agent_id, request_id, payload, prev_hash, hash)
SELECT h.last_seq, now(), 'budget.reserved', 'info', 'system', 'bench', 'bench_db_floor', gen_random_uuid(),
    gen_random_uuid(), gen_random_uuid(), 'floor-' || (:client)::text,
    '{"model": "claude-haiku-4-5", "price_id": 6, "budget_ids": [1, 2, 3, 4], "max_tokens": 512,
      "window_keys": ["month-2026-11", "day-2026-11-22", "day-2026-11-22", "hour-2026-11-22T03"],
      "input_tokens": 800, "price_version": 1, "reservation_id": "b4650c1f-fb80-4fa2-98bb-4e8fca918365",
      "amount_microusd": 5000}'::jsonb,
    h.last_hash, md5(h.last_hash) || md5(h.last_hash)
FROM bench_floor.head h WHERE h.id = 1;
COMMIT;
SQL
}
{
  echo "\\set client :client_id"
  echo "\\set clients $CLIENTS"
  echo "\\startpipeline"; half reservation; echo "\\endpipeline"
  echo "SELECT pg_logical_emit_message(false, 'quarterdeck.durability', '', true);"
  echo "\\startpipeline"; half settlement; echo "\\endpipeline"
} | pg sh -c 'cat > /tmp/bench_db_floor.pgbench'

result=$(pg pgbench -n -U quarterdeck -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f /tmp/bench_db_floor.pgbench \
  "$DATABASE" 2>&1) || { echo "$result" >&2; exit 1; }
psql_ -c "DROP SCHEMA bench_floor CASCADE"
echo "$result" | grep -E "^(number of (transactions actually processed|failed)|latency average|tps)"
tps=$(echo "$result" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
printf '{"db_floor_pairs_per_s": %.1f, "clients": %d, "seconds": %d}\n' "$tps" "$CLIENTS" "$DURATION"
