"""Inclusion engine v3: cheaper small runs (issue 9).

Revision ID: 0022
Revises: 0021
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
