"""Orchestrator: pg_cron as its own trigger and timetables overridable by settings (issue 10).

Revision ID: 0017
Revises: 0016
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
