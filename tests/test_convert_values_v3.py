"""ConvertPatientValues by insert (migration 0023) decides exactly as v1 did, on every raw form.

New values wait in PLSP.Patientvaerdier_Pending; Job.convert_values_move moves a
batch out of it and inserts each row into PLSP.Patientvaerdier already converted
or invalid. Its conversion is version 2's expression fed from the pending table,
so it is compared with the released version 1 itself: v1 (installed under
another name) converts the same rows in place in a rolled-back transaction, then
the move converts them from the pending table, and every result column must
agree, row for row in arrival order, with the same batch notes. The corpus is
test_convert_values_v2's (every raw form of domain.md and docs/engine.md with
their neighbours), then random text (hypothesis). Then the batch of version 2:
pending rows first, then status-0 rows left in place by an older writer; the
dirty mark; locked rows skipped; nothing lost or doubled.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.db.urls import libpq_url
from tests.support.engine import CONVERT, make_patients, quick, run
from tests.support.sql import execute, fetch_all, scalar
from tests.test_convert_values_v2 import CODES, RANDOM_TEXT, RANDOM_TIME, TIMES, UNITS, VALUES

PROCEDURES = Path(__file__).resolve().parent.parent / "db" / "procedures" / "postgresql"
BATCH = 1000  # rows a call, the same for v1 and the move, so the notes compare batch by batch
# Everything a conversion decides or keeps, in arrival order (the ids differ: the move assigns them).
COLUMNS = (
    "PatientId, Code, RawValue, RawTime, ConversionStatus, ValueNumeric, Comparator, Unit, ReasonCode, "
    "MeasuredUtc, ConversionAttempts, ReceivedUtc, UploadKey, ContentHash"
)
RAW = "PatientId, Code, RawValue, Unit, RawTime, ReceivedUtc, UploadKey, ContentHash"


@pytest.fixture
def url(db) -> str:
    quick(db)
    url = libpq_url(db.url)
    v1 = (PROCEDURES / "convert_values_rows.v1.sql").read_text()
    assert "CREATE PROCEDURE Job.convert_values_rows(" in v1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(v1.replace("Job.convert_values_rows(", "Job.convert_values_rows_v1(", 1))
    return url


def load(url: str, patient: int, rows: list[tuple]) -> None:
    """rows: (code, raw value, Unit column, raw time), into the pending table in this order."""
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM PLSP.Patientvaerdier")
        cur.execute("DELETE FROM PLSP.Patientvaerdier_Pending")
        cur.executemany(
            "INSERT INTO PLSP.Patientvaerdier_Pending (PatientId, Code, RawValue, Unit, RawTime, "
            "ReceivedUtc, UploadKey, ContentHash) "
            "VALUES (%s, %s, %s, %s, %s, TIMESTAMP '2026-01-02 03:04:05', 'k' || %s, sha256(%s::bytea))",
            [(patient, *row, i, str(i).encode()) for i, row in enumerate(rows)],
        )


def convert_v1(url: str, execute_: str) -> tuple[list, list]:
    """v1 over the same rows put in place (status 0) in arrival order, rolled back."""
    notes = []
    with psycopg.connect(url) as conn:
        conn.execute(
            f"INSERT INTO PLSP.Patientvaerdier ({RAW}) SELECT {RAW} FROM PLSP.Patientvaerdier_Pending "
            "ORDER BY PendingId"
        )
        position = None
        while True:
            position, _rows, done, note = conn.execute(
                "CALL Job.convert_values_rows_v1('N', %s, %s, NULL, %s, NULL, NULL, NULL)",
                (BATCH, execute_, position),
            ).fetchone()
            notes.append(note)
            if done:
                break
        rows = conn.execute(f"SELECT {COLUMNS} FROM PLSP.Patientvaerdier ORDER BY PatientvaerdiId").fetchall()
        conn.rollback()
    return notes, rows


def convert_move(url: str, execute_: str) -> tuple[list, list, int]:
    """The move over the pending rows, rolled back: notes, the rows written, the rows left pending."""
    notes = []
    with psycopg.connect(url) as conn:
        while True:
            rows_, note = conn.execute(
                "CALL Job.convert_values_move(%s, %s, NULL, NULL)", (BATCH, execute_)
            ).fetchone()
            notes.append(note)
            if rows_ < BATCH or execute_ == "N":
                break
        rows = conn.execute(f"SELECT {COLUMNS} FROM PLSP.Patientvaerdier ORDER BY PatientvaerdiId").fetchall()
        left = conn.execute("SELECT count(*) FROM PLSP.Patientvaerdier_Pending").fetchone()[0]
        conn.rollback()
    return notes, rows, left


def assert_same(url: str, pending: int) -> list:
    """v1 and the move agree; the dry run writes nothing; the rows after converting."""
    old_notes, old_rows = convert_v1(url, "Y")
    new_notes, new_rows, left = convert_move(url, "Y")
    assert new_notes == old_notes, "the batch notes (counts and reasons) differ"
    assert len(new_rows) == len(old_rows) == pending
    for was, now in zip(old_rows, new_rows, strict=True):
        assert now == was
    assert left == 0
    dry_old, _ = convert_v1(url, "N")
    dry_new, written, left = convert_move(url, "N")
    assert dry_new == dry_old[:1]
    assert written == [] and left == pending, "the dry run moved nothing"
    return new_rows


def test_the_migrated_batch_is_version_2(db):
    source = scalar(db, "SELECT prosrc FROM pg_proc WHERE proname = 'convert_values_batch'")
    assert "Job.convert_values_move" in source and "Job.convert_values_rows" in source


def test_the_move_decides_as_v1_on_every_listed_raw_form(url, db):
    [patient] = make_patients(db, 1)
    rows = [
        (code, value, unit, TIMES[i % len(TIMES)])
        for i, (code, value, unit) in enumerate(itertools.product(CODES, VALUES, UNITS))
    ]
    load(url, patient, rows)
    result = assert_same(url, len(rows))
    statuses = {row[4] for row in result}
    reasons = {row[8] for row in result}
    assert statuses == {1, 2}, "the corpus converts some values and not others"
    assert reasons == {None, "empty", "not_a_number", "unknown_unit", "out_of_range", "ambiguous",
                       "unknown_analysis", "bad_time"}  # fmt: skip
    # The raw text is never changed, and what moves with the row moves unchanged.
    assert [(r[1], r[2], r[3]) for r in result] == [(c, v, t) for c, v, _u, t in rows]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(CODES),
            st.one_of(st.none(), RANDOM_TEXT),
            st.sampled_from(UNITS),
            st.one_of(st.none(), RANDOM_TIME),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_move_decides_as_v1_on_random_text(url, db, rows):
    patient = scalar(db, "SELECT min(PatientId) FROM PLSP.Patient") or make_patients(db, 1)[0]
    load(url, patient, rows)
    assert_same(url, len(rows))


def add_pending(db, patient: int, raw: str, time: str = "2018-08-24") -> None:
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier_Pending (PatientId, Code, RawValue, RawTime) "
        "VALUES (?, 'NPU27300', ?, ?)",
        (patient, raw, time),
    )


def test_the_job_drains_pending_then_converts_rows_left_in_place(db):
    quick(db)
    set_batch = (
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES ('convert_values', ?, ?, 'test') "
    )
    set_batch += "ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value"
    for name, value in (("BatchSizeStart", "3"), ("BatchSizeMin", "3"), ("BatchSizeMax", "3")):
        execute(db, set_batch, (name, value))
    a, b = make_patients(db, 2)
    for raw in ("53", "54", "x", "56"):
        add_pending(db, a, raw)
    # a writer of the old shape (before migration 0023) left a raw value in place
    old = scalar(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime) VALUES (?, 'NPU27300', '60', "
        "'2018-08-24') RETURNING PatientvaerdiId",
        (b,),
    )
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    result = run(db, CONVERT)
    assert result.rows == 5
    assert scalar(db, "SELECT count(*) FROM PLSP.Patientvaerdier_Pending") == 0
    rows = fetch_all(
        db,
        "SELECT PatientId, RawValue, ConversionStatus, ValueNumeric, ReasonCode, ConversionAttempts "
        "FROM PLSP.Patientvaerdier ORDER BY PatientvaerdiId",
    )
    assert rows == [
        (b, "60", 1, 60, None, 1),
        (a, "53", 1, 53, None, 1),
        (a, "54", 1, 54, None, 1),
        (a, "x", 2, None, "not_a_number", 1),
        (a, "56", 1, 56, None, 1),
    ]
    assert scalar(db, "SELECT PatientvaerdiId FROM PLSP.Patientvaerdier WHERE RawValue = '60'") == old
    # the moved rows got ids after every existing one, in arrival order
    assert scalar(db, "SELECT min(PatientvaerdiId) FROM PLSP.Patientvaerdier WHERE PatientId = ?", (a,)) > old
    # both patients' values became usable: both marked for the inclusion check
    marked = fetch_all(db, "SELECT PatientId FROM PLSP.PatientInkluderetPending ORDER BY 1")
    assert marked == [(a,), (b,)]
    # nothing left: the next run converts nothing
    assert run(db, CONVERT).rows == 0


def test_an_invalid_value_marks_nobody(db):
    quick(db)
    [a] = make_patients(db, 1)
    add_pending(db, a, "ikke målt")
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    assert run(db, CONVERT).rows == 1
    assert scalar(db, "SELECT ConversionStatus FROM PLSP.Patientvaerdier") == 2
    assert scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderetPending") == 0


def test_a_locked_pending_row_is_skipped_not_lost(db):
    quick(db)
    [a] = make_patients(db, 1)
    for raw in ("53", "54"):
        add_pending(db, a, raw)
    url = libpq_url(db.url)
    with psycopg.connect(url) as holder:
        # another session (an upload replacing it) holds the first row
        holder.execute(
            "SELECT 1 FROM PLSP.Patientvaerdier_Pending ORDER BY PendingId LIMIT 1 FOR UPDATE"
        ).fetchone()
        with psycopg.connect(url, autocommit=True) as conn:
            rows, note = conn.execute("CALL Job.convert_values_move(10, 'Y', NULL, NULL)").fetchone()
        assert rows == 1 and note == "converted 1, invalid 0, rejected 0"
        holder.rollback()
    assert scalar(db, "SELECT RawValue FROM PLSP.Patientvaerdier_Pending") == "53"
    assert run(db, CONVERT).rows == 1
    values = fetch_all(db, "SELECT RawValue FROM PLSP.Patientvaerdier ORDER BY PatientvaerdiId")
    assert values == [("54",), ("53",)]


def test_the_move_refuses_bad_parameters_naming_them(db):
    with pytest.raises(Exception, match=r"p_BatchSize.*p_Execute"):
        execute(db, "CALL Job.convert_values_move(0, 'X', NULL, NULL)")


def test_engine_status_counts_pending_and_in_place_new_values(db):
    quick(db)
    [a] = make_patients(db, 1)
    add_pending(db, a, "53")
    add_pending(db, a, "54")
    execute(
        db, "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue) VALUES (?, 'NPU27300', '7')", (a,)
    )
    assert scalar(db, "SELECT ValuesNew FROM Monitor.engine_status()") == 3
    run(db, CONVERT)
    assert scalar(db, "SELECT ValuesNew FROM Monitor.engine_status()") == 0
