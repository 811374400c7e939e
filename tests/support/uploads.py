"""The Relevant rows the upload tests rely on (the agreed lists come from the seed in production)."""

from __future__ import annotations

from tests.support.sql import execute

RELEVANT_SQL = """
INSERT INTO PLSP.RelevantVaerdi (Code, ActiveFromUtc, Unit, DataType, MinValue, MaxValue, Description) VALUES
    ('NPU27300', '2000-01-01', 'mmol/mol', 'numeric', 10, 250, 'HbA1c'),
    ('DNK05472', '2000-01-01', 'mmHg', 'numeric', 40, 300, 'Systolisk blodtryk');
INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) VALUES
    ('ICPC2', 'T90', '2000-01-01', 'ALAL22', 'Diabetes type 2'),
    ('SKS', 'DE11', '2000-01-01', 'ALAL22', 'Type 2-diabetes');
INSERT INTO PLSP.RelevantMedicin (AtcPrefix, ActiveFromUtc, ForloebCode, Description) VALUES
    ('A10', '2000-01-01', 'ALAL22', 'Antidiabetika');
INSERT INTO PLSP.RelevantYdelse (ServiceCode, ActiveFromUtc, Description) VALUES
    ('0120', '2000-01-01', 'Aarskontrol'),
    ('0101', '2000-01-01', 'Konsultation');
"""


def load_relevant(db) -> None:
    """Add the codes the upload tests use, unless the migration or seed has them already."""
    for statement in RELEVANT_SQL.strip().split(";"):
        if statement.strip():
            table = statement.split()[2]
            execute(db, f"DELETE FROM {table} WHERE ActiveFromUtc = '2000-01-01'")
            execute(db, statement)
