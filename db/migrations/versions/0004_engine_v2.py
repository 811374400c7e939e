"""SQL Server review, the batch engine: version 2 of run_batched, health_check, the job-run procedures and the job wrappers (issue 7).

Revision ID: 0004
Revises: 0003
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
