"""AIM pipeline v2 (issue 8): Job.aim_documents v2 classifies every id once, in one statement.

Revision ID: 0021
Revises: 0020
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("aim_documents", 2),
]


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
