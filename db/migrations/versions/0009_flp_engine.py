"""The FLP engine: value conversion, invalid-value retry and incremental patient inclusion (issue 9).

Revision ID: 0009
Revises: 0008
"""

from orchestrator.db.migration_ops import (
    downgrade_procedures,
    engine,
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
]

# The rules as data: the defaults of docs/engine.md (our reading of domain.md),
# active since 2000-01-01. The seed and an operator may add versions of their
# own; the engine always uses every row active at its 'now'.
SINCE = "'2000-01-01'"


def rules_insert(true: str, false: str) -> str:
    return f"""
INSERT INTO PLSP.RelevantForloeb (ForloebCode, ActiveFromUtc, RkkpDatabase, Description) VALUES
    ('ALAL22', {SINCE}, 'Dansk Voksen Diabetes Database (DVDD)', 'Type 2-diabetes'),
    ('ALAL21', {SINCE}, 'Dansk Register for Kronisk Obstruktiv Lungesygdom (DrKOL)', 'KOL'),
    ('ALAL02', {SINCE}, 'Dansk Hjerteregister (DHR)', 'Iskaemisk hjertesygdom');

INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) VALUES
    ('ICPC2', 'T90', {SINCE}, 'ALAL22', 'Diabetes type 2'),
    ('SKS', 'DE11', {SINCE}, 'ALAL22', 'Type 2-diabetes'),
    ('ICPC2', 'R95', {SINCE}, 'ALAL21', 'Kronisk obstruktiv lungesygdom'),
    ('SKS', 'DJ44', {SINCE}, 'ALAL21', 'Kronisk obstruktiv lungesygdom'),
    ('ICPC2', 'K74', {SINCE}, 'ALAL02', 'Iskaemisk hjertesygdom med angina'),
    ('ICPC2', 'K75', {SINCE}, 'ALAL02', 'Akut myokardieinfarkt'),
    ('ICPC2', 'K76', {SINCE}, 'ALAL02', 'Iskaemisk hjertesygdom uden angina'),
    ('SKS', 'DI20', {SINCE}, 'ALAL02', 'Angina pectoris'),
    ('SKS', 'DI21', {SINCE}, 'ALAL02', 'Akut myokardieinfarkt'),
    ('SKS', 'DI22', {SINCE}, 'ALAL02', 'Reinfarkt'),
    ('SKS', 'DI23', {SINCE}, 'ALAL02', 'Komplikationer efter akut myokardieinfarkt'),
    ('SKS', 'DI24', {SINCE}, 'ALAL02', 'Anden akut iskaemisk hjertesygdom'),
    ('SKS', 'DI25', {SINCE}, 'ALAL02', 'Kronisk iskaemisk hjertesygdom');

INSERT INTO PLSP.RelevantMedicin (AtcPrefix, ActiveFromUtc, ForloebCode, Role, WindowMonths, Description)
VALUES
    ('A10', {SINCE}, 'ALAL22', 'include', 12, 'Antidiabetika: dispensed in the last 12 months includes'),
    ('A10BJ06', {SINCE}, 'ALAL22', 'exclude', 12, 'Semaglutid: also for weight loss, never includes'),
    ('R03', {SINCE}, 'ALAL21', 'relevant', 12, 'Midler mod obstruktiv lungesygdom (accepted only)'),
    ('C10AA', {SINCE}, 'ALAL02', 'relevant', 12, 'Statiner (accepted only)'),
    ('B01AC', {SINCE}, 'ALAL02', 'relevant', 12, 'Trombocytfunktionshaemmere (accepted only)');

INSERT INTO PLSP.RelevantYdelse (ServiceCode, ActiveFromUtc, IsAnnualCheck, Description) VALUES
    ('0120', {SINCE}, {true}, 'Aarskontrol'),
    ('0101', {SINCE}, {false}, 'Konsultation'),
    ('0105', {SINCE}, {false}, 'E-konsultation'),
    ('0201', {SINCE}, {false}, 'Telefonkonsultation'),
    ('4436', {SINCE}, {false}, 'Videokonsultation'),
    ('0133', {SINCE}, {false}, 'Afslutning af kronikerforloeb');

INSERT INTO PLSP.RelevantEgenskab (Code, ActiveFromUtc, Description) VALUES
    ('FRAVALGT', {SINCE}, 'opted out of the care-plan programme'),
    ('DOED', {SINCE}, 'deceased'),
    ('FLYTTET', {SINCE}, 'moved away from the clinic or abroad');

INSERT INTO PLSP.RelevantVaerdi
    (Code, ActiveFromUtc, ForloebCode, Unit, DataType, MinValue, MaxValue, Description)
VALUES
    ('NPU27300', {SINCE}, 'ALAL22', 'mmol/mol', 'numeric', 10, 250, 'P-Haemoglobin A1c (IFCC), mmol/mol'),
    ('NPU03835', {SINCE}, 'ALAL22', '%', 'numeric', 2, 25, 'B-Haemoglobin A1c (DCCT), %'),
    ('NPU01568', {SINCE}, NULL, 'mmol/L', 'numeric', 0.1, 20, 'P-Kolesterol LDL, mmol/L'),
    ('DNK05472', {SINCE}, NULL, 'mmHg', 'numeric', 40, 300, 'Blodtryk systolisk, mmHg'),
    ('DNK05473', {SINCE}, NULL, 'mmHg', 'numeric', 20, 200, 'Blodtryk diastolisk, mmHg'),
    ('NPU03804', {SINCE}, NULL, 'kg', 'numeric', 10, 400, 'Pt-Legeme; masse, kg'),
    ('NPU21692', {SINCE}, NULL, '/min', 'numeric', 20, 250, 'Hjerte-Puls; frekv., /min'),
    ('NPU19661', {SINCE}, 'ALAL22', 'mg/g', 'numeric', 0, 5000, 'U-Albumin/Kreatinin-ratio, mg/g'),
    ('MCS88015', {SINCE}, 'ALAL21', 'L', 'numeric', 0.1, 8, 'FEV1, L'),
    ('MCS88100', {SINCE}, 'ALAL21', 'L', 'numeric', 0.1, 10, 'FEV6, L');

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


RULES_DELETE = """
DELETE FROM PLSP.RelevantVaerdiInklusion WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantVaerdiEnhed WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantVaerdi WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantEgenskab WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantYdelse WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantMedicin WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantDiagnose WHERE ActiveFromUtc = '2000-01-01';
DELETE FROM PLSP.RelevantForloeb WHERE ActiveFromUtc = '2000-01-01';
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
    if engine() == "postgresql":
        execute(rules_insert("true", "false"))
    else:
        execute(rules_insert("1", "0"))
    execute(SETTINGS_INSERT)
    upgrade_procedures(PROCEDURES)


def downgrade() -> None:
    downgrade_procedures(PROCEDURES)
    execute(SETTINGS_DELETE)
    execute(RULES_DELETE)
    run_schema_file("0009_flp_engine.down")
