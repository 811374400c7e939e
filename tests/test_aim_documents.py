"""Job.aim_documents v2: each distinct id classified once (found, delivered, missing), on PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import jsonschema
import psycopg

from orchestrator.aim.store import RKKP_DATABASES
from orchestrator.db.urls import libpq_url
from tests.support.aim import seed_with_pending
from tests.support.sql import execute, scalar

ROOT = Path(__file__).parents[1]
SCHEMA = json.loads((ROOT / "docs" / "aim-document.schema.json").read_text())
OUTPUTS = ("Documents", "Found", "AlreadyDelivered", "Missing")
CONCURRENT_CALLS = 40  # calls of the procedure while another session flips the rows' Status


def documents_of(db, ids: list[int]) -> dict:
    with db.connect() as conn:
        out = db.call(conn, "Job.aim_documents", {"Ids": json.dumps(ids)}, OUTPUTS)
    out["Documents"] = json.loads(out["Documents"])
    out["Missing"] = [int(i) for i in out["Missing"].split(",")] if out["Missing"] else []
    return out


def test_each_id_is_found_delivered_or_missing_exactly_once(db):
    pending = seed_with_pending(db, patients=30, pending=12)
    found, delivered, archived, orphan = pending[:6], pending[6:8], pending[8:10], pending[10:12]
    execute(db, "UPDATE PLSP.FLP_AIM SET Status = 1 WHERE Id IN (?, ?)", (found[0], found[1]))
    execute(
        db,
        "UPDATE PLSP.FLP_AIM SET Status = 2, DeliveredUtc = CreatedUtc WHERE Id IN (?, ?)",
        tuple(delivered),
    )
    execute(
        db,
        "INSERT INTO PLSP.FLP_AIM_History (Id, ForloebsplanId, Status, CreatedUtc, DeliveredUtc) "
        "SELECT Id, ForloebsplanId, 2, CreatedUtc, CreatedUtc FROM PLSP.FLP_AIM WHERE Id IN (?, ?)",
        tuple(archived),
    )
    execute(db, "DELETE FROM PLSP.FLP_AIM WHERE Id IN (?, ?)", tuple(archived))
    # Rows whose care plan is gone: no document can be built, so they are missing.
    execute(db, "UPDATE PLSP.FLP_AIM SET ForloebsplanId = 99999999 WHERE Id IN (?, ?)", tuple(orphan))
    nowhere = [88_888_888, 88_888_889]
    asked = [*pending, *nowhere, found[2], delivered[0], nowhere[0]]  # some ids twice
    out = documents_of(db, asked)
    assert [d["_id"] for d in out["Documents"]] == found
    assert out["Found"] == len(found)
    assert out["AlreadyDelivered"] == len(delivered) + len(archived)
    assert out["Missing"] == sorted([*orphan, *nowhere])
    assert out["Found"] + out["AlreadyDelivered"] + len(out["Missing"]) == len(set(asked))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for document in out["Documents"]:
        validator.validate(document)


def test_nothing_found_gives_an_empty_array_and_zero_counts(db):
    out = documents_of(db, [77_777_777])
    assert (out["Documents"], out["Found"], out["AlreadyDelivered"], out["Missing"]) == (
        [],
        0,
        0,
        [77_777_777],
    )


def test_the_counts_add_up_while_another_session_marks_and_unmarks_the_rows(db):
    """v1 classified in a second statement: a row marked in between counted twice (found and
    delivered) or, unmarked in between, not at all. v2 reads each id once."""
    pending = seed_with_pending(db, patients=200, pending=400)
    stop = threading.Event()
    flips = []

    def flip() -> None:
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            status = 2
            while not stop.is_set():
                conn.execute("UPDATE PLSP.FLP_AIM SET Status = %s WHERE Id = ANY(%s)", (status, pending))
                flips.append(status)
                status = 1 if status == 2 else 2

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        for _ in range(CONCURRENT_CALLS):
            out = documents_of(db, pending)
            assert out["Missing"] == []
            assert out["Found"] == len(out["Documents"])
            assert out["Found"] + out["AlreadyDelivered"] == len(pending), (
                out["Found"],
                out["AlreadyDelivered"],
            )
    finally:
        stop.set()
        flipper.join(timeout=30)
    assert len(flips) > 1  # the rows did change under the calls
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM WHERE Status IN (1, 2)") == len(pending)


def test_the_store_lists_every_rkkp_database_the_procedures_can_name():
    """'Created since T' lists RKKP_DATABASES in its $in: a database added to the mapping
    of Job.aim_documents and not to the list would be missed by the question."""
    for engine in ("postgresql", "mssql"):
        newest = max(
            (ROOT / "db" / "procedures" / engine).glob("aim_documents.v*.sql"),
            key=lambda p: int(re.search(r"\.v(\d+)\.sql$", p.name)[1]),
        )
        mapping = re.search(r"CASE \w\.ForloebCode (WHEN .*?) END", newest.read_text())[1]
        named = set(re.findall(r"THEN '(\w+)'", mapping))
        assert named == {name for name in RKKP_DATABASES if name is not None}, newest.name
