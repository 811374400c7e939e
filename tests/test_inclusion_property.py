"""The FLP engine's property (issue 9): after any sequence of changes to values, diagnoses,
medication, services, properties and Relevant rows, with incremental runs of the inclusion
check in between, the incremental state equals a full recompute.

Two checks per example, after the dirty list is drained:
  * a full recompute (every patient evaluated again) changes nothing: no state, reason,
    evidence, history row or AIM report;
  * evaluating every patient from an empty state gives exactly the same included patients,
    reasons and evidence.
Examples are bounded (few patients, short sequences) so the test takes well under 30 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.engine import (
    CHECK,
    add_diagnosis,
    add_medication,
    add_property,
    add_service,
    add_value,
    db_now,
    make_patients,
    quick,
    run,
    settle_relevant_changes,
)
from tests.support.sql import execute, fetch_all, scalar

PATIENTS = 5
MARK = "property test"  # Description of the Relevant rows an example adds
DATA_TABLES = ("Diagnose", "Medicin", "Patientvaerdier", "Egenskaber", "Ydelser")

patient = st.integers(0, PATIENTS - 1)
days = st.integers(-800, 40)
maybe_days = st.none() | st.integers(-400, 400)

DIAGNOSES = ["T90", "R95", "K74", "DE11", "DI21", "K86"]
DRUGS = ["A10BA02", "A10BJ06", "R03AC02", "C10AA05"]
PROPERTIES = ["FRAVALGT", "DOED", "ANDET"]
RULE_CHANGES = ["statins include", "K86 includes", "A10 ends", "opt-out ends", "threshold 50"]
hours = st.integers(-48, 48)
maybe_hours = st.none() | st.integers(-48, 96)
nothing = st.none()

change = st.one_of(
    st.tuples(st.just("diagnosis"), patient, st.sampled_from(DIAGNOSES), days, maybe_days),
    st.tuples(st.just("medication"), patient, st.sampled_from(DRUGS), days, maybe_days),
    st.tuples(st.just("value"), patient, st.integers(40, 60), days, st.sampled_from([None, None, "<", ">"])),
    st.tuples(st.just("property"), patient, st.sampled_from(PROPERTIES), hours, maybe_hours),
    st.tuples(st.just("service"), patient, st.sampled_from(["0120", "0101"]), st.integers(-400, 0), nothing),
    st.tuples(st.just("delete"), patient, st.sampled_from(DATA_TABLES), nothing, nothing),
    st.tuples(st.just("end diagnosis"), patient, nothing, nothing, nothing),
    st.tuples(st.just("relevant"), st.just(0), st.sampled_from(RULE_CHANGES), nothing, nothing),
)
step = st.tuples(change, st.booleans())  # the change, and whether the check runs right after it


def reset(db, patients: list[int]) -> None:
    """Every patient without data or inclusion state; the Relevant lists as migrated."""
    for table in (*DATA_TABLES, "PatientInkluderet_History", "PatientInkluderet", "PatientInkluderetPending"):
        execute(db, f"DELETE FROM PLSP.{table}")
    execute(db, "DELETE FROM PLSP.FLP_AIM")
    execute(db, "DELETE FROM PLSP.Forloebsplan")
    execute(db, "DELETE FROM PLSP.InclusionSweep")
    for table in (
        "RelevantMedicinInklusion",
        "RelevantDiagnose",
        "RelevantVaerdiInklusion",
        "RelevantEgenskab",
    ):
        execute(db, f"DELETE FROM PLSP.{table} WHERE Description = ?", (MARK,))
        execute(db, f"UPDATE PLSP.{table} SET ActiveToUtc = NULL WHERE ActiveToUtc IS NOT NULL")
    settle_relevant_changes(db)


def apply(db, patients: list[int], change: tuple) -> None:
    kind, who, what, a, b = change
    p = patients[who]
    now = db_now(db)
    today = now.date()
    if kind == "diagnosis":
        add_diagnosis(
            db, p, what, today + timedelta(days=a), None if b is None else today + timedelta(days=b)
        )
    elif kind == "medication":
        add_medication(
            db, p, what, today + timedelta(days=a), None if b is None else today + timedelta(days=b)
        )
    elif kind == "value":
        add_value(db, p, "NPU27300", what, now + timedelta(days=a), comparator=b)
    elif kind == "property":
        add_property(db, p, what, now + timedelta(hours=a), None if b is None else now + timedelta(hours=b))
    elif kind == "service":
        add_service(db, p, what, today + timedelta(days=a))
    elif kind == "delete":
        execute(
            db,
            f"DELETE FROM PLSP.{what} WHERE ctid = "
            f"(SELECT ctid FROM PLSP.{what} WHERE PatientId = ? LIMIT 1)",
            (p,),
        )
    elif kind == "end diagnosis":
        execute(db, "UPDATE PLSP.Diagnose SET EndedDate = ? WHERE PatientId = ?", (today, p))
    elif what == "statins include":
        execute(
            db,
            "INSERT INTO PLSP.RelevantMedicinInklusion "
            "(AtcPrefix, ActiveFromUtc, ForloebCode, Role, Description) "
            "VALUES ('C10AA', ?, 'ALAL02', 'include', ?) ON CONFLICT DO NOTHING",
            (now - timedelta(seconds=1), MARK),
        )
    elif what == "K86 includes":
        execute(
            db,
            "INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) "
            "VALUES ('ICPC2', 'K86', ?, 'ALAL02', ?) ON CONFLICT DO NOTHING",
            (now - timedelta(seconds=1), MARK),
        )
    elif what == "A10 ends":
        execute(
            db, "UPDATE PLSP.RelevantMedicinInklusion SET ActiveToUtc = ? WHERE AtcPrefix = 'A10'", (now,)
        )
    elif what == "opt-out ends":
        execute(db, "UPDATE PLSP.RelevantEgenskab SET ActiveToUtc = ? WHERE Code = 'FRAVALGT'", (now,))
    else:  # a stricter threshold, as a newer version of the rule
        execute(
            db,
            "INSERT INTO PLSP.RelevantVaerdiInklusion "
            "(Code, ForloebCode, ActiveFromUtc, Threshold, MinCount, WindowMonths, Description) "
            "VALUES ('NPU27300', 'ALAL22', ?, 50, 2, 24, ?) ON CONFLICT DO NOTHING",
            (now - timedelta(seconds=1), MARK),
        )


def drain(db) -> None:
    for _ in range(20):
        if run(db, CHECK).rows == 0:
            return
    raise AssertionError("the dirty list did not drain")


def state(db) -> set[tuple]:
    return set(
        fetch_all(
            db, "SELECT PatientId, ForloebCode, IsIncluded, Reason, Evidence FROM PLSP.PatientInkluderet"
        )
    )


def counts(db) -> tuple[int, int]:
    return (
        scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderet_History"),
        scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM"),
    )


def full_recompute(db) -> None:
    with db.connect() as conn:
        out = db.call(conn, "Job.inclusion_recompute", {"Force": "Y"}, ("Patients", "Result"))
    assert out["Result"] == "requested"
    drain(db)


@pytest.fixture
def engine_db(db):
    quick(db)
    return db, make_patients(db, PATIENTS)


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_incremental_inclusion_equals_a_full_recompute(engine_db, steps):
    db, patients = engine_db
    reset(db, patients)
    for change_, check_now in steps:
        apply(db, patients, change_)
        if check_now:
            run(db, CHECK)
    drain(db)
    incremental, before = state(db), counts(db)

    full_recompute(db)
    assert state(db) == incremental, "a full recompute changed the state"
    assert counts(db) == before, "a full recompute wrote history or AIM rows"

    # From nothing: the same included patients, for the same reasons and evidence.
    execute(db, "DELETE FROM PLSP.PatientInkluderet")
    full_recompute(db)
    assert {row for row in state(db) if row[2]} == {row for row in incremental if row[2]}
