"""Operations hardening (issue 7): archive batch bounds, retention of dead letters, CDA access log, job slots.

Revision ID: 0014
Revises: 0013
"""

from orchestrator.db.migration_ops import downgrade_procedures, execute, run_schema_file, upgrade_procedures

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("job_run_finish", 3),  # SQL Server: refused inside a caller's open transaction
    ("job_run_fail", 3),
    ("run_batched", 3),  # the probe bounded by LockTimeoutMs, 1222/1205 (55P03/40P01) handled
    ("archive_aim_batch", 3),
    ("log_cleanup_batch_as_owner", 2),  # a month over 10,000 rows: the catalog's count, not a read
    ("ops_retention_batch", 2),
    ("ops_retention", 2),
]

# archive_aim: batches stay short. Engine v2 grows a batch past BatchTargetMs
# while the fixed cost around it dominates (TimeEfficiencyMin), up to BatchMaxMs
# (1,000 ms for '*'); for the archive that let a transaction reach 275 ms and
# the probe's p99 3.88x idle (docs/benchmarks.md). Its own ceiling is 50 ms and
# at most 2,000 rows a batch.
# ops_retention: days to keep for the tables version 2 of the job adds.
# Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('archive_aim', 'BatchMaxMs', '50',
        'longest a batch may be made to take for time efficiency: the archive keeps its transactions short'),
    ('archive_aim', 'BatchSizeMax', '2000',
        'rows per batch at most: short transactions beside the AIM fetcher'),
    ('ops_retention', 'DeadLetterDays', '90',
        'whole days an Ops.QueueDeadLetter row is kept after it was dead-lettered'),
    ('ops_retention', 'CdaAccessLogDays', '400',
        'whole days a PLSP.CdaAccessLog row (audit: who read which care plan) is kept'),
    ('ops_retention', 'JobSlotDays', '30',
        'whole days an Ops.JobSlot claim is kept after its slot (at least 8: job_slot_claim reads 7)');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting
WHERE (JobName = 'archive_aim' AND Name IN ('BatchMaxMs', 'BatchSizeMax'))
    OR (JobName = 'ops_retention' AND Name IN ('DeadLetterDays', 'CdaAccessLogDays', 'JobSlotDays'));
"""


def upgrade() -> None:
    # The time indexes the retention walks: IX_QueueDeadLetter_DeadLettered, IX_JobSlot_Slot.
    run_schema_file("0014_ops_hardening.up")
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    run_schema_file("0014_ops_hardening.down")
