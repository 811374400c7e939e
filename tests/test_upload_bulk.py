"""Bulk upload jobs in the database: enqueue, drain on Job.run_batched, status, throttle counts (issue 11)."""

from __future__ import annotations

import json

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


def test_a_poison_document_fails_its_upload_and_the_drain_goes_on_with_the_others(small_batches):
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
    # raises twice more (attempts 2 and 3 of MaxAttempts 3): its upload fails, the rest is unstaged;
    # the other clinic's upload drains in the same run.
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, poisoned)
    assert (status["state"], status["documents"], status["inserted"]) == ("failed", 3, 9)
    assert status["reason"].startswith("document 3: ") and "p_Document" in status["reason"]
    assert status["finishedUtc"] is not None
    assert scalar(db, "SELECT count(*) FROM Upload.StagedDocument WHERE UploadId = ?", (poisoned,)) == 0
    done = store.job_status(db, OTHER, other)
    assert (done["state"], done["documents"], done["inserted"], done["reason"]) == ("done", 4, 12, None)
    assert table_counts(db) == (14, 7, 0)

    notes = [
        n
        for (n,) in fetch_all(
            db,
            "SELECT b.Note FROM Ops.JobRunBatch AS b INNER JOIN Ops.JobRun AS r ON r.JobRunId = b.JobRunId "
            "WHERE r.JobName = 'upload_drain' ORDER BY b.BatchNo",
        )
    ]
    raised = [n for n in notes if n.startswith("raised on")]
    assert len(raised) == 3 and "attempt 3 of 3): upload failed" in raised[-1]
    assert all(c not in note for note in notes for c in CPRS)
    assert drain(db) == "succeeded"  # nothing left to try: the next minute's run is quiet
    assert store.job_status(db, SOR, poisoned)["state"] == "failed"


def test_after_a_batch_raised_its_documents_go_alone_and_only_the_poison_one_is_blamed(small_batches):
    db = small_batches
    set_setting(db, "upload_drain", "MaxAttempts", "1")
    for name in ("BatchSizeStart", "BatchSizeMin", "BatchSizeMax"):
        set_setting(db, "upload_drain", name, "9")  # documents 0-2 (3 rows each) in one batch
    upload_id = enqueue(db, [document(n) for n in range(3)])
    unreadable = "UPDATE Upload.StagedDocument SET Document = '[' WHERE UploadId = ? AND DocNo = 1"
    execute(db, unreadable, (upload_id,))
    # Batch 0-2 raises: no document is blamed for a batch in company, even at MaxAttempts 1.
    # Document 0 then goes alone and is applied; document 1 alone raises and fails the upload.
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert (status["state"], status["documents"], status["inserted"]) == ("failed", 1, 3)
    assert status["reason"].startswith("document 1: ")
    assert table_counts(db)[2] == 0
