"""Archive AIM: move delivered FLP_AIM rows to FLP_AIM_History in adaptive batches.

Revision ID: 0002
Revises: 0001
"""

from orchestrator.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
