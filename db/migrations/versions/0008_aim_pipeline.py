"""AIM pipeline: the database queue's procedures, FlpAimImport and the AIM consumer (issue 8).

Revision ID: 0008
Revises: 0007
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("queue_publish", 1),
    ("queue_receive", 1),
    ("queue_ack", 1),
    ("queue_release", 1),
    ("queue_dead_letter", 1),
    ("queue_status", 1),
    ("aim_settings_get", 1),
    ("aim_import_claim", 1),
    ("aim_import_mark_queued", 1),
    ("aim_documents", 1),
    ("aim_mark_delivered", 1),
    ("aim_status", 1),
]


def upgrade() -> None:
    run_schema_file("0008_aim_pipeline.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0008_aim_pipeline.down")
