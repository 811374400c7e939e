"""Relevant-list changes v3: indexes leading with the ATC and diagnosis codes, slices of their own (issue 9).

Job.relevant_changes_mark v3 reads an ATC prefix as a range of the new index
PLSP.Medicin (AtcCode, PatientId) instead of scanning every medication (a
diagnosis prefix: PLSP.Diagnose (CodeSystem, Code, PatientId)), and
marks RelevantChangeMarkSlice patients a call (default 2,000) instead of one
batch of the check (400 since 0022); Job.check_inclusion_batch v3 lets it.

Revision ID: 0026
Revises: 0025
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, run_schema_file, upgrade_procedures

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("relevant_changes_mark", 3),  # its own slice; an ATC prefix as an index range
    ("check_inclusion_batch", 3),  # calls it with no limit: the slice setting
]

# A marked patient takes at most 2 locks per statement in each index of the
# dirty list on SQL Server (the UPDLOCK, HOLDLOCK probe's key or range, then
# the new key; the old and new DueUtc key of an update): 2,000 a slice, 4,000
# locks at most, stay under the 5,000 of lock escalation; the procedure
# refuses more.
# Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('check_inclusion', 'RelevantChangeMarkSlice', '2000',
        'patients a Relevant-list change marks a call, 1 to 2000 (about 2 locks each, under 5,000)');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName = 'check_inclusion' AND Name = 'RelevantChangeMarkSlice';
"""


def upgrade() -> None:
    run_schema_file("0026_relevant_changes_v3.up")
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    run_schema_file("0026_relevant_changes_v3.down")
