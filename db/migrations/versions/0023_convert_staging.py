"""Intentionally empty (issue 9): conversion by insert from a pending-values table was
built here and withdrawn, because it measured no faster than v2 in place (docs/engine.md,
"Tried and withdrawn"); the revision stays so the chain 0022 -> 0024 is unchanged.

Revision ID: 0023
Revises: 0022
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
