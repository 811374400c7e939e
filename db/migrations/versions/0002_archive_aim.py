"""Archive AIM: move delivered FLP_AIM rows to FLP_AIM_History in adaptive batches.

Revision ID: 0002
Revises: 0001
"""

from orchestrator.migration_ops import downgrade_procedures, execute, upgrade_procedures

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("archive_aim_batch", 1),
    ("archive_aim", 1),
]

# The job's own settings (the '*' rows of 0001 hold the shared batch settings).
# The same text runs on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('archive_aim', 'RetentionDays', '0',
        'whole days a delivered FLP_AIM row stays in the hot table before it is archived');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName = 'archive_aim' AND Name IN ('RetentionDays');
"""


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)
    execute(SETTINGS_INSERT)


def downgrade() -> None:
    execute(SETTINGS_DELETE)
    downgrade_procedures(PROCEDURES)
