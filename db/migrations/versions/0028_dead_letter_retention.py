"""Upload dead letters kept for UploadDeadLetterDays; DBA leftovers (placeholder: filled by the work it is named for, or removed before the stop).

Revision ID: 0028
Revises: 0027
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
