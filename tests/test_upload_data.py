"""Upload.upload_data on PostgreSQL: one test per validation rule, idempotence, atomicity, raw text kept."""

from __future__ import annotations

import copy
from datetime import datetime

import pytest

from orchestrator.http import store
from tests.support.sql import execute, scalar
from tests.support.uploads import load_relevant

NOW = datetime(2025, 6, 15, 12, 0)  # validation is judged at a passed 'now', not today
SOR, YDER = "123456", "654321"
CPR = "0101701235"  # 1 January 1970, seventh digit 1: 1900s; last digit odd: male

DOC = {
    "cpr": CPR,
    "givenName": "Test",
    "familyName": "Person",
    "values": [{"code": "NPU27300", "value": "53,5", "unit": "mmol/mol", "time": "24-08-2024"}],
    "diagnoses": [{"codeSystem": "ICPC2", "code": "T90", "diagnosedDate": "2020-01-01", "endedDate": None}],
    "medication": [
        {"atcCode": "A10BA02", "drugName": "Metformin", "startDate": "2020-02-01", "endDate": None}
    ],
    "services": [{"serviceCode": "0120", "serviceDate": "2024-08-24"}],
    "properties": [{"code": "FRAVALGT", "value": None, "validFrom": "2026-01-01", "validTo": None}],
}


@pytest.fixture(autouse=True)
def relevant(db):
    load_relevant(db)


def upload(db, *docs, now=NOW, **kw):
    return store.upload(db, SOR, YDER, {"patients": list(docs)}, now=now, **kw)


def with_(path: str, value, base=DOC):
    doc = copy.deepcopy(base)
    *parts, last = path.split(".")
    target = doc
    for p in parts:
        target = target[int(p)] if p.isdigit() else target[p]
    target[last] = value
    return doc


def counts(db) -> dict[str, int]:
    tables = ["Patient", "Patientvaerdier", "Diagnose", "Medicin", "Ydelser", "Egenskaber"]
    return {t: scalar(db, f"SELECT count(*) FROM PLSP.{t}") for t in tables}


def test_a_valid_document_is_stored_with_raw_text_and_a_new_patient(db):
    out = upload(db, DOC)
    assert out["result"] == "accepted" and out["errors"] == []
    assert (out["inserted"], out["updated"], out["unchanged"]) == (5, 0, 0)
    raw = scalar(db, "SELECT RawValue || '|' || RawTime || '|' || ConversionStatus FROM PLSP.Patientvaerdier")
    assert raw == "53,5|24-08-2024|0"
    assert (
        scalar(db, "SELECT BirthDate::text || Sex FROM PLSP.Patient WHERE Cpr = %s", (CPR,)) == "1970-01-01M"
    )
    assert scalar(db, "SELECT Uploads FROM Ops.UploadStatistic WHERE SorCode = %s", (SOR,)) == 1


def test_an_unchanged_resync_writes_nothing_and_marks_nobody_dirty(db):
    upload(db, DOC)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    out = upload(db, DOC)
    assert (out["inserted"], out["updated"], out["unchanged"]) == (0, 0, 5)
    assert scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderetPending") == 0
    assert scalar(db, "SELECT max(ReceivedUtc) FROM PLSP.Diagnose") is not None


def test_a_changed_row_is_updated_in_place_and_marks_the_patient(db):
    upload(db, DOC)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    out = upload(db, with_("diagnoses.0.endedDate", "2024-01-01"))
    assert (out["inserted"], out["updated"], out["unchanged"]) == (0, 1, 4)
    assert scalar(db, "SELECT count(*) FROM PLSP.Diagnose") == 1
    assert scalar(db, "SELECT EndedDate::text FROM PLSP.Diagnose") == "2024-01-01"
    assert scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderetPending") == 1


def test_a_changed_value_goes_back_to_conversion(db):
    upload(db, DOC)
    execute(db, "UPDATE PLSP.Patientvaerdier SET ConversionStatus = 1, ValueNumeric = 53.5")
    out = upload(db, with_("values.0.value", "54"))
    assert out["updated"] == 1
    assert scalar(db, "SELECT RawValue || ConversionStatus FROM PLSP.Patientvaerdier") == "540"


def reasons(out) -> set[tuple]:
    return {(e["document"], e["field"], e["row"], e["reason"]) for e in out["errors"]}


@pytest.mark.parametrize(
    ("path", "value", "field", "row", "reason"),
    [
        ("cpr", "01017012", "cpr", None, "cpr_format"),
        ("cpr", "010170123X", "cpr", None, "cpr_format"),
        ("cpr", "3102701235", "cpr", None, "cpr_date"),  # 31 February
        ("cpr", "0101305235", "cpr", None, "cpr_date"),  # seventh digit 5, year 30: 2030, after now
        ("givenName", "x" * 101, "givenName", None, "too_long"),
        ("values.0.code", "NPU99999", "values.code", 0, "unknown_code"),
        ("values.0.code", "", "values.code", 0, "missing"),
        ("values.0.unit", "furlongs", "values.unit", 0, "unknown_unit"),
        ("values.0.time", " ", "values.time", 0, "missing"),
        ("diagnoses.0.codeSystem", "ICD9", "diagnoses.codeSystem", 0, "unknown_code_system"),
        ("diagnoses.0.code", "A01", "diagnoses.code", 0, "unknown_code"),
        ("diagnoses.0.diagnosedDate", "2020-02-30", "diagnoses.diagnosedDate", 0, "bad_date"),
        ("diagnoses.0.diagnosedDate", "01-01-2020", "diagnoses.diagnosedDate", 0, "bad_date"),
        ("diagnoses.0.diagnosedDate", "2025-06-16", "diagnoses.diagnosedDate", 0, "future_date"),
        ("diagnoses.0.diagnosedDate", "1969-12-31", "diagnoses.diagnosedDate", 0, "before_birth"),
        ("diagnoses.0.endedDate", "2019-12-31", "diagnoses.endedDate", 0, "end_before_start"),
        ("medication.0.atcCode", "N02BE01", "medication.atcCode", 0, "unknown_code"),
        ("medication.0.endDate", "2020-13-01", "medication.endDate", 0, "bad_date"),
        ("services.0.serviceCode", "9999", "services.serviceCode", 0, "unknown_code"),
        ("services.0.serviceDate", "2030-01-01", "services.serviceDate", 0, "future_date"),
        ("properties.0.code", "ALIVE", "properties.code", 0, "unknown_code"),
        ("properties.0.validFrom", "", "properties.validFrom", 0, "missing"),
    ],
)
def test_each_rule_rejects_the_document_naming_field_row_and_reason(db, path, value, field, row, reason):
    before = counts(db)
    out = upload(db, with_(path, value))
    assert (0, field, row, reason) in reasons(out), out["errors"]
    assert out["result"] == "rejected" and out["inserted"] == 0
    assert counts(db) == before  # atomic per document: nothing of it written


def test_a_property_may_start_in_the_future_and_the_boundary_day_is_today(db):
    out = upload(db, with_("diagnoses.0.diagnosedDate", "2025-06-15"))
    assert out["result"] == "accepted", out["errors"]


def test_a_replacement_cpr_number_with_day_plus_60_is_accepted(db):
    out = upload(db, with_("cpr", "6101701236"))
    assert out["result"] == "accepted", out["errors"]
    assert scalar(db, "SELECT Sex FROM PLSP.Patient") == "F"


def test_modulus_11_is_not_required(db):
    # 0101701235 fails modulus 11 (weights 4,3,2,7,6,5,4,3,2,1 give 155): still accepted.
    assert sum(int(d) * w for d, w in zip(CPR, (4, 3, 2, 7, 6, 5, 4, 3, 2, 1), strict=True)) % 11 != 0
    assert upload(db, DOC)["result"] == "accepted"


def test_every_error_is_returned_together_and_only_bad_documents_are_rejected(db):
    bad = with_("values.0.code", "NPU99999", with_("services.0.serviceDate", "2030-01-01"))
    bad["cpr"] = "0202702235"
    bad["diagnoses"].append(copy.deepcopy(bad["diagnoses"][0]))  # the same key twice
    out = upload(db, DOC, bad)
    assert out["result"] == "partly_accepted"
    assert (out["documents"], out["rejectedDocuments"]) == (2, 1)
    assert reasons(out) == {
        (1, "values.code", 0, "unknown_code"),
        (1, "services.serviceDate", 0, "future_date"),
        (1, "diagnoses", 1, "duplicate_row"),
    }
    assert scalar(db, "SELECT count(*) FROM PLSP.Patient") == 1
    assert "0202702235" not in str(out["errors"])
    rejected = scalar(db, "SELECT sum(RowsRejected) FROM Ops.UploadRejection WHERE SorCode = %s", (SOR,))
    assert rejected == 3


def test_the_same_patient_twice_in_one_upload_is_rejected(db):
    out = upload(db, DOC, DOC)
    assert (1, "cpr", None, "duplicate_patient") in reasons(out)


def test_a_dry_run_validates_and_writes_nothing(db):
    before = counts(db)
    out = upload(db, DOC, execute=False)
    assert out["result"] == "dry_run" and out["inserted"] == 5
    assert counts(db) == before


def test_a_malformed_document_is_a_parameter_error_naming_it(db):
    import psycopg

    for text in ["not json", "[]", '{"patients": []}', '{"patients": 3}']:
        with pytest.raises(psycopg.Error, match="p_Document"):
            store.upload(db, SOR, YDER, text, now=NOW)


def test_bad_parameters_are_named_together(db):
    import psycopg

    with pytest.raises(psycopg.Error) as err:
        store.upload(db, "12a", "", {"patients": [DOC]}, now=NOW)
    assert "p_SorCode" in str(err.value) and "p_Ydernummer" in str(err.value)


def test_statistics_per_lps_and_day_are_read_by_the_monitor_procedure_and_shown_in_status(db):
    from datetime import date

    from orchestrator import status

    upload(db, DOC, now=None)
    upload(db, DOC, with_("values.0.code", "NPU99999", {**DOC, "cpr": "0202702235"}), now=None)
    with db.connect() as conn:
        rows = db.rows(
            conn, "Monitor.upload_statistics", {"FromDay": date(2000, 1, 1), "ToDay": date(2000, 1, 5)}
        )
    assert rows == []
    (row,) = status.overview(db)["uploads"]
    assert (row["sor"], row["uploads"], row["documents"], row["rejected_documents"]) == (SOR, 2, 3, 1)
    assert (row["rows_inserted"], row["rows_unchanged"], row["rows_rejected"]) == (5, 5, 5)
    assert row["no_op_share"] == 0.5 and row["rejected_by_reason"] == "unknown_code=1"


def test_the_statistics_read_names_a_bad_range(db):
    from datetime import date

    import psycopg

    with db.connect() as conn, pytest.raises(psycopg.Error, match="p_ToDay"):
        db.rows(conn, "Monitor.upload_statistics", {"FromDay": date(2025, 1, 1), "ToDay": date(2025, 6, 1)})


def test_a_resync_batch_mixing_unchanged_and_changed_documents_writes_only_the_changes(db):
    other = {**copy.deepcopy(DOC), "cpr": "0202702235"}
    upload(db, DOC, other)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    changed = with_("services.0.serviceDate", "2024-09-01", other)  # a new service row (a new key)
    out = upload(db, DOC, changed)
    assert (out["inserted"], out["updated"], out["unchanged"]) == (1, 0, 9)
    assert scalar(db, "SELECT count(*) FROM PLSP.Ydelser") == 3
    assert scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderetPending") == 1  # only the changed patient
    # And back: the original document is no longer the stored one, so it is read row by row.
    out = upload(db, other)
    assert (out["inserted"], out["unchanged"]) == (0, 5)
