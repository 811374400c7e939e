"""Uploads v3: bulk lane fixes (issue 11).

Job.upload_drain_batch v2 dead-letters a poison document (Upload.DeadLetterDocument)
and applies the documents after it; Upload.upload_enqueue v2 rejects a document
over the per-document row cap; Upload.upload_throttled v2 caps its count at the
largest int.

Revision ID: 0024
Revises: 0023
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("upload_throttled", 2),
    ("upload_enqueue", 2),
    ("upload_drain_batch", 2),
]


def upgrade() -> None:
    run_schema_file("0024_upload_v3.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0024_upload_v3.down")
