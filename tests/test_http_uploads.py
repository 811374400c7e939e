"""Uploads over HTTP on uvicorn and PostgreSQL: results, errors, 429 with Retry-After, no CPR in logs."""

from __future__ import annotations

import logging

import pytest

from orchestrator.http.app import create_app
from orchestrator.http.limits import Limits, TokenBuckets
from tests.support.http import SOR, http_settings, make_keys, serving
from tests.support.uploads import load_relevant
from tests.test_http_auth import request

CPR_OK, CPR_BAD = "0101701235", "0202702236"
GOOD = {
    "cpr": CPR_OK,
    "values": [{"code": "NPU27300", "value": "53", "unit": "mmol/mol", "time": "2024-01-02"}],
    "diagnoses": [{"codeSystem": "ICPC2", "code": "T90", "diagnosedDate": "2020-01-01"}],
}
BAD = {
    "cpr": CPR_BAD,
    "values": [{"code": "NPU99999", "value": "1", "time": "2024-01-02"}],
    "services": [{"serviceCode": "0120", "serviceDate": "2999-01-01"}],
}


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert CPR_OK not in text and CPR_BAD not in text, "a CPR number reached a log record"


def url(base: str) -> str:
    return f"{base}/v1/clinics/{SOR}/uploads"


def test_a_batch_is_stored_and_the_bad_document_comes_back_with_every_error(db, keys, logs):
    load_relevant(db)
    with serving(create_app(http_settings(keys), db)) as base:
        status, _, body = request(url(base), keys.token(), {"patients": [GOOD, BAD]})
        assert status == 200, body
        assert body["result"] == "partly_accepted" and body["inserted"] == 2
        assert {(e["document"], e["field"], e["reason"]) for e in body["errors"]} == {
            (1, "values.code", "unknown_code"),
            (1, "services.serviceDate", "future_date"),
        }
        assert CPR_BAD not in str(body)
        # A single patient document is a batch of one; an unchanged resync is a no-op.
        status, _, body = request(url(base), keys.token(), GOOD)
        assert status == 200 and (body["inserted"], body["unchanged"]) == (0, 2)


def test_beyond_the_clinics_rate_the_answer_is_429_with_retry_after(db, keys, logs):
    load_relevant(db)
    app = create_app(http_settings(keys), db, Limits(rate_per_second=0.01, burst=2, concurrency=4))
    with serving(app) as base:
        token = keys.token()
        assert [request(url(base), token, GOOD)[0] for _ in range(2)] == [200, 200]
        status, headers, body = request(url(base), token, GOOD)
        assert status == 429 and body["type"].endswith("rate-limited")
        assert 1 <= int(headers["retry-after"]) <= 100
        # Another clinic has its own bucket.
        other = keys.token(sor="222222")
        assert request(f"{base}/v1/clinics/222222/uploads", other, GOOD)[0] == 200


def test_beyond_the_global_concurrency_the_answer_is_429(db, keys, logs):
    app = create_app(http_settings(keys), db, Limits(concurrency=1))
    app.state.guard.slots.acquire()  # one upload in progress
    with serving(app) as base:
        status, headers, body = request(url(base), keys.token(), GOOD)
    assert status == 429 and headers["retry-after"] == "1" and body["type"].endswith("busy")


def test_a_token_bucket_refills_at_its_rate():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("a") == 0.0


def test_only_one_bulk_upload_runs_at_once_and_small_ones_still_pass(db, keys, logs):
    load_relevant(db)
    app = create_app(http_settings(keys), db, Limits(bulk_rows=1, bulk_concurrency=1))
    app.state.guard.bulk_slots.acquire()  # a bulk upload in progress
    with serving(app) as base:
        status, headers, body = request(url(base), keys.token(), GOOD)  # two rows: bulk here
        assert status == 429 and body["type"].endswith("bulk-busy") and headers["retry-after"] == "1"
        small = {"cpr": CPR_OK, "diagnoses": GOOD["diagnoses"]}
        assert request(url(base), keys.token(), small)[0] == 200


def test_the_sync_checkpoint_names_the_clinics_last_upload_and_only_for_its_own_clinic(db, keys, logs):
    load_relevant(db)
    with serving(create_app(http_settings(keys), db)) as base:
        sync = f"{base}/v1/clinics/{SOR}/sync"
        status, _, body = request(sync, keys.token(), method="GET", body=None)
        assert status == 200 and body == {
            "syncToken": None,
            "lastUploadUtc": None,
            "uploads": 0,
            "rowsStored": 0,
        }
        _, _, upload = request(url(base), keys.token(), GOOD)
        status, _, body = request(sync, keys.token(), method="GET", body=None)
        assert body["syncToken"] == f"u{upload['uploadId']}" and (body["uploads"], body["rowsStored"]) == (
            1,
            2,
        )
        status, _, _ = request(f"{base}/v1/clinics/999/sync", keys.token(), method="GET", body=None)
        assert status == 403


def test_the_body_read_off_the_event_loop_is_refused_as_a_declared_body_would_be(db, keys, logs):
    # post_upload reads the bytes and validates them in a worker thread (pydantic-core from the
    # bytes): the same answers as FastAPI's own body validation, and nothing written for any of them.
    load_relevant(db)
    with serving(create_app(http_settings(keys), db)) as base:
        token = keys.token()
        status, _, body = request(url(base), token, raw=b'{"patients": [')
        assert (status, body["title"]) == (400, "Malformed JSON")
        status, _, body = request(url(base), token, raw=b"")
        assert status == 422 and body["errors"][0]["field"] == "body"
        status, _, body = request(url(base), token, {"patients": [{**GOOD, "cpr": 1}]})
        assert status == 422 and "UploadBatch.patients.0.cpr" in {e["field"] for e in body["errors"]}
        status, _, body = request(url(base), token, {**GOOD, "extra": 1})
        assert status == 422 and "PatientDocument.extra" in {e["field"] for e in body["errors"]}
        status, _, body = request(url(base), token, raw=b'{"cpr": "a\\ud800b"}')  # a lone surrogate
        assert status == 400
        assert CPR_OK not in str(body)
        status, _, body = request(url(base), keys.token(sor="999999"), GOOD)  # another clinic's
        assert status == 403
        status, _, body = request(url(base), token, GOOD)
        assert status == 200 and body["inserted"] == 2
