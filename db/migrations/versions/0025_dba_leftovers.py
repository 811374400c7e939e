"""DBA review leftovers: the job lock released when ending a run fails; fallback_due checks @DailyAt whole.

Revision ID: 0025
Revises: 0024
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("job_run_finish", 4),  # the lock released (and the run ended failed) when the UPDATE fails
    ("job_run_fail", 4),  # the same; parameters of both as v3
    ("run_batched", 5),  # v4 whose CATCH ends the run in a TRY of its own: the run's error reaches the caller
    ("fallback_due", 3),  # @DailyAt varchar(6), exactly HH:MM: v2's varchar(5) cut a longer value silently
]


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
