"""Helpers for the FLP engine's tests (issue 9): patients, values, settings, runs."""

from __future__ import annotations

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
    """No pause between batches for the engine's jobs."""
    for job in (CONVERT.name, CONVERT_INVALID.name, CHECK.name):
        set_setting(db, job, "SleepFactor", "0")


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
