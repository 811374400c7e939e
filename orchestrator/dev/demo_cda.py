"""``flp demo``'s CDA step: one patient's current DK-CPD document written to a file and validated."""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.cda import documents, schema
from orchestrator.config import Settings
from orchestrator.db.connection import Database


def first_patient_cpr(db: Database, conn) -> str | None:
    """The first patient (by id) whose care plan has values: read through the Api procedure only."""
    cur = conn.cursor()
    try:
        # The demo owns its database; the seed's patients are read by id, the CPR never printed.
        cur.execute(
            "SELECT p.Cpr FROM PLSP.Patient AS p WHERE EXISTS (SELECT 1 FROM PLSP.Patientvaerdier AS v "
            "WHERE v.PatientId = p.PatientId AND v.ConversionStatus = 1) ORDER BY p.PatientId LIMIT 1"
        )
        row = cur.fetchone()
    finally:
        cur.close()
    return None if row is None else row[0]


def step(settings: Settings, db: Database, step_type):
    """(Step, path or None, message): the document under data_dir/cda/, with the schema's verdict."""
    started = time.perf_counter()
    with db.connect() as conn:
        cpr = first_patient_cpr(db, conn)
        docs = [] if cpr is None else documents.for_citizen(db, conn, cpr)[1]
    if not docs:
        return step_type("cda", "failed", None, time.perf_counter() - started), None, "no patient with values"
    doc = max(docs, key=lambda d: len(d.plan.values))
    folder = Path(settings.data_dir) / "cda"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"careplan-{doc.plan.code}-{str(doc.plan.set_id)[:8]}-v{doc.version.number}.xml"
    body = doc.to_bytes()
    path.write_bytes(body)
    try:
        problems = schema.problems(body, settings.cda_schema_dir)
    except schema.SchemaMissingError as exc:
        result, message = "not validated", str(exc)
    else:
        result = "ok" if not problems else "failed"
        message = "valid against the HL7 CDA R2 SDTC schema" if not problems else "; ".join(problems[:3])
    return step_type("cda", result, len(doc.plan.values), time.perf_counter() - started), path, message
