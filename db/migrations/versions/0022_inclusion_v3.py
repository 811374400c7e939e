"""Inclusion engine v3: batches sized for SQL Server's lock escalation (issue 9, DBA review).

Revision ID: 0022
Revises: 0021
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, upgrade_procedures

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []

# check_inclusion: at most 400 patients a batch (the '*' ceiling is 4,000 rows).
# One patient is up to one row per active care-plan type (3) in each of
# PatientInkluderet, PatientInkluderet_History, Forloebsplan and FLP_AIM, and a
# written row takes up to 3 locks in its table per statement (its key in each
# index the row is in, and the key-range lock of the UPDLOCK, HOLDLOCK probe
# before an insert: Forloebsplan's PK + UQ + range; the history's PK + two
# indexes; FLP_AIM's PK + the two filtered indexes of status 0): at most
# 9 locks a patient per statement and table. 400 x 9 = 3,600, the same
# margin under SQL Server's 5,000 as the house ceiling (4,000 one-lock rows),
# even counting a table's indexes together (escalation counts per index:
# at most 400 x 3 x 2 = 2,400 there). docs/engine.md, "Batch size".
# Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('check_inclusion', 'BatchSizeMax', '400',
        'patients a batch at most: up to 9 locks each per statement and table, under 5,000');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName = 'check_inclusion' AND Name = 'BatchSizeMax';
"""


def upgrade() -> None:
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
