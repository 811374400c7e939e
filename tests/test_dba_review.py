"""Findings of the DBA review of migrations 0021-0024 (this session), tested on PostgreSQL.

Each test names its finding as /tmp/dba_review.md and the commit that fixed it do.
"""

from __future__ import annotations

import json

from tests.support.aim import seed_with_pending
from tests.support.sql import execute, scalar

OUTPUTS = ("Documents", "Found", "AlreadyDelivered", "Missing")
CODE = "NPU27300"


def test_f8_a_value_without_a_measured_time_comes_first_in_its_code_as_on_sql_server(db):
    """F8: SQL Server sorts NULL first; PostgreSQL sorted it last, so the two engines built the
    document's values list in different orders. PostgreSQL now sorts it NULLS FIRST."""
    (aim_id,) = seed_with_pending(db, patients=5, pending=1)
    patient = scalar(
        db,
        "SELECT f.PatientId FROM PLSP.FLP_AIM AS a JOIN PLSP.Forloebsplan AS f "
        "ON f.ForloebsplanId = a.ForloebsplanId WHERE a.Id = ?",
        (aim_id,),
    )
    execute(db, "DELETE FROM PLSP.Patientvaerdier WHERE PatientId = ?", (patient,))
    now = "now() AT TIME ZONE 'UTC'"
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, ValueNumeric, MeasuredUtc, "
        f"ConversionStatus, ReceivedUtc) VALUES (?, '{CODE}', '53', 53, {now} - interval '1 day', 1, {now}), "
        f"(?, '{CODE}', 'x', NULL, NULL, 2, {now})",
        (patient, patient),
    )
    with db.connect() as conn:
        out = db.call(conn, "Job.aim_documents", {"Ids": json.dumps([aim_id])}, OUTPUTS)
    (document,) = json.loads(out["Documents"])
    assert [v["rawValue"] for v in document["values"] if v["code"] == CODE] == ["x", "53"]
