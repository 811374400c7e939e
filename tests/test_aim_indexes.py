"""The AIM store's indexes and the three questions they answer, on a MongoDB wire server (SecantusDB).

docs/aim-document.md, "The questions and their indexes": by patient (``patient.cpr``),
by RKKP database (the prefix of ``rkkp_created``), created since T (``rkkp_created``
with ``rkkpDatabase: {$in: RKKP_DATABASES}`` and the range on ``aimCreatedUtc``).
"""

from __future__ import annotations

import logging

import pymongo
import pytest

from orchestrator.aim.store import INDEXES, RKKP_DATABASES, DocumentStore
from tests.support.aim import mongo_collection_name

OURS = {
    "_id_": {"_id": 1},
    "patient_cpr": {"patient.cpr": 1},
    "rkkp_created": {"rkkpDatabase": 1, "aimCreatedUtc": 1},
}
CPRS = ("0101501234", "0202602345", "0303703456")
# The questions exactly as docs/aim-document.md writes them.
SINCE = "2026-02-10T00:00:00"


def by_patient(cpr: str) -> dict:
    return {"patient.cpr": cpr}


def by_rkkp_database(name: str | None) -> dict:
    return {"rkkpDatabase": name}


def created_since(when: str) -> dict:
    return {"rkkpDatabase": {"$in": list(RKKP_DATABASES)}, "aimCreatedUtc": {"$gte": when}}


@pytest.fixture
def store(mongo_server):
    s = DocumentStore(mongo_server.url, "flp_aim_test", mongo_collection_name())
    yield s
    s.collection.drop()
    s.close()


def index_set(store) -> dict[str, dict]:
    return {i["name"]: dict(i["key"]) for i in store.collection.list_indexes()}


def documents() -> list[dict]:
    """60 documents: 3 patients, every RKKP database and none, created over 60 days
    (times as Job.aim_documents writes them: fractions of a second only when not zero)."""
    out = []
    for n in range(60):
        created = f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}T{n % 24:02d}:00:00" + (".5" if n % 2 else "")
        out.append(
            {
                "_id": 1000 + n,
                "aimId": 1000 + n,
                "aimCreatedUtc": created,
                "rkkpDatabase": RKKP_DATABASES[n % len(RKKP_DATABASES)],
                "patient": {"id": n % 3, "cpr": CPRS[n % 3]},
            }
        )
    return out


def ids(cursor) -> list[int]:
    return sorted(d["_id"] for d in cursor)


def test_a_fresh_collection_gets_our_two_secondary_indexes(store):
    assert store.ensure_indexes() == []
    assert index_set(store) == OURS
    assert [name for _, name in INDEXES] == ["patient_cpr", "rkkp_created"]


def test_an_upgraded_collection_loses_our_obsolete_created_index_and_keeps_indexes_not_ours(store, caplog):
    # What an earlier version left, plus indexes somebody else made (one even on the same field).
    store.collection.create_index([("aimCreatedUtc", pymongo.ASCENDING)], name="created")
    store.collection.create_index([("patient.cpr", pymongo.ASCENDING)], name="patient_cpr")
    store.collection.create_index([("aimCreatedUtc", pymongo.DESCENDING)], name="theirs_created_desc")
    store.collection.create_index([("extractedUtc", pymongo.ASCENDING)], name="theirs_extracted")
    store.collection.insert_many(documents()[:5])
    with caplog.at_level(logging.INFO, logger="orchestrator.aim.store"):
        assert store.ensure_indexes() == ["created"]
        assert store.ensure_indexes() == []  # nothing left to drop: logged once
    assert index_set(store) == {
        **OURS,
        "theirs_created_desc": {"aimCreatedUtc": -1},
        "theirs_extracted": {"extractedUtc": 1},
    }
    assert [r.getMessage() for r in caplog.records].count("aim store dropped an obsolete index") == 1
    assert store.count() == 5


def test_an_index_named_created_on_another_key_is_not_ours_and_stays(store):
    store.collection.create_index([("extractedUtc", pymongo.ASCENDING)], name="created")
    assert store.ensure_indexes() == []
    assert index_set(store)["created"] == {"extractedUtc": 1}


@pytest.mark.parametrize("hinted", [False, True], ids=["planner", "hinted"])
def test_the_three_questions_return_exactly_the_right_documents(store, hinted):
    store.ensure_indexes()
    docs = documents()
    assert store.write(docs).inserted == len(docs)
    collection = store.collection

    def run(query: dict, index: str) -> list[int]:
        cursor = collection.find(query)
        return ids(cursor.hint(index) if hinted else cursor)

    for cpr in CPRS:
        assert run(by_patient(cpr), "patient_cpr") == ids(d for d in docs if d["patient"]["cpr"] == cpr)
        assert len(run(by_patient(cpr), "patient_cpr")) == 20
    for name in RKKP_DATABASES:
        expected = ids(d for d in docs if d["rkkpDatabase"] == name)
        assert run(by_rkkp_database(name), "rkkp_created") == expected and len(expected) == 15
    # One RKKP database's documents since T: the whole compound key.
    dvdd_since = {"rkkpDatabase": "DVDD", "aimCreatedUtc": {"$gte": SINCE}}
    assert run(dvdd_since, "rkkp_created") == ids(
        d for d in docs if d["rkkpDatabase"] == "DVDD" and d["aimCreatedUtc"] >= SINCE
    )
    # Created since T across databases, documents of no RKKP database included.
    since = run(created_since(SINCE), "rkkp_created")
    assert since == ids(d for d in docs if d["aimCreatedUtc"] >= SINCE)
    assert 0 < len(since) < len(docs)
    assert any(collection.find_one({"_id": i})["rkkpDatabase"] is None for i in since)
    # A fraction of a second counts: 09:00:00.5 is after 09:00:00, before 09:00:01.
    edge = next(d for d in docs if d["aimCreatedUtc"].endswith(".5"))
    whole = edge["aimCreatedUtc"][:-2]
    assert edge["_id"] in run(created_since(whole), "rkkp_created")
    assert edge["_id"] not in run(created_since(whole[:-1] + str(int(whole[-1]) + 1)), "rkkp_created")
