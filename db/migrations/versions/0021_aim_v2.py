"""AIM pipeline v2 (issue 8).

Revision ID: 0021
Revises: 0020
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
