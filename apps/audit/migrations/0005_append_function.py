"""The append function: one call locks the head, chains and inserts the entries and moves
the head, inside the statement (so the head's lock is held for the server's work only, never
across a round trip or a client's time slice).

hash(n) = HMAC-SHA256(key, prev_hash + "\\n" + canonical(n)) exactly as before
(apps.audit.chain): the client sends each entry as the JSON array of its canonical form
without the two leading elements (format version and sequence number, which only the head
knows), and the function puts them in front. The key is a bound parameter of each call: it
is never stored in the database nor part of a statement's text.

Table names are qualified with the workspace's schema (baked in at migration time), so the
function does not depend on the connection's search_path.
"""

from typing import Any

from django.db import migrations

FORMAT_VERSION = 1  # apps.audit.chain.FORMAT_VERSION when this function was written

FUNCTION = r"""
CREATE OR REPLACE FUNCTION {s}.audit_journal_append(
    p_key bytea, p_async boolean, p_ts timestamptz, p_entries text[]
) RETURNS TABLE (out_seq bigint, out_prev_hash text, out_hash text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_seq bigint;
    v_hash text;
    v_journal uuid;
    v_prev text;
    v_entry text;
    v_seqs bigint[] := '{}';
    v_prevs text[] := '{}';
    v_hashes text[] := '{}';
    v_docs jsonb[] := '{}';
BEGIN
    IF p_async THEN
        -- Only for a call that is its own transaction (the client decides; see apps.core.db).
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    SELECT h.last_seq, h.last_hash, h.journal_id INTO v_seq, v_hash, v_journal
        FROM {s}.audit_journalhead h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit journal head is missing' USING ERRCODE = 'P0002';
    END IF;
    IF v_seq = 0 THEN
        v_hash := encode(public.hmac(
            convert_to('quarterdeck-journal-genesis|' || {schema_literal} || '|' || coalesce(v_journal::text, ''), 'UTF8'),
            p_key, 'sha256'), 'hex');
    END IF;
    -- Chain first (each hash needs the one before), then insert every entry in one statement.
    FOREACH v_entry IN ARRAY p_entries LOOP
        v_seq := v_seq + 1;
        v_prev := v_hash;
        -- v_entry is [ts, kind, severity, actor_kind, actor_id, actor_label, crew, mission,
        -- agent, request, payload]; the canonical form is [format, seq, ...the same].
        v_hash := encode(public.hmac(
            convert_to(v_prev || E'\n[{format_version},' || v_seq || ',' || substr(v_entry, 2), 'UTF8'),
            p_key, 'sha256'), 'hex');
        v_seqs := v_seqs || v_seq;
        v_prevs := v_prevs || v_prev;
        v_hashes := v_hashes || v_hash;
        v_docs := v_docs || v_entry::jsonb;  -- parsed once here, read eleven times below
    END LOOP;
    INSERT INTO {s}.audit_journalentry (seq, created_at, kind, severity, actor_kind, actor_id, actor_label,
                                        crew_id, mission_id, agent_id, request_id, payload, prev_hash, hash)
    SELECT e.seq, p_ts, d->>1, d->>2, d->>3, d->>4, d->>5, (d->>6)::uuid, (d->>7)::uuid, (d->>8)::uuid,
           d->>9, d->10, e.prev, e.hash
    FROM unnest(v_seqs, v_prevs, v_hashes, v_docs) AS e(seq, prev, hash, d);
    UPDATE {s}.audit_journalhead SET last_seq = v_seq, last_hash = v_hash WHERE id = 1;
    RETURN QUERY SELECT * FROM unnest(v_seqs, v_prevs, v_hashes);
END;
$fn$;
"""


def create_function(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    schema = connection.schema_name
    schema_editor.execute(
        FUNCTION.replace("{s}", connection.ops.quote_name(schema))
        .replace("{schema_literal}", "'" + schema.replace("'", "''") + "'")
        .replace("{format_version}", str(FORMAT_VERSION))
    )


def drop_function(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_journal_append(bytea, boolean, timestamptz, text[])")


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_brin_created_at"), ("core", "0002_pgcrypto")]

    operations = [migrations.RunPython(create_function, drop_function)]
