"""HentCDA and DDS on-demand: the set-based care-plan read, document versions and the access log (issue 13).

Revision ID: 0013
Revises: 0012
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("care_plan_read", 1),
    ("cda_version_register", 1),
    ("cda_access_log", 1),
    ("cda_access_counts", 1),
]


def upgrade() -> None:
    # PLSP.CdaDocumentVersion (versions per care plan) and PLSP.CdaAccessLog.
    run_schema_file("0013_cda.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0013_cda.down")
