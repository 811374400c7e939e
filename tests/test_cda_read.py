"""Api.care_plan_read (issue 13 step 1): one citizen's care plans in one set-based read."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from orchestrator.cda import data
from tests.support.cda import cprs, seeded_database
from tests.support.sql import fetch_all, scalar

PATIENTS = 300


@pytest.fixture(scope="module")
def seeded(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, PATIENTS, 13, dt.datetime.now(dt.UTC).date())


def read(db, **kwargs):
    with db.connect() as conn:
        return data.read(db, conn, **kwargs)


def test_every_patient_reads_with_their_plans_diagnoses_medication_and_converted_values(seeded):
    db = seeded
    plans_per_patient = dict(
        fetch_all(
            db,
            "SELECT p.Cpr, count(f.ForloebsplanId) FROM PLSP.Patient AS p "
            "LEFT JOIN PLSP.Forloebsplan AS f ON f.PatientId = p.PatientId GROUP BY p.Cpr",
        )
    )
    values_seen = 0
    for cpr in cprs(db):
        plans = read(db, cpr=cpr)
        assert plans is not None and plans.patient.cpr == cpr
        assert len(plans.plans) == plans_per_patient[cpr]
        for plan in plans.plans:
            assert plan.title  # the plan type's description
            for v in plan.values:
                assert v.measured_utc is not None and v.value is not None and v.description
            values_seen += len(plan.values)
            assert [v.code for v in plan.values] == sorted(v.code for v in plan.values)
    # Every converted value of a code relevant to some plan of its patient is in a document.
    expected = scalar(
        db,
        "SELECT count(*) FROM PLSP.Patientvaerdier AS v "
        "JOIN PLSP.Forloebsplan AS f ON f.PatientId = v.PatientId "
        "WHERE v.ConversionStatus = 1 AND EXISTS (SELECT 1 FROM PLSP.RelevantVaerdi AS r "
        "WHERE r.Code = v.Code AND (r.ForloebCode IS NULL OR r.ForloebCode = f.ForloebCode) "
        "AND r.ActiveToUtc IS NULL)",
    )
    assert values_seen == expected > 1000


def test_values_of_a_plan_are_those_relevant_to_its_type(seeded):
    db = seeded
    for cpr in cprs(db)[:100]:
        for plan in read(db, cpr=cpr).plans:
            if plan.code != "ALAL22":
                assert all(v.code != "NPU27300" for v in plan.values)  # HbA1c belongs to the diabetes plan


def test_the_same_patient_reads_by_a_plans_set_id(seeded):
    db = seeded
    cpr = cprs(db)[0]
    by_cpr = read(db, cpr=cpr)
    by_set = read(db, set_id=by_cpr.plans[0].set_id, now=by_cpr.now_utc)
    assert by_set == by_cpr


def test_an_unknown_patient_reads_as_none(seeded):
    assert read(seeded, cpr="0101010000") is None
    assert read(seeded, set_id=uuid.uuid4()) is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"cpr": "12345"}, "p_Cpr"),
        ({"cpr": "12345678ab"}, "p_Cpr"),
        ({}, "p_Cpr and p_SetId"),
        ({"cpr": "0101010000", "set_id": uuid.uuid4()}, "p_Cpr and p_SetId"),
        ({"cpr": "0101010000", "now": dt.datetime(1999, 1, 1)}, "p_NowUtc"),
    ],
)
def test_bad_parameters_are_refused_with_a_message_naming_them(seeded, kwargs, named):
    with pytest.raises(psycopg.Error, match=named):
        read(seeded, **kwargs)
