"""Uploads: asynchronous bulk jobs drained on the batch engine, load shedding and throttle counts (issue 11).

Revision ID: 0018
Revises: 0017
"""

from orchestrator.db.migration_ops import (
    downgrade_procedures,
    engine,
    execute,
    run_schema_file,
    upgrade_procedures,
)

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


# The downgrade drops Upload.StagedDocument: refused, before anything is undone, while it holds
# documents of accepted uploads (202 answered, not yet drained), which it would lose.
REFUSE_WHILE_STAGED = {
    "postgresql": """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM Upload.StagedDocument) THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'Downgrade of 0018 refused: Upload.StagedDocument holds '
                || (SELECT count(*) FROM Upload.StagedDocument)
                || ' staged documents of accepted bulk uploads, which it would drop. '
                || 'Let Job.upload_drain apply them, then downgrade.';
    END IF;
END
$$;
""",
    "mssql": """
IF EXISTS (SELECT 1 FROM Upload.StagedDocument)
BEGIN
    DECLARE @Message nvarchar(2048) = CONCAT(N'Downgrade of 0018 refused: Upload.StagedDocument holds ',
        (SELECT COUNT(*) FROM Upload.StagedDocument),
        N' staged documents of accepted bulk uploads, which it would drop. ',
        N'Let Job.upload_drain apply them, then downgrade.');
    THROW 50001, @Message, 1;
END;
""",
}


def downgrade() -> None:
    execute(REFUSE_WHILE_STAGED[engine()])
    downgrade_procedures(PROCEDURES)
    run_schema_file("0018_upload_bulk.down")
