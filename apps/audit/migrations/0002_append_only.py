"""Append-only in the database itself, and the journal head row.

UPDATE, DELETE and TRUNCATE on journal entries raise, except DELETE while the transaction-local
setting ``quarterdeck.journal_compaction`` is 'on' (set only by the compaction service).
Checkpoints and forks are append-only without exception.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_journal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_journalentry'
       AND current_setting('quarterdeck.journal_compaction', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit journal is append-only: % on % is rejected', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'entries are only removed by journal compaction';
END;
$$;

CREATE TRIGGER audit_journalentry_append_only
    BEFORE UPDATE OR DELETE ON audit_journalentry
    FOR EACH ROW EXECUTE FUNCTION audit_journal_guard();
CREATE TRIGGER audit_journalentry_no_truncate
    BEFORE TRUNCATE ON audit_journalentry
    FOR EACH STATEMENT EXECUTE FUNCTION audit_journal_guard();

CREATE TRIGGER audit_journalcheckpoint_append_only
    BEFORE UPDATE OR DELETE ON audit_journalcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_journal_guard();
CREATE TRIGGER audit_journalcheckpoint_no_truncate
    BEFORE TRUNCATE ON audit_journalcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_journal_guard();

CREATE TRIGGER audit_missionfork_append_only
    BEFORE UPDATE OR DELETE ON audit_missionfork
    FOR EACH ROW EXECUTE FUNCTION audit_journal_guard();
CREATE TRIGGER audit_missionfork_no_truncate
    BEFORE TRUNCATE ON audit_missionfork
    FOR EACH STATEMENT EXECUTE FUNCTION audit_journal_guard();

INSERT INTO audit_journalhead (id, last_seq, last_hash) VALUES (1, 0, '') ON CONFLICT DO NOTHING;

INSERT INTO audit_retentionpolicy (severity, keep_days, updated_at) VALUES
    ('debug', 30, now()), ('info', NULL, now()), ('notice', NULL, now()),
    ('warning', NULL, now()), ('critical', NULL, now())
ON CONFLICT DO NOTHING;
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_journalentry_append_only ON audit_journalentry;
DROP TRIGGER IF EXISTS audit_journalentry_no_truncate ON audit_journalentry;
DROP TRIGGER IF EXISTS audit_journalcheckpoint_append_only ON audit_journalcheckpoint;
DROP TRIGGER IF EXISTS audit_journalcheckpoint_no_truncate ON audit_journalcheckpoint;
DROP TRIGGER IF EXISTS audit_missionfork_append_only ON audit_missionfork;
DROP TRIGGER IF EXISTS audit_missionfork_no_truncate ON audit_missionfork;
DROP FUNCTION IF EXISTS audit_journal_guard();
DELETE FROM audit_journalhead;
DELETE FROM audit_retentionpolicy;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
