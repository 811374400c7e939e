"""Ops retention job and start-up checks (issue 7).

Revision ID: 0007
Revises: 0006
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
