"""Job.relevant_changes_mark v3 (migration 0026, issue 9): an ATC prefix read as a range of
the index PLSP.Medicin (AtcCode COLLATE "C", PatientId), marked in slices of its own setting
(RelevantChangeMarkSlice) instead of the check's batch.

The patients marked are exactly those with medication under the prefix (LIKE prefix || '%',
as version 2 and the check itself match), never a neighbour code's, across slice boundaries,
with the plans PL/pgSQL makes at first (custom) and later (generic: a parameter's LIKE is then
no index condition, which is why the range is written out).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.support.engine import (
    CHECK,
    add_diagnosis,
    add_medication,
    db_now,
    inclusion,
    make_patients,
    quick,
    run,
    set_setting,
    settle_relevant_changes,
)
from tests.support.sql import execute, fetch_all, scalar

HEART = "ALAL02"
# Creation order = PatientId order, so the prefix's patients alternate with their neighbours'
# and every slice boundary falls between two of them. One list per patient.
MEDICATION = [
    ["C10AA05"],  # in
    ["C10AB01"],  # the next ATC level-5 group: out
    ["C10AA"],  # the prefix itself: in
    ["C10A"],  # its parent: out
    ["C10AA01", "C10AA05"],  # in, twice: one patient
    ["C10AB"],  # exactly the range's upper bound: out
    ["C10AA~"],  # a character above every letter and digit: in
    ["C10AC01", "C10"],  # out
    ["C10AB01", "C10AA07"],  # in (and a neighbour of their own)
    ["C09AA05"],  # out
    ["C10AA99"],  # in: the sixth
    ["C10AAB"],  # in: the seventh
]


def like(code: str, prefix: str) -> bool:
    """``code LIKE prefix || '%'`` as PostgreSQL reads it (no escape character in the prefixes here)."""
    pattern = "".join("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in prefix)
    return re.fullmatch(pattern + ".*", code, re.DOTALL) is not None


@pytest.fixture
def engine_db(db):
    quick(db)
    settle_relevant_changes(db)
    return db


def with_medication(db) -> list[int]:
    """One patient per MEDICATION entry, each started 10 days ago; the dirty list then emptied."""
    patients = make_patients(db, len(MEDICATION))
    start = db_now(db).date() - timedelta(days=10)
    for patient, codes in zip(patients, MEDICATION, strict=True):
        for code in codes:
            add_medication(db, patient, code, start)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    return patients


def under(patients: list[int], prefix: str) -> list[int]:
    return [p for p, codes in zip(patients, MEDICATION, strict=True) if any(like(c, prefix) for c in codes)]


def add_rule(db, prefix: str) -> None:
    execute(
        db,
        "INSERT INTO PLSP.RelevantMedicinInklusion "
        "(AtcPrefix, ActiveFromUtc, ForloebCode, Role, Description) VALUES (?, ?, ?, 'include', 'test')",
        (prefix, db_now(db) - timedelta(seconds=1), HEART),
    )


def dirty(db) -> set[int]:
    return {r[0] for r in fetch_all(db, "SELECT PatientId FROM PLSP.PatientInkluderetPending")}


def mark(conn, db, limit=None) -> tuple[int, int, int]:
    out = db.call(
        conn,
        "Job.relevant_changes_mark",
        {"NowUtc": None, "Force": "N", "Execute": "Y", "Limit": limit},
        ("Changes", "Patients", "Waiting"),
    )
    return out["Changes"], out["Patients"], out["Waiting"]


@pytest.mark.parametrize("plans", ["auto", "force_generic_plan"])
def test_the_slices_mark_exactly_the_patients_under_the_atc_prefix(engine_db, plans):
    db = engine_db
    patients = with_medication(db)
    expected = under(patients, "C10AA")
    assert len(expected) == 7 and expected == [patients[i] for i in (0, 2, 4, 6, 8, 10, 11)]
    set_setting(db, CHECK.name, "RelevantChangeMarkSlice", "3")
    add_rule(db, "C10AA")

    with db.connect() as conn:
        execute_on = conn.cursor()
        execute_on.execute(f"SET plan_cache_mode = {plans}")
        assert mark(conn, db) == (0, 3, 0)
        assert dirty(db) == set(expected[:3]), "the first slice ends on the third, before its neighbour"
        assert mark(conn, db) == (0, 3, 0)
        assert dirty(db) == set(expected[:6])
        assert mark(conn, db) == (1, 1, 0)
        assert mark(conn, db) == (0, 0, 0), "nothing due is left"
        execute_on.execute("RESET plan_cache_mode")

    assert dirty(db) == set(expected)
    assert (
        scalar(db, "SELECT Patients FROM PLSP.RelevantChange WHERE AppliedUtc IS NOT NULL AND Code = 'C10AA'")
        == 7
    )


def test_a_slice_of_exactly_the_patients_left_finishes_the_change_on_the_next_call(engine_db):
    db = engine_db
    patients = with_medication(db)
    expected = under(patients, "C10AA")
    add_rule(db, "C10AA")
    with db.connect() as conn:
        assert mark(conn, db, limit=7) == (0, 7, 0)
        assert mark(conn, db, limit=7) == (1, 0, 0)
    assert dirty(db) == set(expected)


@pytest.mark.parametrize("prefix", ["C10AA", "C10AB", "C10A", "C1_AA", "C10A%7", ""])
def test_every_prefix_marks_what_like_matches(engine_db, prefix):
    """A prefix with a LIKE wildcard, or an empty one, takes version 2's scan: the same patients."""
    db = engine_db
    patients = with_medication(db)
    add_rule(db, prefix)
    with db.connect() as conn:
        assert mark(conn, db, limit=2000) == (1, len(under(patients, prefix)), 0)
    assert dirty(db) == set(under(patients, prefix))


def test_the_check_marks_a_slice_of_its_own_setting_not_one_batch(engine_db):
    db = engine_db
    patients = with_medication(db)
    expected = under(patients, "C10AA")
    set_setting(db, CHECK.name, "RelevantChangeMarkSlice", "3")
    add_rule(db, "C10AA")
    with db.connect() as conn:
        out = db.call(conn, "Job.check_inclusion_batch", {"BatchSize": 1, "Execute": "N"}, ("Rows", "Note"))
    assert "Relevant changes would mark 3" in out["Note"], out["Note"]

    for name in ("BatchSizeStart", "BatchSizeMin", "BatchSizeMax"):
        set_setting(db, CHECK.name, name, "2")
    result = run(db, CHECK)
    assert result.rows == 7
    assert set(inclusion(db)) == {(p, HEART) for p in expected}


def test_the_migration_sets_a_slice_of_2000(engine_db):
    assert (
        scalar(
            engine_db,
            "SELECT Value FROM Ops.Setting "
            "WHERE JobName = 'check_inclusion' AND Name = 'RelevantChangeMarkSlice'",
        )
        == "2000"
    )


@pytest.mark.parametrize(
    ("slice_", "limit", "named"),
    [
        ("0", None, "RelevantChangeMarkSlice"),
        ("2001", None, "RelevantChangeMarkSlice"),
        ("a few", None, "RelevantChangeMarkSlice"),
        ("2000", 2001, "p_Limit"),
        ("2000", 0, "p_Limit"),
    ],
)
def test_a_slice_out_of_range_is_refused_naming_it(engine_db, slice_, limit, named):
    db = engine_db
    with_medication(db)
    set_setting(db, CHECK.name, "RelevantChangeMarkSlice", slice_)
    add_rule(db, "C10AA")
    with db.connect() as conn, pytest.raises(Exception, match=named):
        mark(conn, db, limit=limit)
    assert dirty(db) == set()


def test_the_atc_range_is_an_index_condition_in_a_generic_plan(engine_db):
    """The range as the procedure writes it (COLLATE "C", parameters: PL/pgSQL's generic plan)
    is a condition of IX_Medicin_Atc_Patient; a parameter's LIKE alone is not."""
    db = engine_db
    with_medication(db)
    with db.connect() as conn:
        cur = conn.cursor()
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("SET enable_seqscan = off")
        cur.execute(
            "PREPARE by_range (varchar, varchar) AS SELECT DISTINCT m.PatientId FROM PLSP.Medicin AS m "
            'WHERE m.AtcCode COLLATE "C" >= $1 AND m.AtcCode COLLATE "C" < $2 AND m.AtcCode LIKE $1 || \'%\''
        )
        cur.execute(
            "PREPARE by_like (varchar) AS SELECT DISTINCT m.PatientId FROM PLSP.Medicin AS m "
            "WHERE m.AtcCode LIKE $1 || '%'"
        )
        cur.execute("EXPLAIN EXECUTE by_range ('C10AA', 'C10AB')")
        by_range = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("EXPLAIN EXECUTE by_like ('C10AA')")
        by_like = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("DEALLOCATE ALL")
        cur.execute("RESET ALL")
    assert "ix_medicin_atc_patient" in by_range and "Index Cond" in by_range, by_range
    assert "Index Cond" not in by_like, by_like


# (code system, code) per patient, in PatientId order: ICPC-2 K86 and what lies next to it.
DIAGNOSES = [
    ("ICPC2", "K86"),  # in
    ("ICPC2", "K87"),  # the next code: out
    ("ICPC2", "K86~"),  # in
    ("SKS", "K86"),  # the same code in another system: out
    ("ICPC2", "K8"),  # its parent: out
    ("ICPC2", "K861"),  # in
    ("ICPC2", "K85"),  # out
]


@pytest.mark.parametrize("plans", ["auto", "force_generic_plan"])
def test_the_slices_mark_exactly_the_patients_with_a_diagnosis_under_the_prefix(engine_db, plans):
    db = engine_db
    patients = make_patients(db, len(DIAGNOSES))
    today = db_now(db).date()
    for patient, (system, code) in zip(patients, DIAGNOSES, strict=True):
        add_diagnosis(db, patient, code, today - timedelta(days=10), system=system)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    expected = [patients[0], patients[2], patients[5]]
    set_setting(db, CHECK.name, "RelevantChangeMarkSlice", "2")
    execute(
        db,
        "INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) "
        "VALUES ('ICPC2', 'K86', ?, ?, 'test')",
        (db_now(db) - timedelta(seconds=1), HEART),
    )
    with db.connect() as conn:
        cur = conn.cursor()
        cur.execute(f"SET plan_cache_mode = {plans}")
        assert mark(conn, db) == (0, 2, 0)
        assert dirty(db) == set(expected[:2])
        assert mark(conn, db) == (1, 1, 0)
        cur.execute("RESET plan_cache_mode")
    assert dirty(db) == set(expected)


def test_the_diagnosis_range_is_an_index_condition_in_a_generic_plan(engine_db):
    db = engine_db
    with db.connect() as conn:
        cur = conn.cursor()
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("SET enable_seqscan = off")
        cur.execute(
            "PREPARE by_range (varchar, varchar, varchar) AS "
            "SELECT DISTINCT d.PatientId FROM PLSP.Diagnose AS d "
            'WHERE d.CodeSystem = $1 AND d.Code COLLATE "C" >= $2 AND d.Code COLLATE "C" < $3 '
            "AND d.Code LIKE $2 || '%'"
        )
        cur.execute("EXPLAIN EXECUTE by_range ('ICPC2', 'K86', 'K87')")
        plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("DEALLOCATE ALL")
        cur.execute("RESET ALL")
    assert "ix_diagnose_code_patient" in plan and "(code >= " in plan, plan
