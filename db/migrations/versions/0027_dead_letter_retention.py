"""Upload dead letters kept for UploadDeadLetterDays (default 30): Ops retention v3 removes older ones.

Upload.DeadLetterDocument (migration 0024) holds a bulk upload's poison documents, personal
data, for an operator to mend and send again; nothing removed them. Job.ops_retention_batch v3
adds a phase 5 that removes those dead-lettered longer ago than the new setting, oldest first
along a new index on DeadLetteredUtc, at most 100 documents a batch.

Revision ID: 0027
Revises: 0026
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, run_schema_file, upgrade_procedures

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("ops_retention_batch", 3),  # phase 5: Upload.DeadLetterDocument older than UploadDeadLetterDays
    ("ops_retention", 3),  # header only
]

# Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('ops_retention', 'UploadDeadLetterDays', '30',
        'whole days an Upload.DeadLetterDocument row (a bulk upload''s poison document) is kept');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName = 'ops_retention' AND Name = 'UploadDeadLetterDays';
"""


def upgrade() -> None:
    run_schema_file("0027_dead_letter_retention.up")  # IX_DeadLetterDocument_DeadLettered
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    run_schema_file("0027_dead_letter_retention.down")
