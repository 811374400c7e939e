"""Uploads v3: bulk lane fixes (issue 11).

Revision ID: 0024
Revises: 0023
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
