"""CheckPatientInkluded (issue 9): one hand test per rule, the dirty list, the budget, AIM rows,
Relevant-list changes with the off-hours window, and the full recompute.

Every time is relative to the database's clock (``db_now``), or an explicit UTC
instant passed as the procedures' 'now', so the tests pass on every day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestrator.runner import run_job
from tests.support.engine import (
    CHECK,
    add_diagnosis,
    add_medication,
    add_property,
    add_service,
    add_value,
    db_now,
    inclusion,
    make_patients,
    quick,
    run,
    set_setting,
    settle_relevant_changes,
)
from tests.support.sql import execute, fetch_all, scalar

DIABETES, KOL, HEART = "ALAL22", "ALAL21", "ALAL02"
# Explicit instants for the window rule (Europe/Copenhagen is UTC+1 in January).
WEDNESDAY_NOON = datetime(2030, 1, 9, 11, 0)  # 12:00 local: GPs' working hours
WEDNESDAY_LATE = datetime(2030, 1, 9, 21, 30)  # 22:30 local: off-hours
THURSDAY_EARLY = datetime(2030, 1, 10, 4, 59)  # 05:59 local: still off-hours
THURSDAY_SIX = datetime(2030, 1, 10, 5, 0)  # 06:00 local: working hours again
SATURDAY_NOON = datetime(2030, 1, 12, 11, 0)  # weekend
SUMMER_LATE = datetime(2030, 7, 10, 20, 30)  # 22:30 local in summer time (UTC+2)


@pytest.fixture
def engine_db(db):
    quick(db)
    settle_relevant_changes(db)
    return db


def aim_rows(db, patient: int) -> int:
    return scalar(
        db,
        "SELECT count(*) FROM PLSP.FLP_AIM AS a JOIN PLSP.Forloebsplan AS f USING (ForloebsplanId) "
        "WHERE f.PatientId = ?",
        (patient,),
    )


def history(db, patient: int) -> list[tuple]:
    return fetch_all(
        db,
        "SELECT ForloebCode, IsIncluded, Reason FROM PLSP.PatientInkluderet_History WHERE PatientId = ? "
        "ORDER BY HistoryId",
        (patient,),
    )


def dirty(db) -> set[int]:
    return {
        r[0]
        for r in fetch_all(db, "SELECT PatientId FROM PLSP.PatientInkluderetPending WHERE DueUtc <= now()")
    }


# ---------------------------------------------------------------------------
# The rules, one by one
# ---------------------------------------------------------------------------


def test_include_by_diagnosis_with_history_care_plan_and_an_aim_report(engine_db):
    db = engine_db
    [p] = make_patients(db, 1)
    today = db_now(db).date()
    add_diagnosis(db, p, "T90", today - timedelta(days=400))
    add_diagnosis(db, p, "DI25", today - timedelta(days=30))  # SKS prefix DI25 includes into heart disease

    result = run(db, CHECK)

    assert (result.result, result.rows) == ("succeeded", 1)
    assert inclusion(db, p) == {
        (p, DIABETES): (True, "included: diagnosis", "diagnosis ICPC2 T90"),
        (p, HEART): (True, "included: diagnosis", "diagnosis SKS DI25"),
    }
    assert sorted(history(db, p)) == [
        (HEART, True, "included: diagnosis"),
        (DIABETES, True, "included: diagnosis"),
    ]
    assert aim_rows(db, p) == 2
    assert scalar(db, "SELECT count(*) FROM PLSP.Forloebsplan WHERE PatientId = ? AND Status = 1", (p,)) == 2
    assert dirty(db) == set()


def test_a_diagnosis_not_in_the_lists_or_diagnosed_in_the_future_includes_nobody(engine_db):
    db = engine_db
    [p, q] = make_patients(db, 2)
    today = db_now(db).date()
    add_diagnosis(db, p, "K86", today - timedelta(days=10))  # hypertension: not relevant
    add_diagnosis(db, q, "R95", today + timedelta(days=3))
    run(db, CHECK)
    assert inclusion(db) == {}
    due = scalar(db, "SELECT DueUtc FROM PLSP.PatientInkluderetPending WHERE PatientId = ?", (q,))
    assert due == datetime.combine(today + timedelta(days=3), datetime.min.time()), "checked again on the day"


def test_include_by_medication_dispensed_in_the_last_twelve_months(engine_db):
    db = engine_db
    running, recent, old, excluded, kol = make_patients(db, 5)
    today = db_now(db).date()
    add_medication(db, running, "A10BA02", today - timedelta(days=900))
    add_medication(db, recent, "A10BK01", today - timedelta(days=900), today - timedelta(days=200))
    add_medication(db, old, "A10BA02", today - timedelta(days=900), today - timedelta(days=400))
    add_medication(db, excluded, "A10BJ06", today - timedelta(days=30))  # semaglutide: an exclusion prefix
    add_medication(db, kol, "R03AC02", today - timedelta(days=30))  # relevant, but includes nobody

    run(db, CHECK)

    assert inclusion(db) == {
        (running, DIABETES): (True, "included: medication", "medication A10BA02"),
        (recent, DIABETES): (True, "included: medication", "medication A10BK01"),
    }


def test_include_by_two_hba1c_values_over_the_threshold_within_24_months(engine_db):
    db = engine_db
    two, one, spread, below, censored = make_patients(db, 5)
    now = db_now(db)
    for value, days in ((53, 30), (49, 500)):
        add_value(db, two, "NPU27300", value, now - timedelta(days=days))
    add_value(db, one, "NPU27300", 60, now - timedelta(days=30))
    add_value(db, one, "NPU27300", 47, now - timedelta(days=60))
    add_value(db, spread, "NPU27300", 60, now - timedelta(days=30))
    add_value(db, spread, "NPU27300", 60, now - timedelta(days=760))  # older than 24 months
    add_value(db, below, "NPU27300", 47.9, now - timedelta(days=30))
    add_value(db, below, "NPU27300", 47.9, now - timedelta(days=60))
    add_value(db, censored, "NPU27300", 50, now - timedelta(days=30), comparator="<")
    add_value(db, censored, "NPU27300", 50, now - timedelta(days=60))

    run(db, CHECK)

    assert inclusion(db) == {(two, DIABETES): (True, "included: values", "values NPU27300 x2")}


def test_exclude_by_opt_out_and_again_included_when_it_ends(engine_db):
    db = engine_db
    [p] = make_patients(db, 1)
    now = db_now(db)
    add_diagnosis(db, p, "R95", now.date() - timedelta(days=100))
    run(db, CHECK)
    assert aim_rows(db, p) == 1

    opt_out = add_property(db, p, "FRAVALGT", now - timedelta(hours=1))
    run(db, CHECK)
    assert inclusion(db, p) == {(p, KOL): (False, "excluded: property FRAVALGT", "diagnosis ICPC2 R95")}

    execute(db, "UPDATE PLSP.Egenskaber SET ValidToUtc = ? WHERE EgenskabId = ?", (now, opt_out))
    run(db, CHECK)
    assert inclusion(db, p)[(p, KOL)][:2] == (True, "included: diagnosis")
    assert history(db, p) == [
        (KOL, True, "included: diagnosis"),
        (KOL, False, "excluded: property FRAVALGT"),
        (KOL, True, "included: diagnosis"),
    ]
    assert aim_rows(db, p) == 2, "a new inclusion reports again"


def test_deceased_or_moved_excludes_from_every_plan_and_a_future_property_waits_for_its_day(engine_db):
    db = engine_db
    dead, moving = make_patients(db, 2)
    now = db_now(db)
    for p in (dead, moving):
        add_diagnosis(db, p, "T90", now.date() - timedelta(days=100))
        add_diagnosis(db, p, "K74", now.date() - timedelta(days=100))
    run(db, CHECK)
    add_property(db, dead, "DOED", now - timedelta(days=1))
    add_property(db, moving, "FLYTTET", now + timedelta(days=5))
    run(db, CHECK)
    assert {k: v[:2] for k, v in inclusion(db).items()} == {
        (dead, DIABETES): (False, "excluded: property DOED"),
        (dead, HEART): (False, "excluded: property DOED"),
        (moving, DIABETES): (True, "included: diagnosis"),
        (moving, HEART): (True, "included: diagnosis"),
    }
    due = scalar(db, "SELECT DueUtc FROM PLSP.PatientInkluderetPending WHERE PatientId = ?", (moving,))
    assert abs(due - (now + timedelta(days=5))) < timedelta(seconds=1)


def test_exclude_by_an_ended_diagnosis(engine_db):
    db = engine_db
    [p] = make_patients(db, 1)
    today = db_now(db).date()
    diagnosis = add_diagnosis(db, p, "K75", today - timedelta(days=100))
    run(db, CHECK)
    execute(db, "UPDATE PLSP.Diagnose SET EndedDate = ? WHERE DiagnoseId = ?", (today, diagnosis))
    run(db, CHECK)
    assert inclusion(db, p) == {(p, HEART): (False, "excluded: no evidence", None)}
    assert history(db, p)[-1] == (HEART, False, "excluded: no evidence")


def test_exclude_when_the_evidence_grows_old(engine_db):
    db = engine_db
    [p] = make_patients(db, 1)
    now = db_now(db)
    first = add_value(db, p, "NPU27300", 55, now - timedelta(days=600))
    add_value(db, p, "NPU27300", 58, now - timedelta(days=300))
    run(db, CHECK)
    assert inclusion(db, p)[(p, DIABETES)][:2] == (True, "included: values")
    # Nothing changes by itself until the older value leaves its 24-month window: then it is due again.
    due = scalar(db, "SELECT DueUtc FROM PLSP.PatientInkluderetPending WHERE PatientId = ?", (p,))
    measured = scalar(db, "SELECT MeasuredUtc FROM PLSP.Patientvaerdier WHERE PatientvaerdiId = ?", (first,))
    assert due == scalar(db, "SELECT ?::timestamp + INTERVAL '24 months'", (measured,))
    assert run(db, CHECK).rows == 0, "not due before then"

    # Time passes (the value is five months older, past its window): the evidence is gone.
    older = "UPDATE PLSP.Patientvaerdier SET MeasuredUtc = MeasuredUtc - INTERVAL '5 months' "
    older += "WHERE PatientvaerdiId = ?"
    execute(db, older, (first,))
    run(db, CHECK)
    assert inclusion(db, p)[(p, DIABETES)][:2] == (False, "excluded: no evidence")


def test_the_annual_check_of_an_included_patient_adds_one_aim_report(engine_db):
    db = engine_db
    [p] = make_patients(db, 1)
    today = db_now(db).date()
    add_diagnosis(db, p, "T90", today - timedelta(days=800))
    add_service(db, p, "0120", today - timedelta(days=365))  # before the inclusion: reported with it
    run(db, CHECK)
    assert aim_rows(db, p) == 1

    add_service(db, p, "0101", today)  # a consultation: no report
    run(db, CHECK)
    assert aim_rows(db, p) == 1
    add_service(db, p, "0120", today)
    run(db, CHECK)
    assert aim_rows(db, p) == 2
    execute(
        db, "INSERT INTO PLSP.PatientInkluderetPending (PatientId) VALUES (?) ON CONFLICT DO NOTHING", (p,)
    )
    run(db, CHECK)
    assert aim_rows(db, p) == 2, "the same annual check is reported once"


# ---------------------------------------------------------------------------
# Only what changed, under a budget
# ---------------------------------------------------------------------------


def test_only_dirty_patients_are_evaluated(engine_db):
    db = engine_db
    patients = make_patients(db, 20)
    today = db_now(db).date()
    for p in patients:
        add_diagnosis(db, p, "T90", today - timedelta(days=100))
    assert run(db, CHECK).rows == 20
    assert run(db, CHECK).rows == 0
    add_medication(db, patients[3], "A10BA02", today)
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue) VALUES (?, 'NPU27300', '53')",
        (patients[4],),
    )  # fmt: skip  (a raw, unconverted value changes nothing)
    assert dirty(db) == {patients[3]}
    assert run(db, CHECK).rows == 1


def test_a_run_stops_at_its_budget_and_the_next_run_goes_on(engine_db):
    db = engine_db
    set_setting(db, CHECK.name, "MaxPatientsPerRun", "7")
    set_setting(db, CHECK.name, "BatchSizeStart", "3")
    set_setting(db, CHECK.name, "BatchSizeMin", "3")
    set_setting(db, CHECK.name, "BatchSizeMax", "3")
    patients = make_patients(db, 10)
    for p in patients:
        add_diagnosis(db, p, "R95", db_now(db).date())
    assert [run(db, CHECK).rows for _ in range(3)] == [7, 3, 0]
    assert len(inclusion(db)) == 10


def test_dry_run_counts_the_due_patients_and_writes_nothing(engine_db):
    db = engine_db
    patients = make_patients(db, 3)
    for p in patients:
        add_diagnosis(db, p, "R95", db_now(db).date())
    result = run(db, CHECK, execute_=False)
    assert (result.result, result.rows) == ("dry_run", 3)
    assert inclusion(db) == {} and dirty(db) == set(patients)


def test_a_malformed_budget_fails_the_run_naming_the_setting(engine_db):
    db = engine_db
    set_setting(db, CHECK.name, "MaxPatientsPerRun", "lots")
    [p] = make_patients(db, 1)
    add_diagnosis(db, p, "R95", db_now(db).date())
    result = run_job(db, CHECK, triggered_by="test")
    assert result.result == "failed" and "MaxPatientsPerRun" in result.error


# ---------------------------------------------------------------------------
# Relevant-list changes: only the affected patients, in the off-hours window
# ---------------------------------------------------------------------------


def mark(db, now=None, force="N", execute_="Y", limit=None) -> tuple[int, int, int]:
    with db.connect() as conn:
        out = db.call(
            conn,
            "Job.relevant_changes_mark",
            {"NowUtc": now, "Force": force, "Execute": execute_, "Limit": limit},
            ("Changes", "Patients", "Waiting"),
        )
    return out["Changes"], out["Patients"], out["Waiting"]


def with_statins(db, count: int) -> tuple[list[int], list[int]]:
    """``count`` patients on a statin, and as many without; the log and dirty list then emptied."""
    statin = make_patients(db, count)
    other = make_patients(db, count)
    today = db_now(db).date()
    for p in statin:
        add_medication(db, p, "C10AA05", today - timedelta(days=10))
    for p in other:
        add_medication(db, p, "C09AA05", today - timedelta(days=10))
    run(db, CHECK)
    execute(db, "DELETE FROM PLSP.PatientInkluderetPending")
    return statin, other


def add_statin_rule(db, active_from) -> None:
    execute(
        db,
        "INSERT INTO PLSP.RelevantMedicinInklusion "
        "(AtcPrefix, ActiveFromUtc, ForloebCode, Role, Description) "
        "VALUES ('C10AA', ?, 'ALAL02', 'include', 'statins include (test)')",
        (active_from,),
    )


def test_a_relevant_change_marks_only_the_patients_with_the_code(engine_db):
    db = engine_db
    statin, _ = with_statins(db, 5)
    add_statin_rule(db, db_now(db) - timedelta(seconds=1))

    result = run(db, CHECK)

    assert result.rows == 5
    assert set(inclusion(db)) == {(p, HEART) for p in statin}
    assert {v[:2] for v in inclusion(db).values()} == {(True, "included: medication")}
    assert (
        scalar(
            db,
            "SELECT max(Patients) FROM PLSP.RelevantChange WHERE RelevantTable = 'relevantmedicininklusion'",
        )
        == 5
    )


def test_a_staged_change_waits_for_its_active_from_time(engine_db):
    db = engine_db
    with_statins(db, 2)
    add_statin_rule(db, WEDNESDAY_NOON)  # in 2030
    assert run(db, CHECK).rows == 0
    assert mark(db, now=WEDNESDAY_NOON, execute_="N") == (1, 2, 0)


@pytest.mark.parametrize(
    ("now", "marks"),
    [
        (WEDNESDAY_NOON, False),
        (WEDNESDAY_LATE, True),
        (THURSDAY_EARLY, True),
        (THURSDAY_SIX, False),
        (SATURDAY_NOON, True),
        (SUMMER_LATE, True),
    ],
)
def test_a_large_change_waits_for_the_off_hours_window(engine_db, now, marks):
    db = engine_db
    set_setting(db, CHECK.name, "RelevantChangeMaxPatients", "2")
    statin, _ = with_statins(db, 3)
    add_statin_rule(db, datetime(2029, 1, 1))

    changes, patients, waiting = mark(db, now=now)

    assert (changes, patients, waiting) == ((1, 3, 0) if marks else (0, 0, 1))
    assert dirty(db) == (set(statin) if marks else set())


def test_a_forced_change_goes_through_in_working_hours_a_slice_at_a_time(engine_db):
    db = engine_db
    set_setting(db, CHECK.name, "RelevantChangeMaxPatients", "2")
    statin, _ = with_statins(db, 5)
    add_statin_rule(db, datetime(2029, 1, 1))
    assert mark(db, now=WEDNESDAY_NOON, force="Y", limit=3) == (0, 3, 0)
    assert dirty(db) == set(statin[:3])
    assert mark(db, now=WEDNESDAY_NOON, limit=3) == (1, 2, 0), "the forced change goes on without force"
    assert dirty(db) == set(statin)


def test_a_small_change_goes_through_at_once_and_a_wide_window_setting_is_checked(engine_db):
    db = engine_db
    with_statins(db, 2)
    add_statin_rule(db, datetime(2029, 1, 1))
    set_setting(db, CHECK.name, "OffHoursStart", "25:00")
    with pytest.raises(Exception, match="OffHoursStart"):
        mark(db, now=WEDNESDAY_NOON)
    set_setting(db, CHECK.name, "OffHoursStart", "22:00")
    assert mark(db, now=WEDNESDAY_NOON) == (1, 2, 0)


# ---------------------------------------------------------------------------
# The full recompute
# ---------------------------------------------------------------------------


def recompute(db, now=None, force="N") -> tuple[int, str]:
    with db.connect() as conn:
        out = db.call(
            conn,
            "Job.inclusion_recompute",
            {"NowUtc": now, "Force": force, "Execute": "Y"},
            ("Patients", "Result"),
        )
    return out["Patients"], out["Result"]


def test_the_full_recompute_sweeps_every_patient_and_changes_nothing_that_was_right(engine_db):
    db = engine_db
    patients = make_patients(db, 12)
    today = db_now(db).date()
    for p in patients[::2]:
        add_diagnosis(db, p, "T90", today - timedelta(days=10))
    run(db, CHECK)
    before = inclusion(db)
    history_rows = scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderet_History")

    assert recompute(db, now=WEDNESDAY_NOON) == (12, "requested")
    assert recompute(db, now=WEDNESDAY_NOON) == (12, "running")
    assert run(db, CHECK).rows == 12

    assert inclusion(db) == before
    assert scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderet_History") == history_rows
    assert scalar(db, "SELECT count(*) FROM PLSP.InclusionSweep WHERE FinishedUtc IS NULL") == 0


def test_a_large_recompute_waits_for_the_window_unless_forced(engine_db):
    db = engine_db
    set_setting(db, CHECK.name, "RelevantChangeMaxPatients", "2")
    make_patients(db, 3)
    assert recompute(db, now=WEDNESDAY_NOON) == (3, "waiting")
    assert recompute(db, now=WEDNESDAY_NOON, force="Y") == (3, "running")
    assert run(db, CHECK).rows == 3, "forced: it runs whatever the clock says"


# ---------------------------------------------------------------------------
# flp status: the backlog
# ---------------------------------------------------------------------------


def test_flp_status_shows_the_dirty_backlog_and_the_invalid_and_rejected_counts(engine_db):
    import io

    from orchestrator import status

    db = engine_db
    patients = make_patients(db, 3)
    for p in patients:
        add_diagnosis(db, p, "R95", db_now(db).date())
    execute(
        db,
        "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, ConversionStatus) "
        "VALUES (?, 'NPU27300', '53', 0), (?, 'NPU27300', 'x', 2), (?, 'NPU27300', 'y', 3)",
        tuple(patients),
    )
    backlog = status.engine_backlog(db)
    assert {k: backlog[k] for k in ("dirty_due", "values_new", "values_invalid", "values_rejected")} == {
        "dirty_due": 3,
        "values_new": 1,
        "values_invalid": 1,
        "values_rejected": 1,
    }
    out = io.StringIO()
    status.show(db, out=out)
    assert "FLP engine: dirty patients due 3" in out.getvalue()
    assert "invalid 1, rejected 1" in out.getvalue()
