"""Bulk uploads over HTTP (issue 11): 202 with a status URL, drained to the synchronous result,
only the submitting clinic reads it, a killed drain resumes, load shedding, 429s counted."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime

import psycopg
import pytest

from orchestrator.config import ConfigError, Settings
from orchestrator.db.urls import libpq_url
from orchestrator.http import store
from orchestrator.http.app import create_app
from orchestrator.http.limits import Limits, ThrottleCounter, ThrottleFlusher
from orchestrator.http.settings import from_settings
from tests.support.archive import wait_for
from tests.support.engine import set_setting
from tests.support.http import SOR, YDERNUMMER, http_settings, make_keys, serving
from tests.support.sql import execute, scalar
from tests.support.uploads import load_relevant
from tests.test_http_auth import request
from tests.test_upload_bulk import CPRS, bad_document, document, drain, table_counts

OTHER_SOR = "222222"


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not any(cpr in text for cpr in CPRS), "a CPR number reached a log record"


@pytest.fixture
def bulk_db(db):
    """Relevant codes; the drain in batches of about two documents, without sleeping."""
    load_relevant(db)
    for name in ("BatchSizeStart", "BatchSizeMin", "BatchSizeMax"):
        set_setting(db, "upload_drain", name, "7")
    set_setting(db, "upload_drain", "SleepFactor", "0")
    return db


def uploads_url(base: str, sor: str = SOR) -> str:
    return f"{base}/v1/clinics/{sor}/uploads"


DOCS = [document(n) for n in range(6)] + [bad_document(6)]  # 7 documents, 19 rows


def app_for(keys, db, **limits):
    return create_app(http_settings(keys), db, Limits(bulk_rows=10, **limits))


def test_a_bulk_upload_is_a_job_with_a_status_url_drained_to_the_synchronous_result(bulk_db, keys, logs):
    db = bulk_db
    with serving(app_for(keys, db)) as base:
        token = keys.token()
        status, headers, body = request(uploads_url(base), token, {"patients": DOCS})
        assert status == 202, body
        assert headers["location"] == body["statusUrl"] == f"/v1/clinics/{SOR}/uploads/jobs/{body['jobId']}"
        assert (body["state"], body["documentsTotal"], body["documents"]) == ("queued", 7, 0)
        assert table_counts(db) == (0, 0, 7)  # staged, nothing applied yet

        job_url = base + headers["location"]
        assert request(job_url, token, method="GET", body=None)[2]["state"] == "queued"
        assert drain(db) == "succeeded"
        status, _, job = request(job_url, token, method="GET", body=None)
        assert status == 200 and job["state"] == "done" and job["finishedUtc"]
        assert (job["documents"], job["rejectedDocuments"], job["inserted"], job["rejected"]) == (7, 1, 18, 2)
        assert {(e["document"], e["field"], e["reason"]) for e in job["errors"]} == {
            (6, "values.code", "unknown_code"),
            (6, "services.serviceDate", "future_date"),
        }

        # The same documents again, synchronously: the same errors, and every accepted row held.
        sync = store.upload(db, SOR, YDERNUMMER, {"patients": DOCS})
        assert (sync["inserted"], sync["unchanged"], sync["rejected"]) == (0, 18, 2)
        assert [(e["document"], e["field"], e["reason"]) for e in sync["errors"]] == [
            (e["document"], e["field"], e["reason"]) for e in job["errors"]
        ]

        # A small upload marked as a full resync is a job too.
        status, _, small = request(uploads_url(base) + "?fullResync=true", token, DOCS[0])
        assert status == 202 and small["documentsTotal"] == 1


def test_only_the_submitting_clinic_reads_its_job(bulk_db, keys, logs):
    with serving(app_for(keys, bulk_db)) as base:
        _, headers, _ = request(uploads_url(base), keys.token(), {"patients": DOCS})
        job_path = headers["location"]
        other = keys.token(sor=OTHER_SOR)
        # Another clinic's token on this clinic's path: forbidden.
        status, _, body = request(base + job_path, other, method="GET", body=None)
        assert status == 403 and body["type"].endswith("other-clinic")
        # The same job id under the other clinic's own path: not found, as a job that does not exist.
        job_id = job_path.rsplit("/", 1)[1]
        status, _, body = request(
            f"{uploads_url(base, OTHER_SOR)}/jobs/{job_id}", other, method="GET", body=None
        )
        assert status == 404 and body["type"].endswith("not-found")
        status, _, _ = request(f"{uploads_url(base)}/jobs/999999", keys.token(), method="GET", body=None)
        assert status == 404
        assert request(base + job_path, None, method="GET", body=None)[0] == 401


def test_a_killed_drain_resumes_and_loses_and_duplicates_nothing(bulk_db, keys, logs):
    db = bulk_db
    set_setting(db, "upload_drain", "SleepFactor", "10")  # long sleeps between batches: a moment to kill it
    upload_id = store.enqueue(db, SOR, YDERNUMMER, {"patients": DOCS})["uploadId"]

    failure: list[BaseException] = []

    def run() -> None:
        try:
            drain(db)
        except BaseException as exc:  # the killed session's error, expected
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 1, "the drain's first batch")
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'flp-job:upload_drain'"
        )
    thread.join(30)
    assert not thread.is_alive()

    _, diagnoses, staged = table_counts(db)
    status = store.job_status(db, SOR, upload_id)
    assert status["state"] == "running" and 0 < staged < 7
    # What was applied is exactly what left the stage.
    assert (
        status["documents"] == 7 - staged and diagnoses == status["documents"] - status["rejectedDocuments"]
    )

    set_setting(db, "upload_drain", "SleepFactor", "0")
    assert drain(db) == "succeeded"
    status = store.job_status(db, SOR, upload_id)
    assert (status["state"], status["documents"], status["inserted"], status["rejected"]) == (
        "done",
        7,
        18,
        2,
    )
    assert table_counts(db) == (12, 6, 0)
    assert len(status["errors"]) == 2


def sleeping_session(url: str, seconds: float) -> threading.Thread:
    def sleep() -> None:
        with psycopg.connect(url, autocommit=True, application_name="upload-test-load") as conn:
            conn.execute("SELECT pg_sleep(%s)", (seconds,))

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    return thread


def test_while_the_health_gate_is_closed_bulk_jobs_wait_and_small_uploads_go_on(bulk_db, keys, logs):
    db = bulk_db
    set_setting(db, "upload_drain", "HealthMaxActive", "0")  # one other active session closes the gate
    set_setting(db, "upload_drain", "HealthMaxPauseSeconds", "1")
    set_setting(db, "upload_drain", "HealthHoldSeconds", "0")
    with serving(app_for(keys, db)) as base:
        token = keys.token()
        status, headers, _ = request(uploads_url(base), token, {"patients": DOCS})
        assert status == 202
        load = sleeping_session(libpq_url(db.url), 4)
        wait_for(
            lambda: (
                scalar(
                    db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'upload-test-load'"
                )
                == 1
            ),
            "the simulated load",
        )
        assert drain(db) == "stopped"  # paused for the busy database, then stopped cleanly
        message = scalar(
            db, "SELECT Message FROM Ops.JobRun WHERE JobName = 'upload_drain' ORDER BY JobRunId DESC"
        )
        assert "database busy too long" in message
        assert request(base + headers["location"], token, method="GET", body=None)[2]["state"] == "queued"
        assert table_counts(db) == (0, 0, 7)
        # An interactive upload goes on meanwhile.
        status, _, body = request(uploads_url(base), token, document(10, extra_values=1))
        assert status == 200 and body["inserted"] == 2
        load.join(10)

        set_setting(db, "upload_drain", "HealthMaxActive", "20")
        assert drain(db) == "succeeded"
        assert request(base + headers["location"], token, method="GET", body=None)[2]["state"] == "done"


def throttled(db, sor: str = SOR) -> int:
    return scalar(db, "SELECT coalesce(sum(Throttled), 0) FROM Ops.UploadStatistic WHERE SorCode = ?", (sor,))


def test_every_429_is_counted_into_the_days_statistics(bulk_db, keys, logs):
    db = bulk_db
    app = app_for(keys, db, rate_per_second=0.01, burst=1, concurrency=4, throttle_flush_seconds=60)
    with serving(app) as base:
        token = keys.token()
        assert request(uploads_url(base), token, document(11, extra_values=1))[0] == 200
        answers = [request(uploads_url(base), token, document(11, extra_values=1))[0] for _ in range(5)]
        assert answers == [429] * 5
        # Another clinic at the concurrency limit: counted for that clinic.
        app.state.guard.slots.acquire()
        app.state.guard.slots.acquire()
        app.state.guard.slots.acquire()
        app.state.guard.slots.acquire()
        assert request(uploads_url(base, OTHER_SOR), keys.token(sor=OTHER_SOR), document(12))[0] == 429
        assert app.state.guard.throttled.pending() == 6
        assert throttled(db) == 0  # counted in memory: the flush comes later
    # Stopping the service flushes what it counted.
    assert (throttled(db), throttled(db, OTHER_SOR)) == (5, 1)
    assert scalar(db, "SELECT Uploads FROM Ops.UploadStatistic WHERE SorCode = ?", (SOR,)) == 1


def test_a_flood_of_429s_costs_one_database_call_per_flush(db):
    counter = ThrottleCounter(today=lambda: "2026-01-05")
    calls: list[dict] = []

    def send(counts):
        calls.append(counts)
        store.throttled(db, counts, now=datetime(2026, 1, 5, 12))

    for _ in range(10_000):
        counter.count("100001")
    for sor in ("100002", "100003"):
        counter.count(sor)
    flusher = ThrottleFlusher(counter, send, interval=3600)
    flusher.flush()
    flusher.flush()  # nothing counted since: no call at all
    assert calls == [
        {("100001", "2026-01-05"): 10_000, ("100002", "2026-01-05"): 1, ("100003", "2026-01-05"): 1}
    ]
    assert throttled(db, "100001") == 10_000 and throttled(db, "100003") == 1


def test_the_bulk_threshold_is_a_setting(keys):
    base = Settings(auth_public_key_file=str(keys.public_file), auth_issuer="iss", auth_audience="aud")
    assert from_settings(base).bulk_rows == 500
    assert from_settings(replace(base, upload_bulk_rows="2000")).bulk_rows == 2000
    with pytest.raises(ConfigError, match="FLP_UPLOAD_BULK_ROWS"):
        from_settings(replace(base, upload_bulk_rows="lots"))


def test_bulk_work_never_takes_an_interactive_slot(bulk_db, keys, logs):
    app = app_for(keys, bulk_db, concurrency=1)
    app.state.guard.slots.acquire()  # every interactive slot in use
    with serving(app) as base:
        assert request(uploads_url(base), keys.token(), {"patients": DOCS})[0] == 202
        status, _, body = request(uploads_url(base), keys.token(), document(10, extra_values=1))
        assert status == 429 and body["type"].endswith("busy")
    app.state.guard.slots.release()


def test_a_poison_document_is_dead_lettered_and_its_job_and_the_other_clinics_go_on(bulk_db, keys, logs):
    db = bulk_db
    with serving(app_for(keys, db)) as base:
        token, other_token = keys.token(), keys.token(sor=OTHER_SOR)
        _, headers, _ = request(uploads_url(base), token, {"patients": DOCS})
        _, other_headers, _ = request(uploads_url(base, OTHER_SOR), other_token, {"patients": DOCS[:4]})
        job_id = int(headers["location"].rsplit("/", 1)[1])
        # A staged document the database cannot read as JSON: every batch holding it raises.
        unreadable = "UPDATE Upload.StagedDocument SET Document = '{' WHERE UploadId = ? AND DocNo = 2"
        execute(db, unreadable, (job_id,))

        assert drain(db) == "succeeded"
        status, _, job = request(base + headers["location"], token, method="GET", body=None)
        # Documents 0, 1 and 3-5 applied (3 rows each), 6 rejected by validation, 2 dead-lettered.
        assert status == 200 and (job["state"], job["documents"], job["inserted"]) == ("done", 7, 15)
        assert job["rejectedDocuments"] == 2 and job["reason"] is None and job["finishedUtc"]
        dead = [(e["document"], e["field"]) for e in job["errors"] if e["reason"] == "dead_lettered"]
        assert dead == [(2, "document")]
        status, _, other = request(base + other_headers["location"], other_token, method="GET", body=None)
        assert status == 200 and (other["state"], other["documents"], other["reason"]) == ("done", 4, None)
        assert table_counts(db)[2] == 0
