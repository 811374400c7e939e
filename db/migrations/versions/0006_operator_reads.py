"""Read procedures for operators (last runs, runs, batches, heartbeats, schema revision) and the flp_operator role (issue 6).

Revision ID: 0006
Revises: 0005
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
