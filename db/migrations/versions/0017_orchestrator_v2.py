"""Orchestrator: pg_cron as its own trigger and timetables overridable by settings (issue 10).

Revision ID: 0017
Revises: 0016
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("job_run_start", 3),  # accepts the trigger 'pg_cron'; same parameters as v2
    ("run_batched", 4),  # v3 of 0014 passing the trigger 'pg_cron' on to job_run_start
    ("job_slot_claim", 2),  # claims in pg_cron's name
    ("fallback_due", 2),  # honours Enabled = 'N'; p_TriggeredBy agent or pg_cron
    ("timetable_overrides", 1),  # Monitor: the EveryMinutes / DailyAt / Enabled settings
]


def upgrade() -> None:
    # The trigger 'pg_cron' in Ops.JobRun's check constraint.
    run_schema_file("0017_orchestrator_v2.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0017_orchestrator_v2.down")
