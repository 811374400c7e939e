"""AIM pipeline tuning (issue 8).

Revision ID: 0019
Revises: 0018
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
