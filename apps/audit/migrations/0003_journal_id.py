"""A random id per journal (in the genesis hash and the checkpoint file name), and the head
row protected: it cannot be deleted, truncated, re-keyed or moved backwards."""

from django.db import migrations, models

FORWARD = r"""
UPDATE audit_journalhead SET journal_id = gen_random_uuid() WHERE journal_id IS NULL AND last_seq = 0;

CREATE OR REPLACE FUNCTION audit_journalhead_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.journal_id IS NOT DISTINCT FROM OLD.journal_id
       AND NEW.last_seq >= OLD.last_seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit journal head only moves forward: % rejected', TG_OP USING ERRCODE = 'P0001';
END;
$$;

CREATE TRIGGER audit_journalhead_forward_only
    BEFORE UPDATE OR DELETE ON audit_journalhead
    FOR EACH ROW EXECUTE FUNCTION audit_journalhead_guard();
CREATE TRIGGER audit_journalhead_no_truncate
    BEFORE TRUNCATE ON audit_journalhead
    FOR EACH STATEMENT EXECUTE FUNCTION audit_journalhead_guard();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_journalhead_forward_only ON audit_journalhead;
DROP TRIGGER IF EXISTS audit_journalhead_no_truncate ON audit_journalhead;
DROP FUNCTION IF EXISTS audit_journalhead_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [
        migrations.AddField(
            model_name="journalhead",
            name="journal_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
