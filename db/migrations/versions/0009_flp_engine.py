"""The FLP engine: value conversion, invalid-value retry and incremental patient inclusion (issue 9).

Revision ID: 0009
Revises: 0008
"""

from orchestrator.db.migration_ops import (
    downgrade_procedures,
    execute,
    run_schema_file,
    upgrade_procedures,
)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (procedure file name, version) applied by this migration, in order.
PROCEDURES: list[tuple[str, int]] = [
    ("convert_values_rows", 1),
    ("convert_values_batch", 1),
    ("convert_values", 1),
    ("convert_invalid_values_batch", 1),
    ("convert_invalid_values", 1),
    ("off_hours_check", 1),
    ("relevant_changes_mark", 1),
    ("inclusion_recompute", 1),
    ("check_inclusion_batch", 1),
    ("check_inclusion", 1),
    ("engine_status", 1),
]

# The rules as data: the defaults of docs/engine.md (our reading of domain.md),
# active since 2000-01-01, in the tables this migration adds. The lists that
# exist already (RelevantDiagnose, RelevantMedicin, RelevantYdelse,
# RelevantVaerdi: the agreed codes, maintained in production and loaded by the
# seed) are not touched. Same text on both engines.
SINCE = "'2000-01-01'"

RULES_INSERT = f"""
INSERT INTO PLSP.RelevantForloeb (ForloebCode, ActiveFromUtc, RkkpDatabase, Description) VALUES
    ('ALAL22', {SINCE}, 'Dansk Voksen Diabetes Database (DVDD)', 'Type 2-diabetes'),
    ('ALAL21', {SINCE}, 'Dansk Register for Kronisk Obstruktiv Lungesygdom (DrKOL)', 'KOL'),
    ('ALAL02', {SINCE}, 'Dansk Hjerteregister (DHR)', 'Iskaemisk hjertesygdom');

INSERT INTO PLSP.RelevantMedicinInklusion
    (AtcPrefix, ForloebCode, ActiveFromUtc, Role, WindowMonths, Description)
VALUES
    ('A10', 'ALAL22', {SINCE}, 'include', 12, 'Antidiabetika: dispensed in the last 12 months includes'),
    ('A10BJ06', 'ALAL22', {SINCE}, 'exclude', 12, 'Semaglutid: also for weight loss, never includes');

INSERT INTO PLSP.RelevantYdelseAarskontrol (ServiceCode, ActiveFromUtc, Description) VALUES
    ('0120', {SINCE}, 'Aarskontrol: adds an FLP_AIM report for an included patient');

INSERT INTO PLSP.RelevantEgenskab (Code, ActiveFromUtc, Description) VALUES
    ('FRAVALGT', {SINCE}, 'opted out of the care-plan programme'),
    ('DOED', {SINCE}, 'deceased'),
    ('FLYTTET', {SINCE}, 'moved away from the clinic or abroad');

INSERT INTO PLSP.RelevantVaerdiEnhed (Code, Unit, ActiveFromUtc, AddBefore, MultiplyBy, Description) VALUES
    ('NPU27300', '%', {SINCE}, -2.15, 10.929, 'HbA1c in DCCT per cent: (% - 2.15) x 10.929'),
    ('NPU03835', 'mmol/mol', {SINCE}, 23.5, 0.0915, 'HbA1c IFCC to DCCT: mmol/mol / 10.929 + 2.15'),
    ('DNK05472', 'mm Hg', {SINCE}, 0, 1, 'spelling'),
    ('DNK05473', 'mm Hg', {SINCE}, 0, 1, 'spelling'),
    ('NPU03804', 'g', {SINCE}, 0, 0.001, 'grams'),
    ('NPU21692', 'bpm', {SINCE}, 0, 1, 'beats per minute'),
    ('NPU19661', 'mg/mmol', {SINCE}, 0, 8.84, 'mg/mmol creatinine to mg/g'),
    ('MCS88015', 'mL', {SINCE}, 0, 0.001, 'millilitres'),
    ('MCS88100', 'mL', {SINCE}, 0, 0.001, 'millilitres');

INSERT INTO PLSP.RelevantVaerdiInklusion
    (Code, ForloebCode, ActiveFromUtc, Threshold, MinCount, WindowMonths, Description)
VALUES
    ('NPU27300', 'ALAL22', {SINCE}, 48, 2, 24, 'two HbA1c of at least 48 mmol/mol within 24 months');
"""

# The jobs' own settings (the batch profile is the shared '*' one). Same text on both engines.
SETTINGS_INSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('convert_invalid_values', 'MaxAttempts', '5',
        'conversion attempts of an invalid value before it is given up (status 3, rejected)'),
    ('check_inclusion', 'MaxPatientsPerRun', '20000',
        'patients one run of the inclusion check re-evaluates at most (the rest wait for the next run)'),
    ('check_inclusion', 'TimeLimitSeconds', '50',
        'no new batch starts after this many seconds (the check starts every minute)'),
    ('check_inclusion', 'RelevantChangeMaxPatients', '1000',
        'a Relevant-list change touching more patients than this waits for the off-hours window'),
    ('check_inclusion', 'OffHoursStart', '22:00', 'off-hours window start, Europe/Copenhagen local time'),
    ('check_inclusion', 'OffHoursEnd', '06:00', 'off-hours window end, Europe/Copenhagen local time'),
    ('check_inclusion', 'OffHoursWeekends', 'Y', 'Y: Saturdays and Sundays are off-hours all day');
"""
SETTINGS_DELETE = """
DELETE FROM Ops.Setting WHERE JobName IN ('convert_values', 'convert_invalid_values', 'check_inclusion');
"""


def upgrade() -> None:
    run_schema_file("0009_flp_engine.up")
    execute(RULES_INSERT)
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    run_schema_file("0009_flp_engine.down")
