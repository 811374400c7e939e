"""Foundation: schemas, tables, roles, settings and the shared job procedures.

Revision ID: 0001
Revises:
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES = [
    ("job_run_start", 1),
    ("job_run_finish", 1),
    ("job_run_fail", 1),
    ("job_batch_log", 1),
    ("batch_settings_get", 1),
    ("health_check", 1),
    ("run_batched", 1),
    ("heartbeat_beat", 1),
]


def upgrade() -> None:
    run_schema_file("0001_foundation.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0001_foundation.down")
