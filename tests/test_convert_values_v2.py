"""ConvertPatientValues v2 (migration 0015) decides exactly as v1 did, on every raw form.

Version 2 of Job.convert_values_rows reads the text differently (boolean regular
expressions and lateral steps instead of shapes and a temporary table), so it is
compared with version 1 itself: the released v1 file, installed in the test
database under another name, converts the same rows in a rolled-back
transaction, then v2 does, and every result column must agree. The corpus is
every raw form of domain.md and docs/engine.md with their neighbours (leap
days, offsets, separators in every place), and then random text (hypothesis).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.db.urls import libpq_url
from tests.support.engine import make_patients, quick
from tests.support.sql import scalar

PROCEDURES = Path(__file__).resolve().parent.parent / "db" / "procedures" / "postgresql"

CODES = [
    "NPU27300", "NPU03835", "NPU01568", "DNK05472", "DNK05473", "NPU03804", "NPU21692", "NPU19661",
    "MCS88015", "MCS88100", "XYZ00001",
]  # fmt: skip
VALUES = [
    "53", "7,5", "7.5", " 7,5", "53,0", "<5", ">300", "<= 5", ">=7", "< 5", "53 mmol/mol", "7,5 %", "7,5%",
    "85400 g", "135 mm Hg", "2,6 MMOL/L", "1.234,5", "1,234.5", "1.500", "12.345", "1.234", "1,234", "", " ",
    None, "ikke målt", "53..", "53 53", "5,,3", "1.2.3", "?", "53 mg", "300", "2.345.678", "1.234.567,5",
    "1,234,567.5", "-5", "+5", "- 5", "0,5", "007", "0.234", "01.234", "1.234.567", "12345678901234567890",
    "123456789012345678901", ".5", "5.", ",5", "\u00a053", "53\u00a0mmol/mol", "<>5", "<<5", "5e3", "1 234",
    "1.23,4", "1,2.3", "9.999.999.999", "999.999.999.999,99", "1.234.567.890.123", "mmol", "%", "5-",
    "1.234 mg/mmol", "2 mg/mmol", "53mmol/mol", "4 mL", "2500 mL", "70 bpm", "48", "47,9", "<48",
]  # fmt: skip
UNITS = [None, "%", "mg/g", "mmol/L", " ", "MG/G", "mg/dL"]
TIMES = [
    "24-08-2018", "15-01-2018", "2018-08-24", "20180824121545+0200", "20180115121545-0130", " 2018-08-24 ",
    None, "", "31-02-2018", "29-02-2020", "29-02-2019", "29-02-1900", "29-02-2000", "2018/08/24",
    "24-13-2018", "20180824251545+0200", "20180824125960+0200", "24.08.2018", "00-01-2018", "31-04-2018",
    "31-12-1899", "01-01-1900", "20181028023000+0200", "28-10-2018", "25-03-2018", "31-12-2018", "2018-8-24",
    "20180824121545",
]  # fmt: skip
COLUMNS = (
    "PatientvaerdiId, ConversionStatus, ValueNumeric, Comparator, Unit, ReasonCode, MeasuredUtc, "
    "ConversionAttempts"
)


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
    """rows: (code, raw value, Unit column, raw time)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM PLSP.Patientvaerdier")
        cur.executemany(
            "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, Unit, RawTime) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(patient, *row) for row in rows],
        )


def convert(url: str, procedure: str, mode: str, execute: str, setup: str | None = None) -> tuple[list, list]:
    """Every batch of ``procedure`` in one transaction, rolled back: the notes and the rows after it."""
    notes = []
    with psycopg.connect(url) as conn:
        if setup:
            conn.execute(setup)
        position = None
        while True:
            position, _rows, done, note = conn.execute(
                f"CALL Job.{procedure}(%s, 1000, %s, 3, %s, NULL, NULL, NULL)", (mode, execute, position)
            ).fetchone()
            notes.append(note)
            if done:
                break
        rows = conn.execute(f"SELECT {COLUMNS} FROM PLSP.Patientvaerdier ORDER BY PatientvaerdiId").fetchall()
        conn.rollback()
    return notes, rows


def assert_same(url: str, mode: str = "N", setup: str | None = None) -> list:
    """v1 and v2 agree, converting and in a dry run; the rows after converting."""
    converted = []
    for execute in ("Y", "N"):
        old = convert(url, "convert_values_rows_v1", mode, execute, setup)
        new = convert(url, "convert_values_rows", mode, execute, setup)
        assert new[0] == old[0], "the batch notes (counts and reasons) differ"
        for was, now in zip(old[1], new[1], strict=True):
            assert now == was
        converted = converted or new[1]
    return converted


def test_the_migrated_procedure_is_version_2(db):
    source = scalar(db, "SELECT prosrc FROM pg_proc WHERE proname = 'convert_values_rows'")
    assert "v_At tid[]" in source and "OFFSET 0" in source


def test_v2_decides_as_v1_on_every_listed_raw_form(url, db):
    [patient] = make_patients(db, 1)
    rows = [
        (code, value, unit, TIMES[i % len(TIMES)])
        for i, (code, value, unit) in enumerate(itertools.product(CODES, VALUES, UNITS))
    ]
    load(url, patient, rows)
    result = assert_same(url)
    statuses = {row[1] for row in result}
    reasons = {row[5] for row in result}
    assert statuses == {1, 2}, "the corpus converts some values and not others"
    assert reasons == {None, "empty", "not_a_number", "unknown_unit", "out_of_range", "ambiguous",
                       "unknown_analysis", "bad_time"}  # fmt: skip


def test_v2_retries_gives_up_and_counts_as_v1(url, db):
    [patient] = make_patients(db, 1)
    rows = [(code, value, None, "2018-08-24") for code, value in itertools.product(CODES[:4], VALUES)]
    load(url, patient, rows)
    # invalid values one or two attempts old: MaxAttempts 3 gives the older ones up
    setup = (
        "UPDATE PLSP.Patientvaerdier SET ConversionStatus = 2, ConversionAttempts = 1 + PatientvaerdiId % 2"
    )
    result = assert_same(url, mode="I", setup=setup)
    assert {row[1] for row in result} == {1, 2, 3}


RANDOM_TEXT = st.text(alphabet="0123456789.,, <>=+-%gmolLbpH/\u00a0e", max_size=14)
RANDOM_TIME = st.one_of(
    st.sampled_from(TIMES),
    st.text(alphabet="0123456789-+", min_size=8, max_size=19),
)


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
def test_v2_decides_as_v1_on_random_text(url, db, rows):
    patient = scalar(db, "SELECT min(PatientId) FROM PLSP.Patient") or make_patients(db, 1)[0]
    load(url, patient, rows)
    assert_same(url)
