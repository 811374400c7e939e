"""Helpers of the AIM pipeline tests and benchmark: pending FLP_AIM rows, statuses, a consumer."""

from __future__ import annotations

import threading
import uuid

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim import settings as aim_settings
from orchestrator.aim.consumer import Consumer
from orchestrator.aim.store import DocumentStore
from orchestrator.queue.database import DatabaseQueue
from tests.support.sql import execute, fetch_all, scalar

# A small population in plain SQL, independent of the seed generator: per
# patient one care plan, its inclusion, values (one unconverted), a diagnosis,
# a medication, two services and a property. CPR numbers are synthetic
# (day 01-28, month 01-12), unique per patient up to 33,600 patients.
POPULATION_SQL = [
    "INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name) VALUES ('990000011000016', '839178', 'Testklinik')",
    "INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex) "
    "SELECT lpad((1 + mod(g, 28))::text, 2, '0') || lpad((1 + mod(g / 28, 12))::text, 2, '0') "
    "|| lpad(mod(g / 336, 100)::text, 2, '0') || lpad(mod(g, 10000)::text, 4, '0'), "
    "(SELECT min(KlinikId) FROM PLSP.Klinik), 'Test', 'Patient ' || g, DATE '1950-01-01' + g, "
    "CASE WHEN mod(g, 2) = 0 THEN 'F' ELSE 'M' END FROM generate_series(1, ?) AS g",
    "INSERT INTO PLSP.Forloebsplan (PatientId, ForloebCode) "
    "SELECT PatientId, (ARRAY['ALAL22', 'ALAL21', 'ALAL02'])[1 + mod(PatientId, 3)::int] FROM PLSP.Patient",
    "INSERT INTO PLSP.PatientInkluderet (PatientId, ForloebCode, IsIncluded, Reason) "
    "SELECT PatientId, ForloebCode, true, 'included: active care plan' FROM PLSP.Forloebsplan",
    "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime, ValueNumeric, Unit, MeasuredUtc, "
    "ConversionStatus, ConvertedUtc) SELECT p.PatientId, c.Code, c.Raw, '2026-06-01', c.Value, c.Unit, "
    "TIMESTAMP '2026-06-01 08:00' - make_interval(days => v.k * 30), 1, TIMESTAMP '2026-06-02 00:00' "
    "FROM PLSP.Patient AS p CROSS JOIN generate_series(0, 3) AS v(k) "
    "CROSS JOIN (VALUES ('NPU27300', '53', 53.0, 'mmol/mol'), ('DNK05472', '142', 142.0, 'mmHg')) "
    "AS c(Code, Raw, Value, Unit)",
    "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, RawTime) "
    "SELECT PatientId, 'NPU03804', '81,5 kg', '24-08-2026' FROM PLSP.Patient",
    "INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate) "
    "SELECT PatientId, 'T90', 'ICPC2', DATE '2019-03-01' FROM PLSP.Patient",
    "INSERT INTO PLSP.Medicin (PatientId, AtcCode, DrugName, StartDate) "
    "SELECT PatientId, 'A10BA02', 'Metformin', DATE '2019-03-02' FROM PLSP.Patient",
    "INSERT INTO PLSP.Ydelser (PatientId, KlinikId, ServiceCode, ServiceDate) "
    "SELECT PatientId, KlinikId, s.Code, DATE '2026-02-11' FROM PLSP.Patient CROSS JOIN "
    "(VALUES ('0120'), ('0101')) AS s(Code)",
    "INSERT INTO PLSP.Egenskaber (PatientId, Code, Value, ValidFromUtc) "
    "SELECT PatientId, 'RYGER', 'nej', TIMESTAMP '2020-01-01 00:00' FROM PLSP.Patient "
    "WHERE mod(PatientId, 4) = 0",
]


def seed_with_pending(db, patients: int = 60, pending: int = 0, seed_value: int = 1) -> list[int]:
    """A small population (``POPULATION_SQL``), then ``pending`` new pending FLP_AIM rows.

    Returns the ids of the pending rows (ascending), the only rows the import may publish.
    ``seed_value`` is kept for callers that vary it; the population is always the same.
    """
    for statement in POPULATION_SQL:
        execute(db, statement, (patients,) if "?" in statement else ())
    if pending:
        add_pending(db, pending)
    return [r[0] for r in fetch_all(db, "SELECT Id FROM PLSP.FLP_AIM WHERE Status = 0 ORDER BY Id")]


def add_pending(db, rows: int) -> None:
    """``rows`` new pending FLP_AIM rows over the existing care plans (round robin)."""
    execute(
        db,
        "INSERT INTO PLSP.FLP_AIM (ForloebsplanId) "
        "SELECT p.ForloebsplanId FROM generate_series(1, ?) AS g(n) "
        "INNER JOIN (SELECT ForloebsplanId, row_number() OVER (ORDER BY ForloebsplanId) - 1 AS k, "
        "count(*) OVER () AS c FROM PLSP.Forloebsplan) AS p ON p.k = mod(g.n - 1, p.c) ORDER BY g.n",
        (rows,),
    )


def status_counts(db) -> dict[int, int]:
    return dict(fetch_all(db, "SELECT Status, count(*) FROM PLSP.FLP_AIM GROUP BY Status"))


def set_setting(db, job: str, name: str, value: str) -> None:
    execute(db, "UPDATE Ops.Setting SET Value = ? WHERE JobName = ? AND Name = ?", (value, job, name))
    assert scalar(db, "SELECT Value FROM Ops.Setting WHERE JobName = ? AND Name = ?", (job, name)) == value


def mongo_collection_name() -> str:
    return f"careplans_{uuid.uuid4().hex[:10]}"


def store_for(db, mongo_url: str, collection: str) -> DocumentStore:
    settings = aim_settings.load(db)
    store = DocumentStore(mongo_url, settings.mongo_database, collection, "1", settings.mongo_timeout_ms)
    store.ensure_indexes()
    return store


def consume_once(db, store, queue_factory=None, max_attempts: int = 5, concurrency: int = 1):
    """Run the consumer until the queue is empty; return its stats."""
    factory = queue_factory or (lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=30))
    consumer = Consumer(db, factory, store, max_attempts=max_attempts, stop=threading.Event())
    return consumer.run(concurrency=concurrency, once=True)
