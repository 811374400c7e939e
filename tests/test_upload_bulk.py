"""Bulk upload jobs in the database: enqueue, drain on Job.run_batched, status, throttle counts (issue 11)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from orchestrator.http import store
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from tests.support.engine import set_setting
from tests.support.sql import execute, fetch_all, scalar
from tests.support.uploads import load_relevant

SOR, YDER, OTHER = "123456", "654321", "777777"
CPRS = [f"{61 + n % 28:02d}0170{1000 + n:04d}" for n in range(40)]  # replacement numbers: never a real person


def document(n: int, value: str = "53", extra_values: int = 2) -> dict:
    return {
        "cpr": CPRS[n],
        "values": [
            {"code": "NPU27300", "value": value, "unit": "mmol/mol", "time": f"2024-01-{1 + i:02d}"}
            for i in range(extra_values)
        ],
        "diagnoses": [{"codeSystem": "ICPC2", "code": "T90", "diagnosedDate": "2020-01-01"}],
    }


def bad_document(n: int) -> dict:
    return {
        "cpr": CPRS[n],
        "values": [{"code": "NPU99999", "value": "1", "time": "2024-01-02"}],
        "services": [{"serviceCode": "0120", "serviceDate": "2999-01-01"}],
    }


def enqueue(db, docs: list[dict], sor: str = SOR, full: bool = False) -> int:
    return store.enqueue(db, sor, YDER, json.dumps({"patients": docs}), full_resync=full)["uploadId"]


def drain(db) -> str:
    return run_job(db, JOBS["upload_drain"], triggered_by="test").result


def table_counts(db) -> tuple[int, int, int]:
    return (
        scalar(db, "SELECT count(*) FROM PLSP.Patientvaerdier WHERE UploadKey IS NOT NULL"),
        scalar(db, "SELECT count(*) FROM PLSP.Diagnose WHERE UploadKey IS NOT NULL"),
        scalar(db, "SELECT count(*) FROM Upload.StagedDocument"),
    )


@pytest.fixture
def small_batches(db):
    """Batches of a few documents, no sleep: a drain of a few documents takes several batches."""
    load_relevant(db)
    for name in ("BatchSizeStart", "BatchSizeMin", "BatchSizeMax"):
        set_setting(db, "upload_drain", name, "7")
    set_setting(db, "upload_drain", "SleepFactor", "0")
    return db


def test_a_queued_upload_is_drained_in_batches_to_the_result_of_a_synchronous_upload(small_batches):
    db = small_batches
    docs = [document(n) for n in range(6)] + [bad_document(6), document(2, value="54")]
    upload_id = enqueue(db, docs)
    status = store.job_status(db, SOR, upload_id)
    assert status["state"] == "queued" and status["documentsTotal"] == 8
    assert table_counts(db)[2] == 7  # the repeated patient (document 7) is not staged

    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert status["state"] == "done"
    assert (status["documents"], status["rejectedDocuments"]) == (8, 2)
    assert (status["inserted"], status["updated"], status["unchanged"]) == (18, 0, 0)
    assert {(e["document"], e["field"], e["reason"]) for e in status["errors"]} == {
        (6, "values.code", "unknown_code"),
        (6, "services.serviceDate", "future_date"),
        (7, "cpr", "duplicate_patient"),
    }
    assert table_counts(db) == (12, 6, 0)
    batches = scalar(db, "SELECT count(*) FROM Ops.JobRunBatch")
    assert batches >= 3  # 7 rows a batch: one or two documents each

    # The same upload, synchronously, in a fresh database: the same outcome.
    sync = store.upload(db, SOR, YDER, {"patients": docs})
    assert (sync["inserted"], sync["updated"], sync["unchanged"]) == (0, 0, 18)
    assert {(e["document"], e["field"], e["reason"]) for e in sync["errors"]} == {
        (e["document"], e["field"], e["reason"]) for e in status["errors"]
    }
    assert (sync["documents"], sync["rejectedDocuments"], sync["rejected"]) == (
        status["documents"],
        status["rejectedDocuments"],
        status["rejected"],
    )


def test_an_unchanged_resync_is_done_when_accepted_and_writes_nothing(small_batches):
    db = small_batches
    docs = [document(n) for n in range(5)]
    enqueue(db, docs)
    assert drain(db) == "succeeded"
    changed = [*docs[:4], document(4, value="99")]
    upload_id = enqueue(db, changed, full=True)
    status = store.job_status(db, SOR, upload_id)
    # Four documents done at once (unchanged), one staged.
    assert (status["state"], status["documents"], status["unchanged"]) == ("queued", 4, 12)
    assert table_counts(db)[2] == 1
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert (status["state"], status["updated"], status["unchanged"]) == ("done", 2, 13)

    # Every row version as it is: an UPDATE (or a trigger's write) would give a row a new xmin.
    before = versions(db)
    again = enqueue(db, changed)
    status = store.job_status(db, SOR, again)
    assert (status["state"], status["documents"], status["unchanged"]) == ("done", 5, 15)
    assert status["inserted"] == 0 and table_counts(db)[2] == 0
    assert versions(db) == before


def versions(db) -> list:
    return [
        fetch_all(db, f"SELECT ctid::text, xmin::text FROM PLSP.{table} ORDER BY 1")
        for table in ("Patient", "Patientvaerdier", "Diagnose", "Klinik")
    ]


def test_a_dry_run_counts_every_staged_row_and_applies_nothing(small_batches):
    db = small_batches
    enqueue(db, [document(n) for n in range(4)])
    enqueue(db, [document(n) for n in range(4, 6)])
    result = run_job(db, JOBS["upload_drain"], triggered_by="test", execute=False)
    assert (result.result, result.rows) == ("dry_run", 18)
    assert table_counts(db) == (0, 0, 6)


def test_a_big_upload_waits_for_the_off_hours_window_and_smaller_ones_pass_it(small_batches):
    db = small_batches
    # A window that never opens (start = end, no weekends), whatever the clock says.
    for name, value in (("OffHoursStart", "03:00"), ("OffHoursEnd", "03:00"), ("OffHoursWeekends", "N")):
        execute(
            db,
            "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'check_inclusion' AND Name = ?",
            (value, name),
        )
    set_setting(db, "upload_drain", "OffHoursRows", "10")
    big = enqueue(db, [document(n) for n in range(4)])  # 12 rows: waits
    small = enqueue(db, [document(4)])  # 3 rows: goes
    assert drain(db) == "succeeded"
    assert store.job_status(db, SOR, big)["state"] == "queued"
    assert store.job_status(db, SOR, small)["state"] == "done"
    set_setting(db, "upload_drain", "OffHoursRows", "0")  # 0: none waits
    assert drain(db) == "succeeded"
    assert store.job_status(db, SOR, big)["state"] == "done"


def test_a_poison_document_is_dead_lettered_and_the_documents_after_it_are_applied(small_batches):
    db = small_batches
    poisoned = enqueue(db, [document(n) for n in range(6)])
    other = enqueue(db, [document(n) for n in range(20, 24)], sor=OTHER)  # queued behind it
    # A staged document the database cannot read as JSON (a CPR-shaped number in it): Upload.upload_data
    # raises for the whole batch holding it, every time.
    execute(
        db,
        "UPDATE Upload.StagedDocument SET Document = ? WHERE UploadId = ? AND DocNo = 3",
        ('{"cpr": "' + CPRS[3] + '", "values": [', poisoned),
    )

    # One run: batch 0-2 applied; batch 3-5 raises (rolled back, attempt 1 each); document 3 alone
    # raises twice more (attempts 2 and 3 of MaxAttempts 3): it is dead-lettered, and documents 4 and 5
    # (after it in the same batch) are applied; the other clinic's upload drains in the same run.
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, poisoned)
    assert (status["state"], status["documents"], status["rejectedDocuments"]) == ("done", 6, 1)
    assert (status["inserted"], status["rejected"], status["reason"]) == (15, 3, None)  # its 3 rows
    (error,) = status["errors"]
    assert (error["document"], error["field"], error["row"]) == (3, "document", None)
    assert error["reason"] == "dead_lettered"
    assert "p_Document" in error["message"] and CPRS[3] not in error["message"]
    assert status["finishedUtc"] is not None
    assert scalar(db, "SELECT count(*) FROM Upload.StagedDocument WHERE UploadId = ?", (poisoned,)) == 0
    dead = fetch_all(db, "SELECT DocNo, Attempts, Reason, Document FROM Upload.DeadLetterDocument")
    assert [(d[0], d[1]) for d in dead] == [(3, 3)]
    assert "p_Document" in dead[0][2] and CPRS[3] not in dead[0][2]
    assert dead[0][3].startswith('{"cpr": "')  # kept as it was, for an operator to fix and send again
    done = store.job_status(db, OTHER, other)
    assert (done["state"], done["documents"], done["inserted"], done["reason"]) == ("done", 4, 12, None)
    assert table_counts(db) == (18, 9, 0)  # 9 documents of 2 values and a diagnosis
    day_sql = "SELECT RejectedDocuments, RowsRejected FROM Ops.UploadStatistic WHERE SorCode = ?"
    day = fetch_all(db, day_sql, (SOR,))
    assert day == [(1, 3)]
    assert scalar(db, "SELECT RowsRejected FROM Ops.UploadRejection WHERE Reason = 'dead_lettered'") == 1

    notes = [
        n
        for (n,) in fetch_all(
            db,
            "SELECT b.Note FROM Ops.JobRunBatch AS b INNER JOIN Ops.JobRun AS r ON r.JobRunId = b.JobRunId "
            "WHERE r.JobName = 'upload_drain' ORDER BY b.BatchNo",
        )
    ]
    raised = [n for n in notes if n.startswith("raised on")]
    assert len(raised) == 3 and "attempt 3 of 3): dead-lettered" in raised[-1]
    assert all(c not in note for note in notes for c in CPRS)
    assert drain(db) == "succeeded"  # nothing left to try: the next minute's run is quiet
    assert store.job_status(db, SOR, poisoned)["state"] == "done"


def test_after_a_batch_raised_its_documents_go_alone_and_only_the_poison_one_is_blamed(small_batches):
    db = small_batches
    set_setting(db, "upload_drain", "MaxAttempts", "1")
    for name in ("BatchSizeStart", "BatchSizeMin", "BatchSizeMax"):
        set_setting(db, "upload_drain", name, "9")  # documents 0-2 (3 rows each) in one batch
    upload_id = enqueue(db, [document(n) for n in range(3)])
    unreadable = "UPDATE Upload.StagedDocument SET Document = '[' WHERE UploadId = ? AND DocNo = 1"
    execute(db, unreadable, (upload_id,))
    # Batch 0-2 raises: no document is blamed for a batch in company, even at MaxAttempts 1.
    # Document 0 then goes alone and is applied; document 1 alone raises and is dead-lettered;
    # document 2 alone is applied.
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert (status["state"], status["documents"], status["inserted"]) == ("done", 3, 6)
    assert [(e["document"], e["reason"]) for e in status["errors"]] == [(1, "dead_lettered")]
    assert fetch_all(db, "SELECT DocNo FROM Upload.DeadLetterDocument") == [(1,)]
    assert table_counts(db)[2] == 0


def test_a_document_over_the_row_cap_is_rejected_at_enqueue_naming_it_and_its_field(small_batches):
    db = small_batches
    big = document(1, extra_values=4000)  # 4,001 rows: over the cap of 4,000 a document
    upload_id = enqueue(db, [document(0), big, document(2)])
    status = store.job_status(db, SOR, upload_id)
    assert (status["documentsTotal"], status["documents"], status["rejectedDocuments"]) == (3, 1, 1)
    (error,) = status["errors"]
    assert (error["document"], error["field"], error["row"]) == (1, "values", None)
    assert error["reason"] == "too_many_rows"
    assert "4001 rows" in error["message"] and "4000" in error["message"]
    assert status["rejected"] == 4001
    assert table_counts(db)[2] == 2  # nothing of it staged
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert (status["state"], status["documents"], status["inserted"]) == ("done", 3, 6)
    # Nothing of the refused patient written.
    assert scalar(db, "SELECT count(*) FROM PLSP.Patient WHERE Cpr = ?", (CPRS[1],)) == 0
    assert scalar(db, "SELECT RowsRejected FROM Ops.UploadRejection WHERE Reason = 'too_many_rows'") == 1
    # At the cap it is taken.
    at_cap = enqueue(db, [document(3, extra_values=3999)])
    assert store.job_status(db, SOR, at_cap)["rejectedDocuments"] == 0


def test_the_throttle_count_is_capped_at_the_largest_int_not_overflowed(db):
    day, now = "2026-03-02", datetime(2026, 3, 2, 12, 0)
    counts = {("1" + str(n), day): 999_999_999 for n in range(3)}
    counts[(SOR, day)] = 999_999_999
    store.throttled(db, counts, now=now)
    store.throttled(db, {(SOR, day): 999_999_999}, now=now)  # 1,999,999,998: fits
    store.throttled(db, {(SOR, day): 999_999_999}, now=now)  # would be 2,999,999,997: capped
    store.throttled(db, {(SOR, day): 5}, now=now)  # stays at the cap
    assert scalar(db, "SELECT Throttled FROM Ops.UploadStatistic WHERE SorCode = ?", (SOR,)) == 2**31 - 1
    # An in-memory count over what one entry takes (9 digits): sent as that, not refused.
    store.throttled(db, {(OTHER, day): 3 * 10**9}, now=now)
    assert scalar(db, "SELECT Throttled FROM Ops.UploadStatistic WHERE SorCode = ?", (OTHER,)) == 999_999_999


def test_the_0018_downgrade_refuses_while_documents_are_staged(empty_db_url):
    from orchestrator.db import migrate
    from orchestrator.db.connection import Database

    url = empty_db_url
    migrate.upgrade(url, "0018")
    db = Database(url)
    load_relevant(db)
    upload_id = enqueue(db, [document(0), document(1)])
    with pytest.raises(Exception, match=r"Downgrade of 0018 refused: Upload.StagedDocument holds 2 staged"):
        migrate.downgrade(url, "0017")
    assert migrate.current(url) == "0018"  # nothing undone
    assert scalar(db, "SELECT count(*) FROM Upload.StagedDocument WHERE UploadId = ?", (upload_id,)) == 2
    assert drain(db) == "succeeded"
    migrate.downgrade(url, "0017")  # nothing staged: it goes
    assert migrate.current(url) == "0017"


def test_the_0024_downgrade_refuses_while_documents_are_dead_lettered(empty_db_url):
    from orchestrator.db import migrate
    from orchestrator.db.connection import Database

    url = empty_db_url
    migrate.upgrade(url, "0024")
    db = Database(url)
    load_relevant(db)
    set_setting(db, "upload_drain", "MaxAttempts", "1")
    upload_id = enqueue(db, [document(0), document(1)])
    unreadable = "UPDATE Upload.StagedDocument SET Document = '[' WHERE UploadId = ? AND DocNo = 1"
    execute(db, unreadable, (upload_id,))
    assert drain(db) == "succeeded"
    assert fetch_all(db, "SELECT DocNo FROM Upload.DeadLetterDocument") == [(1,)]
    refused = r"Downgrade of 0024 refused: Upload.DeadLetterDocument holds 1 dead-lettered"
    with pytest.raises(Exception, match=refused):
        migrate.downgrade(url, "0023")
    assert migrate.current(url) == "0024"  # nothing undone
    assert scalar(db, "SELECT count(*) FROM Upload.DeadLetterDocument WHERE UploadId = ?", (upload_id,)) == 1
    execute(db, "DELETE FROM Upload.DeadLetterDocument WHERE UploadId = ?", (upload_id,))
    db.engine.dispose()
    migrate.downgrade(url, "0023")  # no dead letters: it goes
    assert migrate.current(url) == "0023"
