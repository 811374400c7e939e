"""Inclusion engine v2: cheaper incremental runs and Danish public holidays in the off-hours window (issue 9).

Revision ID: 0016
Revises: 0015
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
