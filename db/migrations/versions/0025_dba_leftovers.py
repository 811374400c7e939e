"""DBA review leftovers: job_run_finish, fallback_due, upload_throttled.

Revision ID: 0025
Revises: 0024
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
