"""Monitor.aim_counts: the AIM pipeline's counts in flp status, for the operator role (issue 8).

Revision ID: 0020
Revises: 0019
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("aim_counts", 1),
]


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
