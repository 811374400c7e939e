"""Uploads v3: bulk lane fixes (issue 11).

Job.upload_drain_batch v2 dead-letters a poison document (Upload.DeadLetterDocument)
and applies the documents after it; Upload.upload_enqueue v2 rejects a document
over the per-document row cap; Upload.upload_throttled v2 caps its count at the
largest int.

Revision ID: 0024
Revises: 0023
"""

from orchestrator.db.migration_ops import (
    downgrade_procedures,
    engine,
    execute,
    run_schema_file,
    upgrade_procedures,
)

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


# The downgrade drops Upload.DeadLetterDocument: refused, before anything is undone, while it
# holds dead letters (documents of accepted uploads kept for an operator to fix and send
# again), which it would lose.
REFUSE_WHILE_DEAD_LETTERED = {
    "postgresql": """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM Upload.DeadLetterDocument) THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'Downgrade of 0024 refused: Upload.DeadLetterDocument holds '
                || (SELECT count(*) FROM Upload.DeadLetterDocument)
                || ' dead-lettered documents of accepted bulk uploads, which it would drop. '
                || 'Fix and send them again (or keep a copy), delete them, then downgrade.';
    END IF;
END
$$;
""",
    "mssql": """
IF EXISTS (SELECT 1 FROM Upload.DeadLetterDocument)
BEGIN
    DECLARE @Message nvarchar(2048) = CONCAT(N'Downgrade of 0024 refused: Upload.DeadLetterDocument holds ',
        (SELECT COUNT(*) FROM Upload.DeadLetterDocument),
        N' dead-lettered documents of accepted bulk uploads, which it would drop. ',
        N'Fix and send them again (or keep a copy), delete them, then downgrade.');
    THROW 50001, @Message, 1;
END;
""",
}


def downgrade() -> None:
    execute(REFUSE_WHILE_DEAD_LETTERED[engine()])
    downgrade_procedures(PROCEDURES)
    run_schema_file("0024_upload_v3.down")
