"""Rows for the daily-report tests at times relative to a chosen UTC day, and what they must show.

The day is a parameter, so the tests mean the same whatever today is. Plain
PostgreSQL SQL with ``?`` placeholders (tests/support/sql.py).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from tests.support.sql import execute


def at(day: date, hours: float) -> datetime:
    """``hours`` after the start of ``day`` (UTC; negative: the day before)."""
    return datetime.combine(day, time()) + timedelta(hours=hours)


def add_run(db, job: str, status: str, start: datetime, seconds: float | None, rows: int = 0, message=None):
    ended = None if seconds is None else start + timedelta(seconds=seconds)
    execute(
        db,
        "INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, EndedUtc, Status, RowsAffected, "
        "Message) VALUES (?, 'test', 'host-a', ?, ?, ?, ?, ?)",
        (job, start, ended, status, rows, message),
    )


def add_aim(db, created: datetime, status: int = 0, delivered: datetime | None = None, history=False) -> None:
    if history:
        execute(
            db,
            "INSERT INTO PLSP.FLP_AIM_History (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, "
            "DeliveredUtc) VALUES ((SELECT coalesce(max(Id), 0) + 1000000 FROM PLSP.FLP_AIM_History), "
            "1, 2, ?, ?, ?)",
            (created, created, delivered),
        )
        return
    execute(
        db,
        "INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc) "
        "VALUES (1, ?, ?, ?, ?)",
        (status, created, created if status else None, delivered),
    )


def add_dead_letter(db, when: datetime, queue: str = "aim") -> None:
    execute(
        db,
        "INSERT INTO Ops.QueueDeadLetter (QueueName, MessageId, Body, EnqueuedUtc, DeliveryCount, Reason, "
        "DeadLetteredUtc) VALUES (?, NULL, '{\"ids\": [1]}', ?, 5, 'test: failed 5 times', ?)",
        (queue, when - timedelta(minutes=10), when),
    )


def add_patient(db) -> int:
    execute(
        db, "INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name) VALUES ('990000011000016', '839178', 'K')"
    )
    execute(
        db,
        "INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex) "
        "SELECT '0101501234', min(KlinikId), 'Test', 'Patient', DATE '1950-01-01', 'F' FROM PLSP.Klinik",
    )
    from tests.support.sql import scalar

    return scalar(db, "SELECT min(PatientId) FROM PLSP.Patient")


def add_value(db, patient: int, status: int, converted: datetime | None, reason: str | None = None) -> None:
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, ConversionStatus, ConvertedUtc, "
        "ReasonCode) VALUES (?, 'NPU27300', '53', ?, ?, ?)",
        (patient, status, converted, reason),
    )


def add_inclusion(db, patient: int, plan: str, included: bool, when: datetime) -> None:
    execute(
        db,
        "INSERT INTO PLSP.PatientInkluderet_History (PatientId, ForloebCode, IsIncluded, Reason, ChangedUtc) "
        "VALUES (?, ?, ?, 'test', ?)",
        (patient, plan, included, when),
    )


def busy_day(db, day: date, failures: bool = True, dead_letter: bool = True) -> dict:
    """A day with runs, AIM traffic, conversions and inclusions (plus noise the day before and after).

    Returns the statistics the day must show as {(section, subject, metric): value}.
    """
    for hours, seconds, rows in ((1, 1, 10), (2, 2, 20), (3, 4, 30)):
        add_run(db, "session_purge", "succeeded", at(day, hours), seconds, rows)
    add_run(db, "session_purge", "skipped", at(day, 3.5), 0)
    add_run(db, "session_purge", "succeeded", at(day, -1), 9, 999)  # the day before
    add_run(db, "session_purge", "succeeded", at(day, 24.5), 9, 999)  # the day after
    add_run(db, "log_cleanup", "succeeded", at(day, 1), 3, 1500)
    add_run(db, "aim_import", "missed", at(day, 6), None)
    expected = {
        ("jobs", "session_purge", "runs"): 3,
        ("jobs", "session_purge", "succeeded"): 3,
        ("jobs", "session_purge", "skipped"): 1,
        ("jobs", "session_purge", "rows"): 60,
        ("jobs", "session_purge", "duration_p50_ms"): 2000,
        ("jobs", "session_purge", "duration_max_ms"): 4000,
        ("jobs", "log_cleanup", "runs"): 1,
        ("jobs", "log_cleanup", "succeeded"): 1,
        ("jobs", "log_cleanup", "rows"): 1500,
        ("jobs", "log_cleanup", "duration_p50_ms"): 3000,
        ("jobs", "log_cleanup", "duration_max_ms"): 3000,
        ("jobs", "aim_import", "missed"): 1,
        ("maintenance", "sessions_purged", "sessions_purged"): 60,
        ("maintenance", "log_rows_removed", "log_rows_removed"): 1500,
    }
    if failures:
        add_run(db, "convert_values", "failed", at(day, 12), 5, 0, "boom: the test failed this run")
        add_run(db, "convert_values", "succeeded", at(day, 12.5), 1, 7)
        expected.update(
            {
                ("jobs", "convert_values", "runs"): 2,
                ("jobs", "convert_values", "failed"): 1,
                ("jobs", "convert_values", "succeeded"): 1,
                ("jobs", "convert_values", "rows"): 7,
                ("jobs", "convert_values", "duration_p50_ms"): 1000,
                ("jobs", "convert_values", "duration_max_ms"): 5000,
            }
        )
    for k in range(3):
        add_aim(db, at(day, 8 + k))  # pending at the end of the day
    for k in range(2):
        add_aim(db, at(day, -5 - k), status=2, delivered=at(day, 2))  # yesterday's rows delivered today
    add_aim(db, at(day, -30), history=True, delivered=at(day, 4))  # delivered today, archived since
    add_aim(db, at(day, -40), history=True, delivered=at(day, -20))  # delivered before: not counted
    expected.update(
        {
            ("aim", "FLP_AIM", "created"): 3,
            ("aim", "FLP_AIM", "delivered"): 3,
            ("aim", "FLP_AIM", "backlog"): 3,
        }
    )
    if dead_letter:
        add_dead_letter(db, at(day, 9))
        expected[("aim", "aim", "dead_lettered")] = 1
    patient = add_patient(db)
    for _ in range(4):
        add_value(db, patient, 1, at(day, 5))
    add_value(db, patient, 2, at(day, 5), "not_a_number")
    add_value(db, patient, 3, at(day, 5), "empty")
    add_value(db, patient, 1, at(day, -2))  # yesterday
    add_value(db, patient, 0, None)
    add_value(db, patient, 0, None)
    expected.update(
        {
            ("conversion", "Patientvaerdier", "converted"): 4,
            ("conversion", "Patientvaerdier", "invalid"): 1,
            ("conversion", "Patientvaerdier", "rejected"): 1,
        }
    )
    for when, sor, counts in (
        (day, "990000011000016", (4, 9, 1, 120, 30, 850, 5, 2)),
        (day, "990000022000017", (1, 1, 0, 10, 0, 0, 0, 0)),
        (day - timedelta(days=1), "990000011000016", (7, 7, 7, 7, 7, 7, 7, 7)),  # the day before
    ):
        execute(
            db,
            "INSERT INTO Ops.UploadStatistic (SorCode, DayUtc, Uploads, Documents, RejectedDocuments, "
            "RowsInserted, RowsUpdated, RowsUnchanged, RowsRejected, Throttled) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sor, when, *counts),
        )
    expected.update(
        {
            ("uploads", "990000011000016", "uploads"): 4,
            ("uploads", "990000011000016", "rows_unchanged"): 850,
            ("uploads", "990000011000016", "rows_rejected"): 5,
            ("uploads", "990000011000016", "throttled"): 2,
            ("uploads", "990000022000017", "rows_inserted"): 10,
        }
    )
    for hours, kind, requester, purpose, status, latency, patient_hash in (
        (10, "citizen", "citizen", "view", 200, 40, "a" * 64),
        (10.5, "citizen", "citizen", "view", 304, 5, "a" * 64),
        (11, "citizen", "citizen", "view", 200, 60, "b" * 64),
        (12, "dds", "DDS", "dds-retrieve", 500, 900, None),
        (-3, "citizen", "citizen", "view", 200, 10, "c" * 64),  # the day before
    ):
        execute(
            db,
            "INSERT INTO PLSP.CdaAccessLog (AccessedUtc, RequesterKind, Requester, Purpose, PatientHash, "
            "HttpStatus, LatencyMs) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at(day, hours), kind, requester, purpose, patient_hash, status, latency),
        )
    expected.update(
        {
            ("cda", "citizen citizen view", "requests"): 3,
            ("cda", "citizen citizen view", "patients"): 2,
            ("cda", "citizen citizen view", "not_modified"): 1,
            ("cda", "citizen citizen view", "max_latency_ms"): 60,
            ("cda", "dds DDS dds-retrieve", "failures"): 1,
        }
    )
    add_inclusion(db, patient, "ALAL22", True, at(day, 7))
    add_inclusion(db, patient, "ALAL22", True, at(day, 7.5))
    add_inclusion(db, patient, "ALAL21", False, at(day, 8))
    expected.update(
        {
            ("inclusion", "ALAL22", "included"): 2,
            ("inclusion", "ALAL21", "excluded"): 1,
        }
    )
    return expected
