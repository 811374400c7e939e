"""Uploads: asynchronous bulk jobs drained on the batch engine, load shedding and throttle counts (issue 11).

Revision ID: 0018
Revises: 0017
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
