"""Operations hardening: archive batch bounds, retention of queue dead letters, CDA access log and job slots (issue 7).

Revision ID: 0014
Revises: 0013
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
