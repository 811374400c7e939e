"""UploadData: validated uploads per LPS, content hashes, sync checkpoints, upload statistics (issue 11).

Revision ID: 0011
Revises: 0010
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("upload_data", 1),
    ("upload_statistics", 1),
    ("upload_checkpoint", 1),
]


def upgrade() -> None:
    run_schema_file("0011_uploads.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0011_uploads.down")
