"""Daily operations statistics for the 23:30 e-mail (issue 12).

Revision ID: 0012
Revises: 0011
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("daily_statistics", 1),
    ("daily_report_settings", 1),
]


def upgrade() -> None:
    # Indexes on the times the statistics read by day.
    run_schema_file("0012_daily_report.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0012_daily_report.down")
