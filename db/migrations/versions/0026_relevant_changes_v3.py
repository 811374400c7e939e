"""Relevant-list changes: an index leading with the ATC code, relevant_changes_mark v3 with its own slice (placeholder: filled by the work it is named for, or removed before the stop).

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
