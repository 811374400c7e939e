"""Session purge every 10 minutes and monthly log clean-up.

Revision ID: 0003
Revises: 0002
"""

from orchestrator.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
