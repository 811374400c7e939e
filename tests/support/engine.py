"""Helpers for the FLP engine's tests (issue 9): patients, values, settings, runs."""

from __future__ import annotations

from orchestrator.dev.seed import codes
from orchestrator.jobs import Job, Timetable
from orchestrator.runner import run_job
from tests.support.sql import execute, fetch_all, scalar

CONVERT = Job("convert_values", "Job.convert_values", "convert new values", Timetable(every_minutes=5))
CONVERT_INVALID = Job(
    "convert_invalid_values", "Job.convert_invalid_values", "retry invalid", Timetable(daily_at="03:00")
)
CHECK = Job("check_inclusion", "Job.check_inclusion", "check inclusion", Timetable(every_minutes=1))


def set_setting(db, job: str, name: str, value: str) -> None:
    execute(
        db,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, 'test') "
        "ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value",
        (job, name, value),
    )


def quick(db) -> None:
    """No pause between batches for the engine's jobs, and the agreed code lists loaded."""
    for job in (CONVERT.name, CONVERT_INVALID.name, CHECK.name):
        set_setting(db, job, "SleepFactor", "0")
    load_reference_lists(db)


def load_reference_lists(db) -> None:
    """The agreed code lists production keeps (and the seed loads): RelevantDiagnose,
    RelevantMedicin, RelevantYdelse, RelevantVaerdi, from the seed's own constants."""
    since = "2000-01-01"
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(system, code, since, plan, text) for system, code, plan, text in codes.RELEVANT_DIAGNOSES],
        )
        cur.executemany(
            "INSERT INTO PLSP.RelevantMedicin (AtcPrefix, ActiveFromUtc, ForloebCode, Description) "
            "VALUES (%s, %s, %s, %s)",
            [(prefix, since, plan, text) for prefix, plan, text in codes.RELEVANT_MEDICATION],
        )
        services = [(code, since, text) for code, _, text in codes.SERVICE_RATES]
        services.append((codes.SERVICE_CHRONIC_END, since, codes.SERVICE_CHRONIC_END_DESCRIPTION))
        cur.executemany(
            "INSERT INTO PLSP.RelevantYdelse (ServiceCode, ActiveFromUtc, Description) VALUES (%s, %s, %s)",
            services,
        )
        unit, low, high, text = codes.HBA1C_PERCENT_RELEVANT
        values = [
            (s.code, since, s.forloeb, s.unit, s.relevant_min, s.relevant_max, s.description)
            for s in codes.VALUE_SPECS
        ]
        values.append((codes.HBA1C_PERCENT_CODE, since, "ALAL22", unit, low, high, text))
        cur.executemany(
            "INSERT INTO PLSP.RelevantVaerdi (Code, ActiveFromUtc, ForloebCode, Unit, DataType, MinValue, "
            "MaxValue, Description) VALUES (%s, %s, %s, %s, 'numeric', %s, %s, %s)",
            values,
        )


def make_patients(db, count: int) -> list[int]:
    """``count`` synthetic patients (CPR with day + 60: never a real person's) in one clinic."""
    execute(
        db,
        "INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name) "
        "SELECT '990000011000016', '839178', 'Testklinik' WHERE NOT EXISTS (SELECT 1 FROM PLSP.Klinik)",
    )
    first = scalar(db, "SELECT coalesce(max(PatientId), 0) FROM PLSP.Patient")
    execute(
        db,
        "INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex) "
        "SELECT lpad((610000000 + ? + g)::text, 10, '0'), (SELECT min(KlinikId) FROM PLSP.Klinik), "
        "'Test', 'Patient', DATE '1950-01-01', 'F' FROM generate_series(1, ?) AS g",
        (first, count),
    )
    rows = fetch_all(db, "SELECT PatientId FROM PLSP.Patient WHERE PatientId > ? ORDER BY 1", (first,))
    return [r[0] for r in rows]


def run(db, job: Job, execute_: bool = True):
    result = run_job(db, job, triggered_by="test", execute=execute_)
    assert result.error is None, result.error
    return result


def db_now(db):
    """The database's clock, UTC: every time a test writes is relative to it."""
    return scalar(db, "SELECT date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3)")


def add_diagnosis(db, patient: int, code: str, diagnosed, ended=None, system: str | None = None) -> int:
    system = system or ("SKS" if code.startswith("D") else "ICPC2")
    return scalar(
        db,
        "INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate, EndedDate) "
        "VALUES (?, ?, ?, ?, ?) RETURNING DiagnoseId",
        (patient, code, system, diagnosed, ended),
    )


def add_medication(db, patient: int, atc: str, start, end=None) -> int:
    return scalar(
        db,
        "INSERT INTO PLSP.Medicin (PatientId, AtcCode, StartDate, EndDate) VALUES (?, ?, ?, ?) "
        "RETURNING MedicinId",
        (patient, atc, start, end),
    )


def add_value(db, patient: int, code: str, value, measured, comparator=None) -> int:
    """A value as ConvertPatientValues leaves it (status 1)."""
    return scalar(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, ValueNumeric, Comparator, MeasuredUtc, "
        "ConversionStatus, ConversionAttempts) VALUES (?, ?, ?, ?, ?, ?, 1, 1) RETURNING PatientvaerdiId",
        (patient, code, str(value), value, comparator, measured),
    )


def add_property(db, patient: int, code: str, valid_from, valid_to=None) -> int:
    return scalar(
        db,
        "INSERT INTO PLSP.Egenskaber (PatientId, Code, ValidFromUtc, ValidToUtc) VALUES (?, ?, ?, ?) "
        "RETURNING EgenskabId",
        (patient, code, valid_from, valid_to),
    )


def add_service(db, patient: int, code: str, day) -> int:
    return scalar(
        db,
        "INSERT INTO PLSP.Ydelser (PatientId, KlinikId, ServiceCode, ServiceDate) "
        "SELECT ?, KlinikId, ?, ? FROM PLSP.Patient WHERE PatientId = ? RETURNING YdelseId",
        (patient, code, day, patient),
    )


def inclusion(db, patient: int | None = None) -> dict:
    """(PatientId, ForloebCode) -> (IsIncluded, Reason, Evidence)."""
    rows = fetch_all(
        db,
        "SELECT PatientId, ForloebCode, IsIncluded, Reason, Evidence FROM PLSP.PatientInkluderet "
        "WHERE PatientId = coalesce(?, PatientId)",
        (patient,),
    )
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def settle_relevant_changes(db) -> None:
    """The migration's own Relevant rows count as applied: a test starts from a quiet change log."""
    execute(
        db, "UPDATE PLSP.RelevantChange SET AppliedUtc = '2000-01-01', Patients = 0 WHERE AppliedUtc IS NULL"
    )
