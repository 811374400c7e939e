"""Document versions (issue 13 step 3): setId stable per patient and plan, versionNumber grows
only when the content hash changes, relatedDocument RPLC names the version replaced."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from orchestrator.cda import builder, data, documents, versions
from tests.support.cda import cprs, seeded_database
from tests.support.sql import execute, fetch_all, scalar

NS = {"h": builder.HL7}


@pytest.fixture
def seeded(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, 40, 5, dt.datetime.now(dt.UTC).date())


def current(db, cpr):
    with db.connect() as conn:
        return {d.plan.code: d for d in documents.for_citizen(db, conn, cpr)[1]}


def a_patient_with_values(db) -> str:
    return next(c for c in cprs(db) if any(d.plan.values for d in current(db, c).values()))


def test_the_same_data_gives_the_same_version_and_the_same_bytes(seeded):
    cpr = a_patient_with_values(seeded)
    first = current(seeded, cpr)
    rows = scalar(seeded, "SELECT count(*) FROM PLSP.CdaDocumentVersion")
    again = current(seeded, cpr)
    assert {k: d.version.number for k, d in again.items()} == {k: d.version.number for k, d in first.items()}
    assert {k: d.to_bytes() for k, d in again.items()} == {k: d.to_bytes() for k, d in first.items()}
    assert scalar(seeded, "SELECT count(*) FROM PLSP.CdaDocumentVersion") == rows
    assert not any(d.version.created for d in again.values())


def test_the_first_version_continues_the_plans_version_number(seeded):
    cpr = cprs(seeded)[0]
    before = dict(
        fetch_all(
            seeded,
            "SELECT f.ForloebCode, f.VersionNumber FROM PLSP.Forloebsplan AS f "
            "JOIN PLSP.Patient AS p ON p.PatientId = f.PatientId WHERE p.Cpr = ?",
            (cpr,),
        )
    )
    docs = current(seeded, cpr)
    assert {k: d.version.number for k, d in docs.items()} == before
    for d in docs.values():
        assert d.element.find("h:relatedDocument", NS) is None  # nothing of ours to replace yet


def test_a_changed_value_makes_the_next_version_replacing_the_previous(seeded):
    cpr = a_patient_with_values(seeded)
    first = current(seeded, cpr)
    code, doc = next((k, d) for k, d in first.items() if d.plan.values)
    value = doc.plan.values[0]
    execute(
        seeded,
        "UPDATE PLSP.Patientvaerdier SET ValueNumeric = ValueNumeric + 1 WHERE PatientvaerdiId = ?",
        (value.value_id,),
    )
    second = current(seeded, cpr)
    new = second[code]
    assert new.version.number == doc.version.number + 1 and new.version.created
    assert new.plan.set_id == doc.plan.set_id
    e = new.element
    assert e.find("h:setId", NS).get("root") == doc.element.find("h:setId", NS).get("root")
    assert e.find("h:versionNumber", NS).get("value") == str(doc.version.number + 1)
    related = e.find("h:relatedDocument", NS)
    assert related.get("typeCode") == "RPLC"
    parent = related.find("h:parentDocument", NS)
    assert parent.find("h:id", NS).get("root") == doc.element.find("h:id", NS).get("root")
    assert parent.find("h:setId", NS).get("root") == str(doc.plan.set_id).upper()
    assert parent.find("h:versionNumber", NS).get("value") == str(doc.version.number)
    assert e.find("h:id", NS).get("root") != doc.element.find("h:id", NS).get("root")
    # Served again unchanged: the same new version, still replacing the first.
    third = current(seeded, cpr)[code]
    assert third.version == new.version.__class__(**{**new.version.__dict__, "created": False})
    assert third.to_bytes() == new.to_bytes()
    # The plan's counter follows; plans whose content did not change keep their version.
    assert (
        scalar(seeded, "SELECT VersionNumber FROM PLSP.Forloebsplan WHERE SetId = ?", (str(doc.plan.set_id),))
        == new.version.number
    )
    for other, d in second.items():
        if other != code and value.code not in {v.code for v in d.plan.values}:
            assert d.version.number == first[other].version.number


def test_two_requests_at_once_make_one_version(seeded):
    cpr = a_patient_with_values(seeded)
    execute(
        seeded,
        "UPDATE PLSP.Patientvaerdier SET ValueNumeric = ValueNumeric + 1 WHERE PatientId = "
        "(SELECT PatientId FROM PLSP.Patient WHERE Cpr = ?)",
        (cpr,),
    )
    with seeded.connect() as conn:
        plans = data.read(seeded, conn, cpr=cpr)
    plan = next(p for p in plans.plans if p.values)
    results, barrier = [], threading.Barrier(4)

    def register():
        with seeded.connect() as conn:
            barrier.wait()
            results.append(versions.current(seeded, conn, plans, plan))

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.document_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"ForloebsplanId": 0, "ContentHash": "0" * 64}, "p_ForloebsplanId"),
        ({"ForloebsplanId": 1, "ContentHash": "ABC"}, "p_ContentHash"),
        ({"ForloebsplanId": 10**9, "ContentHash": "0" * 64}, "no care plan has this id"),
    ],
)
def test_register_refuses_bad_parameters_naming_them(seeded, params, named):
    with seeded.connect() as conn, pytest.raises(psycopg.Error, match=named):
        seeded.call(conn, "Api.cda_version_register", params, ("VersionNumber",))
