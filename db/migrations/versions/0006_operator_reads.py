"""Operator reads: schema Monitor (last runs, runs, batches, heartbeats, schema revision), flp_operator.

Schema Monitor holds read-only routines over Ops, executable by flp_orchestrator
and the new read-only role flp_operator (operators on call, monitoring).

Revision ID: 0006
Revises: 0005
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("schema_revision", 1),
    ("job_last_runs", 1),
    ("job_runs", 1),
    ("job_run", 1),
    ("job_run_batches", 1),
    ("heartbeats", 1),
]


def upgrade() -> None:
    run_schema_file("0006_operator_reads.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0006_operator_reads.down")
