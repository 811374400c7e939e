"""issue 9, ConvertPatientValues: (helper fills in)

Revision ID: 0026
Revises: 0025
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
