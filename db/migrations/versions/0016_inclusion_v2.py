"""Inclusion engine v2: cheaper incremental runs and Danish public holidays in the off-hours window (issue 9).

Revision ID: 0016
Revises: 0015
"""

from orchestrator.db.migration_ops import (
    downgrade_procedures,
    execute,
    run_schema_file,
    upgrade_procedures,
)

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("easter_sunday", 1),
    ("off_hours_check", 2),
    ("relevant_changes_mark", 2),
    ("inclusion_recompute", 2),
    ("check_inclusion_batch", 2),
]

# Grundlovsdag, Juleaftensdag and Nytaarsaftensdag are no public holidays, but
# most clinics close: off-hours all day unless this is N (our choice,
# docs/engine.md). Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('check_inclusion', 'OffHoursClosingDays', 'Y',
        'Y: Grundlovsdag 5 Jun, Juleaftensdag 24 Dec, Nytaarsaftensdag 31 Dec are off-hours all day');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName = 'check_inclusion' AND Name = 'OffHoursClosingDays';
"""


def upgrade() -> None:
    run_schema_file("0016_inclusion_v2.up")
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    run_schema_file("0016_inclusion_v2.down")
