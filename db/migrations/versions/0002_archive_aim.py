"""Archive AIM: move delivered FLP_AIM rows to FLP_AIM_History in adaptive batches.

Revision ID: 0002
Revises: 0001
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, upgrade_procedures

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
# The archive runs at midnight: small batches of about 5 ms (1,000 to 2,000
# rows) with no pause. bench_archive measured this profile at 0.6 of a bulk
# move's speed with a concurrent probe's p99 near idle; bigger batches with a
# pause were no faster and disturbed the probe more. The health gate still
# pauses the job whenever the database is busy. Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('archive_aim', 'RetentionDays', '0',
        'whole days a delivered FLP_AIM row stays in the hot table before it is archived'),
    ('archive_aim', 'BatchTargetMs', '5', 'small batches: short bursts of log writes'),
    ('archive_aim', 'BatchSizeStart', '1000', 'small batches: short bursts of log writes'),
    ('archive_aim', 'BatchSizeMin', '200', 'small batches: short bursts of log writes'),
    ('archive_aim', 'SleepFactor', '0', 'no pause: the night is quiet and the health gate watches');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting
WHERE JobName = 'archive_aim'
    AND Name IN ('RetentionDays', 'BatchTargetMs', 'BatchSizeStart', 'BatchSizeMin', 'SleepFactor');
"""


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)
    execute(SETTINGS_INSERT)


def downgrade() -> None:
    execute(SETTINGS_DELETE)
    downgrade_procedures(PROCEDURES)
