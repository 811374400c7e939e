"""SQL Server review, the batch bodies: version 2 of archive_aim_batch, session_purge_batch, log_cleanup_batch, log_partitions_ensure (issue 7).

Revision ID: 0005
Revises: 0004
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
