"""ConvertPatientValues (issue 9): every raw form of domain.md and every reason code, by hand."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tests.support.engine import CONVERT, CONVERT_INVALID, make_patients, quick, run, set_setting
from tests.support.sql import execute, fetch_all, fetch_one, scalar

DANISH_SUMMER = "24-08-2018"  # CEST, UTC+2: local midnight is 22:00 UTC the day before
SUMMER_UTC = datetime(2018, 8, 23, 22, 0)

# (code, raw value, Unit column, raw time) -> (status, value, comparator, unit, reason)
CASES = [
    # plain numbers, decimal comma or point, padding, integer with a decimal
    (("NPU27300", "53", None), (1, "53", None, "mmol/mol", None)),
    (("NPU01568", "7,5", "mmol/L"), (1, "7.5", None, "mmol/L", None)),
    (("NPU01568", "7.5", "mmol/L"), (1, "7.5", None, "mmol/L", None)),
    (("NPU01568", " 7,5", None), (1, "7.5", None, "mmol/L", None)),
    (("NPU27300", "53,0", None), (1, "53", None, "mmol/mol", None)),
    # comparators kept beside the number
    (("NPU19661", "<5", "mg/g"), (1, "5", "<", "mg/g", None)),
    (("NPU19661", ">300", None), (1, "300", ">", "mg/g", None)),
    (("NPU19661", "<= 5", None), (1, "5", "<=", "mg/g", None)),
    # units written in the text, and conversions
    (("NPU27300", "53 mmol/mol", None), (1, "53", None, "mmol/mol", None)),
    (("NPU27300", "7,5 %", None), (1, "58.4702", None, "mmol/mol", None)),  # (7.5 - 2.15) x 10.929
    (("NPU27300", "7,5", "%"), (1, "58.4702", None, "mmol/mol", None)),
    (("NPU03804", "85400 g", None), (1, "85.4", None, "kg", None)),
    (("DNK05472", "135 mm Hg", None), (1, "135", None, "mmHg", None)),
    (("NPU01568", "2,6 MMOL/L", None), (1, "2.6", None, "mmol/L", None)),  # units compare without case
    # thousands separators: read right, or let the range decide, or ambiguous
    (("NPU19661", "1.234,5", None), (1, "1234.5", None, "mg/g", None)),
    (("NPU19661", "1,234.5", None), (1, "1234.5", None, "mg/g", None)),
    (("NPU01568", "1.500", None), (1, "1.5", None, "mmol/L", None)),  # 1500 mmol/L is not plausible
    (("NPU19661", "12.345", None), (1, "12.345", None, "mg/g", None)),  # 12345 mg/g is not plausible
    (("NPU19661", "1.234", None), (2, None, None, None, "ambiguous")),  # 1.234 and 1234 both plausible
    (("NPU19661", "1,234", None), (2, None, None, None, "ambiguous")),
    # reason codes
    (("NPU27300", "", None), (2, None, None, None, "empty")),
    (("NPU27300", " ", None), (2, None, None, None, "empty")),
    (("NPU27300", None, None), (2, None, None, None, "empty")),
    (("NPU27300", "ikke målt", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "53..", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "53 53", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "5,,3", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "1.2.3", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "?", None), (2, None, None, None, "not_a_number")),
    (("NPU27300", "53 mg", None), (2, None, None, None, "unknown_unit")),
    (("NPU01568", "2,6", "mg/dL"), (2, None, None, None, "unknown_unit")),
    (("NPU27300", "300", None), (2, None, None, None, "out_of_range")),
    (("NPU19661", "2.345.678", None), (2, None, None, None, "out_of_range")),  # thousands, read right
    (("XYZ00001", "53", None), (2, None, None, None, "unknown_analysis")),
]

TIMES = [
    ("24-08-2018", datetime(2018, 8, 23, 22, 0)),  # Danish date, summer time
    ("15-01-2018", datetime(2018, 1, 14, 23, 0)),  # winter time, UTC+1
    ("2018-08-24", datetime(2018, 8, 23, 22, 0)),
    ("20180824121545+0200", datetime(2018, 8, 24, 10, 15, 45)),
    ("20180115121545+0100", datetime(2018, 1, 15, 11, 15, 45)),
    (" 2018-08-24 ", datetime(2018, 8, 23, 22, 0)),
]
BAD_TIMES = [None, "", "31-02-2018", "2018/08/24", "24-13-2018", "20180824251545+0200", "24.08.2018"]


@pytest.fixture
def patient(db):
    quick(db)
    return make_patients(db, 1)[0]


def add_values(db, patient: int, rows: list[tuple]) -> list[int]:
    """rows: (code, raw, unit, raw time); the ids in the same order."""
    ids = []
    for code, raw, unit, raw_time in rows:
        ids.append(
            scalar(
                db,
                "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, Unit, RawTime) "
                "VALUES (?, ?, ?, ?, ?) RETURNING PatientvaerdiId",
                (patient, code, raw, unit, raw_time),
            )
        )
    return ids


def converted(db, value_id: int) -> tuple:
    return fetch_one(
        db,
        "SELECT ConversionStatus, ValueNumeric, Comparator, Unit, ReasonCode, MeasuredUtc, RawValue, "
        "ConversionAttempts, ConvertedUtc FROM PLSP.Patientvaerdier WHERE PatientvaerdiId = ?",
        (value_id,),
    )


def test_every_raw_form_and_reason_code(db, patient):
    ids = add_values(db, patient, [(*given, DANISH_SUMMER) for given, _ in CASES])

    result = run(db, CONVERT)

    assert (result.result, result.rows) == ("succeeded", len(CASES))
    for value_id, (given, expected) in zip(ids, CASES, strict=True):
        status, value, comparator, unit, reason, measured, raw, attempts, when = converted(db, value_id)
        want_status, want_value, want_comparator, want_unit, want_reason = expected
        got = (status, value, comparator, unit if status == 1 else None, reason)
        want = (want_status, None if want_value is None else Decimal(want_value), want_comparator, want_unit,
                want_reason)  # fmt: skip
        assert got == want, given
        assert raw == given[1], "the raw text is never changed"
        assert attempts == 1 and when is not None
        assert measured == (SUMMER_UTC if status == 1 else None)


@pytest.mark.parametrize(("raw_time", "utc"), TIMES)
def test_each_time_format_becomes_utc(db, patient, raw_time, utc):
    [value_id] = add_values(db, patient, [("NPU27300", "53", None, raw_time)])
    run(db, CONVERT)
    assert converted(db, value_id)[:1] + converted(db, value_id)[5:6] == (1, utc)


def test_an_unreadable_time_is_bad_time(db, patient):
    ids = add_values(db, patient, [("NPU27300", "53", None, t) for t in BAD_TIMES])
    run(db, CONVERT)
    assert [converted(db, i)[0::4][:2] for i in ids] == [(2, "bad_time")] * len(BAD_TIMES)


def test_dry_run_counts_and_writes_nothing(db, patient):
    add_values(db, patient, [("NPU27300", "53", None, DANISH_SUMMER), ("NPU27300", "x", None, DANISH_SUMMER)])
    result = run(db, CONVERT, execute_=False)
    assert (result.result, result.rows) == ("dry_run", 2)
    assert scalar(db, "SELECT count(*) FROM PLSP.Patientvaerdier WHERE ConversionStatus = 0") == 2


def test_batches_walk_the_values_in_id_order_and_skip_converted_ones(db, patient):
    set_setting(db, CONVERT.name, "BatchSizeStart", "100")
    set_setting(db, CONVERT.name, "BatchSizeMin", "100")
    set_setting(db, CONVERT.name, "BatchSizeMax", "100")
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime) "
        "SELECT ?, 'NPU27300', (40 + mod(g, 20))::text || CASE WHEN mod(g, 10) = 0 THEN ' x' ELSE '' END, "
        "'2018-08-24' "
        "FROM generate_series(1, 450) AS g",
        (patient,),
    )
    result = run(db, CONVERT)
    assert result.rows == 450
    counts = dict(fetch_all(db, "SELECT ConversionStatus, count(*) FROM PLSP.Patientvaerdier GROUP BY 1"))
    assert counts == {1: 405, 2: 45}
    assert scalar(db, "SELECT count(*) FROM Ops.JobRunBatch WHERE JobRunId = ?", (result.job_run_id,)) == 5
    first = "SELECT Note FROM Ops.JobRunBatch WHERE JobRunId = ? AND BatchNo = 1"
    note = scalar(db, first, (result.job_run_id,))
    assert note.startswith("converted 90, invalid 10, rejected 0"), note
    again = run(db, CONVERT)
    assert again.rows == 0, "converted and invalid values are not read again"


def test_a_rule_change_applies_to_new_values_only(db, patient):
    execute(db, "UPDATE PLSP.RelevantVaerdi SET MaxValue = 400 WHERE Code = 'NPU27300'")
    [value_id] = add_values(db, patient, [("NPU27300", "300", None, DANISH_SUMMER)])
    run(db, CONVERT)
    assert converted(db, value_id)[:2] == (1, Decimal("300"))


# ---------------------------------------------------------------------------
# ConvertInvalidPatientValues: retry after the rules change, attempts, rejection
# ---------------------------------------------------------------------------


def status_of(db, value_id: int) -> tuple:
    return fetch_one(
        db,
        "SELECT ConversionStatus, ConversionAttempts, ReasonCode, ValueNumeric FROM PLSP.Patientvaerdier "
        "WHERE PatientvaerdiId = ?",
        (value_id,),
    )


def test_a_new_unit_mapping_or_a_wider_range_converts_invalid_values_on_retry(db, patient):
    unit, wide, still = add_values(
        db,
        patient,
        [
            ("NPU01568", "100 mg/dL", None, DANISH_SUMMER),
            ("NPU27300", "300", None, DANISH_SUMMER),
            ("NPU27300", "se notat", None, DANISH_SUMMER),
        ],
    )
    run(db, CONVERT)
    assert [status_of(db, i)[:3] for i in (unit, wide, still)] == [
        (2, 1, "unknown_unit"),
        (2, 1, "out_of_range"),
        (2, 1, "not_a_number"),
    ]
    execute(
        db,
        "INSERT INTO PLSP.RelevantVaerdiEnhed (Code, Unit, ActiveFromUtc, AddBefore, MultiplyBy, Description)"
        " VALUES ('NPU01568', 'mg/dL', '2001-01-01', 0, 0.02586, 'LDL mg/dL to mmol/L')",
    )
    execute(db, "UPDATE PLSP.RelevantVaerdi SET MaxValue = 400 WHERE Code = 'NPU27300'")

    result = run(db, CONVERT_INVALID)

    assert (result.result, result.rows) == ("succeeded", 3)
    assert status_of(db, unit) == (1, 2, None, Decimal("2.586"))
    assert status_of(db, wide) == (1, 2, None, Decimal("300"))
    assert status_of(db, still)[:3] == (2, 2, "not_a_number")
    note = scalar(db, "SELECT Note FROM Ops.JobRunBatch WHERE JobRunId = ?", (result.job_run_id,))
    assert note == "converted 2, invalid 1, rejected 0 (not_a_number)"


def test_after_max_attempts_a_value_is_rejected_and_never_retried(db, patient):
    set_setting(db, CONVERT_INVALID.name, "MaxAttempts", "3")
    [value_id] = add_values(db, patient, [("NPU27300", "afventer svar", None, DANISH_SUMMER)])
    run(db, CONVERT)  # attempt 1
    run(db, CONVERT_INVALID)  # attempt 2
    assert status_of(db, value_id)[:2] == (2, 2)
    third = run(db, CONVERT_INVALID)  # attempt 3: given up
    assert status_of(db, value_id)[:3] == (3, 3, "not_a_number")
    note = scalar(db, "SELECT Note FROM Ops.JobRunBatch WHERE JobRunId = ?", (third.job_run_id,))
    assert note.startswith("converted 0, invalid 0, rejected 1")
    assert run(db, CONVERT_INVALID).rows == 0
    assert status_of(db, value_id)[:2] == (3, 3)


def test_new_values_are_not_retried_and_invalid_ones_not_converted_twice(db, patient):
    new, invalid = add_values(
        db, patient, [("NPU27300", "53", None, DANISH_SUMMER), ("NPU27300", "x", None, DANISH_SUMMER)]
    )
    execute(db, "UPDATE PLSP.Patientvaerdier SET ConversionStatus = 2 WHERE PatientvaerdiId = ?", (invalid,))
    assert run(db, CONVERT_INVALID).rows == 1
    assert status_of(db, new)[:2] == (0, 0)


def test_a_malformed_max_attempts_fails_the_run_naming_the_setting(db, patient):
    set_setting(db, CONVERT_INVALID.name, "MaxAttempts", "many")
    add_values(db, patient, [("NPU27300", "x", None, DANISH_SUMMER)])
    execute(db, "UPDATE PLSP.Patientvaerdier SET ConversionStatus = 2")
    from orchestrator.runner import run_job

    result = run_job(db, CONVERT_INVALID, triggered_by="test")
    assert result.result == "failed" and "MaxAttempts" in result.error
