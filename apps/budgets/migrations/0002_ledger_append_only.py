"""The ledger is append-only in the database itself: UPDATE, DELETE and TRUNCATE raise."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION budgets_ledger_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the budget ledger is append-only: % on % is rejected', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'record a correction as an adjustment entry';
END;
$$;

CREATE TRIGGER budgets_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON budgets_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION budgets_ledger_guard();
CREATE TRIGGER budgets_ledgerentry_no_truncate
    BEFORE TRUNCATE ON budgets_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION budgets_ledger_guard();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS budgets_ledgerentry_append_only ON budgets_ledgerentry;
DROP TRIGGER IF EXISTS budgets_ledgerentry_no_truncate ON budgets_ledgerentry;
DROP FUNCTION IF EXISTS budgets_ledger_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("budgets", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
