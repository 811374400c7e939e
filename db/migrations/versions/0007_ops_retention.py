"""Ops retention job and start-up checks (issue 7).

Revision ID: 0007
Revises: 0006
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, upgrade_procedures

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("ops_retention_batch", 1),
    ("ops_retention", 1),
    ("startup_check", 1),
]

# Days of operations history to keep, per table (the job's own settings; the
# batch profile is the shared '*' one). Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('ops_retention', 'JobRunDays', '90',
        'whole days an Ops.JobRun row (with its batch rows) is kept after the run started'),
    ('ops_retention', 'JobRunBatchDays', '30',
        'whole days the Ops.JobRunBatch rows of a run are kept after the run started'),
    ('ops_retention', 'HeartbeatDays', '7',
        'whole days an Ops.Heartbeat row is kept after its last beat');
"""
SETTINGS_DELETE = "DELETE FROM Ops.Setting WHERE JobName = 'ops_retention';"


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)
    execute(SETTINGS_INSERT)


def downgrade() -> None:
    execute(SETTINGS_DELETE)
    downgrade_procedures(PROCEDURES)
