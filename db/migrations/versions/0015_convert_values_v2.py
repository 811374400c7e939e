"""ConvertPatientValues v2: one set-based pass per batch (issue 9).

Revision ID: 0015
Revises: 0014
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("convert_values_rows", 2),
]


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
