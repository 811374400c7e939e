"""Uploads: asynchronous bulk jobs drained on the batch engine, load shedding and throttle counts (issue 11).

Revision ID: 0018
Revises: 0017
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("upload_data", 2),
    ("upload_throttled", 1),
    ("upload_enqueue", 1),
    ("upload_job_status", 1),
    ("upload_drain_batch", 1),
    ("upload_drain", 1),
]


def upgrade() -> None:
    run_schema_file("0018_upload_bulk.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0018_upload_bulk.down")
