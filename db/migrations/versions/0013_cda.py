"""HentCDA and DDS on-demand: the set-based care-plan read, document versions and the access log (issue 13).

Revision ID: 0013
Revises: 0012
"""

from orchestrator.db.migration_ops import downgrade_procedures, upgrade_procedures

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = []


def upgrade() -> None:
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
