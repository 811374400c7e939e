"""Daily operations statistics for the 23:30 e-mail (issue 12).

Revision ID: 0012
Revises: 0011
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
