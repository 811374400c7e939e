"""The fallback scheduler: heartbeat-guarded job procedures for SQL Server Agent and pg_cron (issue 10).

Revision ID: 0010
Revises: 0009
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("job_slot_claim", 1),
    ("job_run_missed", 1),
    ("job_stop_request", 1),
    ("fallback_due", 1),
]


def upgrade() -> None:
    # Ops.JobSlot, the 'missed' status, the FallbackAfterSeconds setting.
    run_schema_file("0010_fallback_scheduler.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0010_fallback_scheduler.down")
