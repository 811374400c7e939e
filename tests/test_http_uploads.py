"""Uploads over HTTP on uvicorn and PostgreSQL: results, errors, 429 with Retry-After, no CPR in logs."""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing
import os
import signal
import threading
import time

import pytest

from orchestrator.http import ratelimit, validation
from orchestrator.http.app import create_app
from orchestrator.http.limits import Guard, Limits, TokenBuckets
from orchestrator.http.problems import ProblemError
from tests.support.http import SOR, http_settings, make_keys, serving
from tests.support.sql import scalar
from tests.support.uploads import load_relevant
from tests.test_http_auth import request
from tests.test_upload_bulk import document

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
    app = create_app(http_settings(keys), db, Limits(bulk_rows=1, bulk_concurrency=1, bulk_wait_seconds=0))
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


def rate_fields(headers: dict) -> tuple[dict, dict]:
    """(policy, state) parameters of the RateLimit fields, e.g. ({"q": 3, "w": 3000}, {"r": 2, "t": 1000})."""
    policy = ratelimit._items(headers["ratelimit-policy"])
    state = ratelimit._items(headers["ratelimit"])
    assert list(policy) == list(state) == ["clinic"], (headers["ratelimit-policy"], headers["ratelimit"])
    return policy["clinic"], state["clinic"]


def test_the_ratelimit_fields_say_the_bucket_and_count_down_to_the_429(db, keys, logs):
    load_relevant(db)
    # So slow a refill (one token in 1,000 s) that the test's own seconds do not show in the figures.
    app = create_app(http_settings(keys), db, Limits(rate_per_second=0.001, burst=3, concurrency=4))
    with serving(app) as base:
        token = keys.token()
        answers = [request(url(base), token, GOOD) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        fields = [rate_fields(a[1]) for a in answers]
        assert [policy for policy, _ in fields] == [{"q": 3, "w": 3000}] * 3
        assert [state["r"] for _, state in fields] == [2, 1, 0]
        # Full again after (3 - tokens) / rate seconds: about 1,000, 2,000, 3,000 (a few ms of refill).
        assert [round(state["t"], -2) for _, state in fields] == [1000, 2000, 3000]
        status, headers, body = request(url(base), token, GOOD)
        assert status == 429 and body["type"].endswith("rate-limited")
        _, state = rate_fields(headers)
        assert state["r"] == 0 and 2990 <= state["t"] <= 3000 and 990 <= int(headers["retry-after"]) <= 1000
        # A pacing client would have waited one token's time (w / q) before the fourth.
        assert ratelimit.client_pause(answers[2][1]) == pytest.approx(1000)
        assert ratelimit.client_pause(answers[1][1]) == 0
        # Another clinic's bucket is its own, full.
        other = request(f"{base}/v1/clinics/222222/uploads", keys.token(sor="222222"), GOOD)
        assert other[0] == 200 and rate_fields(other[1])[1]["r"] == 2


def test_the_ratelimit_fields_are_whole_numbers_from_the_bucket():
    now = [0.0]
    guard = Guard(Limits(rate_per_second=5, burst=20))
    guard.buckets.clock = lambda: now[0]
    first = guard.admit("1")
    assert first == {"RateLimit-Policy": '"clinic";q=20;w=4', "RateLimit": '"clinic";r=19;t=1'}
    guard.release()
    for _ in range(18):
        guard.admit("1")
        guard.release()
    assert guard.admit("1")["RateLimit"] == '"clinic";r=0;t=4'  # 20 taken at once: 4 s to fill
    guard.release()
    with pytest.raises(ProblemError) as refused:
        guard.admit("1")
    assert refused.value.headers["Retry-After"] == "1" and refused.value.headers["RateLimit"].endswith(
        "r=0;t=4"
    )
    now[0] = 0.5  # 2.5 tokens back
    assert guard.admit("1")["RateLimit"] == '"clinic";r=1;t=4'
    guard.release()
    # A pacing client: nothing while enough are left for its requests in flight, else w / q each.
    fields = {"RateLimit-Policy": '"clinic";q=20;w=4', "RateLimit": '"clinic";r=1;t=4'}
    assert ratelimit.client_pause(fields) == 0 and ratelimit.client_pause(
        fields, in_flight=3
    ) == pytest.approx(0.4)
    assert ratelimit.client_pause({}) == 0 and ratelimit.client_pause({"RateLimit": "nonsense"}) == 0


def test_a_bulk_upload_waits_a_bounded_time_for_the_bulk_slot(db, keys, logs):
    load_relevant(db)
    app = create_app(http_settings(keys), db, Limits(bulk_rows=1, bulk_wait_seconds=5))
    slots = app.state.guard.bulk_slots
    with serving(app) as base:
        slots.acquire()  # another bulk upload being queued, done in half a second
        threading.Timer(0.5, slots.release).start()
        started = time.monotonic()
        status, headers, body = request(url(base), keys.token(), GOOD)
        waited = time.monotonic() - started
        assert status == 202 and body["state"] in ("queued", "done") and 0.4 <= waited < 5
        assert rate_fields(headers)[1]["r"] == 19
    app = create_app(http_settings(keys), db, Limits(bulk_rows=1, bulk_wait_seconds=0.3))
    app.state.guard.bulk_slots.acquire()  # held throughout: refused after the wait
    with serving(app) as base:
        started = time.monotonic()
        status, headers, body = request(url(base), keys.token(), GOOD)
        waited = time.monotonic() - started
    assert status == 429 and body["type"].endswith("bulk-busy") and headers["retry-after"] == "1"
    assert 0.3 <= waited < 5


def test_a_large_body_is_validated_in_the_validation_process_with_the_same_answers(db, keys, logs):
    load_relevant(db)
    docs = [document(n, extra_values=28) for n in range(40)]
    assert len(json.dumps({"patients": docs})) >= validation.PROCESS_BYTES
    broken = [*docs[:30], {**docs[30], "values": [*docs[30]["values"][:5], {"code": 7, "time": "x"}]}]
    app = create_app(http_settings(keys), db)
    with serving(app) as base:
        assert app.state.validator.warm is None  # not started before a large body
        app.state.validator.start()
        assert app.state.validator.warm.result(30)
        status, _, body = request(url(base), keys.token(), {"patients": broken})
        assert status == 422 and body["type"].endswith("invalid")
        assert {(e["field"], e["reason"]) for e in body["errors"]} >= {
            ("UploadBatch.patients.30.values.5.code", "string_type")
        }
        status, headers, body = request(url(base), keys.token(), {"patients": docs})
        assert status == 202 and body["documentsTotal"] == 40 and "ratelimit" in headers
        assert app.state.validator.checked == 2  # both in the process
    # The same body in the worker thread (no process) is the same answer.
    thread_app = create_app(http_settings(keys), db, Limits(validate_processes=0))
    with serving(thread_app) as base:
        status, _, thread_body = request(url(base), keys.token(), {"patients": broken})
    assert thread_app.state.validator is None and status == 422
    assert thread_body["errors"] == request_errors_of(broken)


def request_errors_of(batch: list[dict]) -> list[dict]:
    """The 422 errors for a batch as the worker process gives them (no service)."""
    ok, errors = validation.check_in_worker(json.dumps({"patients": batch}).encode(), "application/json")
    assert not ok
    return [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["type"], "message": e["msg"]}
        for e in errors
    ]


def test_an_upload_refused_as_busy_costs_the_clinic_no_token():
    now = [0.0]
    guard = Guard(Limits(rate_per_second=1, burst=2, bulk_wait_seconds=0))
    guard.buckets.clock = lambda: now[0]
    guard.bulk_slots.acquire()  # a bulk upload being queued
    for _ in range(3):
        with pytest.raises(ProblemError) as refused:
            guard.admit("1", bulk=True)
        assert refused.value.kind == "bulk-busy" and refused.value.headers["RateLimit"] == '"clinic";r=2;t=0'
    while guard.slots.acquire(blocking=False):  # every interactive slot taken
        pass
    with pytest.raises(ProblemError) as refused:
        guard.admit("1")
    assert refused.value.kind == "busy" and refused.value.headers["RateLimit"] == '"clinic";r=2;t=0'
    guard.slots.release()
    guard.bulk_slots.release()
    # The clinic's two tokens are still there: a small upload and a bulk one pass, the third is
    # rate-limited.
    assert guard.admit("1")["RateLimit"] == '"clinic";r=1;t=1'
    assert guard.admit("1", bulk=True)["RateLimit"] == '"clinic";r=0;t=2'
    with pytest.raises(ProblemError) as refused:
        guard.admit("1")
    assert refused.value.kind == "rate-limited"


def test_only_a_few_bulk_uploads_wait_for_the_slot_the_others_are_refused_at_once():
    guard = Guard(Limits(bulk_wait_seconds=30, bulk_waiters=1))
    guard.bulk_slots.acquire()  # a bulk upload being queued
    guard.bulk_waiters.acquire()  # and one waiting for it already
    started = time.monotonic()
    with pytest.raises(ProblemError) as refused:
        guard.admit("1", bulk=True)
    assert refused.value.kind == "bulk-busy" and time.monotonic() - started < 5
    guard.bulk_waiters.release()  # the waiter got its slot: the next one may wait, and gets it
    threading.Timer(0.3, guard.bulk_slots.release).start()
    assert "RateLimit" in guard.admit("1", bulk=True)
    guard.release(bulk=True)


def _service_with_a_validator(pids, stop_first: bool) -> None:
    """A stand-in for the service's process: a started validation process, its pid sent back, then the
    end uvicorn gives a SIGTERM'd service (shutdown, then the signal raised again), or a SIGKILL."""
    import asyncio

    async def main() -> None:
        validator = validation.Validator(1)
        validator.start()
        assert validator.warm.result(60)
        pids.send([p.pid for p in validator._pool._processes.values()])  # a pipe: sent before the kill
        if stop_first:
            validator.stop()
            signal.raise_signal(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # a zombie (not yet reaped by init) is gone too
            if stat.read().split(") ", 1)[1].startswith("Z"):
                return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("stop_first", [True, False], ids=["sigterm-after-shutdown", "sigkill"])
def test_the_validation_process_never_outlives_the_service(stop_first):
    ctx = multiprocessing.get_context("spawn")
    pids, sender = ctx.Pipe(duplex=False)
    service = ctx.Process(target=_service_with_a_validator, args=(sender, stop_first))
    service.start()
    assert pids.poll(60)
    workers = pids.recv()
    service.join(30)
    assert service.exitcode == (-signal.SIGTERM if stop_first else -signal.SIGKILL) and workers
    # Joined at the shutdown; after a SIGKILL, the process sees its parent gone within a poll or two.
    assert all(_gone(pid, 0.5 if stop_first else 5 * validation.PARENT_POLL_SECONDS) for pid in workers)


def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_written(db, keys, logs):
    load_relevant(db)
    tables = ("Patient", "Patientvaerdier", "Diagnose")
    before = {t: scalar(db, f"SELECT count(*) FROM PLSP.{t}") for t in tables}
    body = json.dumps({"patients": [GOOD] * 20}).encode()
    assert len(body) > 2_000
    app = create_app(http_settings(keys), db, Limits(max_body_bytes=2_000))
    with serving(app) as base:
        # Declared too large: refused on its Content-Length.
        status, _, problem = request(url(base), keys.token(), raw=body)
        assert status == 413 and problem["type"].endswith("too-large"), problem
        assert "2,000 bytes" in problem["detail"]
        # Streamed without a length (chunked): refused once the limit is passed.
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Authorization": f"Bearer {keys.token()}", "Content-Type": "application/json"}
        chunks = iter([body[:1_500], body[1_500:]])
        conn.request("POST", f"/v1/clinics/{SOR}/uploads", body=chunks, headers=headers)
        response = conn.getresponse()
        assert response.status == 413 and json.loads(response.read())["type"].endswith("too-large")
        conn.close()
        assert {t: scalar(db, f"SELECT count(*) FROM PLSP.{t}") for t in tables} == before
        # Under the limit it is an upload like any other.
        status, _, result = request(url(base), keys.token(), raw=json.dumps(GOOD).encode())
        assert status == 200 and result["inserted"] == 2, result
