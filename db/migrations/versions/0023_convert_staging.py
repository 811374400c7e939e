"""ConvertPatientValues from a pending-values table: conversion by insert, not update (issue 9).

New raw values wait in PLSP.Patientvaerdier_Pending; Job.convert_values_batch v2
moves a batch out of it and inserts each row into PLSP.Patientvaerdier already
converted or invalid (Job.convert_values_move v1), then converts any status-0
rows still in place as v1 did (no data moves in the upgrade). Upload.upload_data
v3 writes new and changed values to the pending table; Monitor.engine_status v2
and Monitor.daily_statistics v2 count it. docs/engine.md.

Revision ID: 0023
Revises: 0022
"""

from orchestrator.db.migration_ops import downgrade_procedures, run_schema_file, upgrade_procedures

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("convert_values_move", 1),
    ("convert_values_batch", 2),
    ("engine_status", 2),
    ("daily_statistics", 2),
    ("upload_data", 3),
]


def upgrade() -> None:
    run_schema_file("0023_convert_staging.up")
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    run_schema_file("0023_convert_staging.down")
