"""SQL Server review, the batch bodies (issue 7): version 2 of archive_aim_batch,
session_purge_batch, log_cleanup_batch and log_partitions_ensure, and the archive's filtered index.

Revision ID: 0005
Revises: 0004
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order: a callee
# before its callers. log_cleanup_batch_as_owner is version 1's body of
# log_cleanup_batch, split off so that log_cleanup_batch can check the database
# owner before anything runs as the owner (SQL Server).
PROCEDURES: list[tuple[str, int]] = [
    ("archive_aim_batch", 2),
    ("session_purge_batch", 2),
    ("log_partitions_ensure", 2),
    ("log_cleanup_batch_as_owner", 1),
    ("log_cleanup_batch", 2),
]


def upgrade() -> None:
    # The filtered index the archive's keyset pick seeks on (IX_FLP_AIM_Delivered).
    run_schema_file("0005_jobs_v2.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0005_jobs_v2.down")
