"""FlpAimImport and the AIM consumer on PostgreSQL, the database queue and a MongoDB wire server."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim.consumer import BadMessage, parse_body
from orchestrator.aim.importer import message_bodies, run_import
from orchestrator.queue import QueueError
from orchestrator.queue.database import DatabaseQueue
from tests.support.aim import (
    add_pending,
    consume_once,
    mongo_collection_name,
    seed_with_pending,
    set_setting,
    status_counts,
    store_for,
)
from tests.support.sql import execute, fetch_all, fetch_one, scalar

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "aim-document.schema.json").read_text())


@pytest.fixture
def queue(db):
    q = DatabaseQueue(db, QUEUE_NAME, visibility_seconds=30)
    yield q
    q.close()


@pytest.fixture
def store(db, mongo_server):
    s = store_for(db, mongo_server.url, mongo_collection_name())
    yield s
    s.collection.drop()
    s.close()


def queued_ids(db) -> list[int]:
    bodies = fetch_all(
        db, "SELECT Body FROM Ops.QueueMessage WHERE QueueName = ? ORDER BY MessageId", (QUEUE_NAME,)
    )
    return [i for (body,) in bodies for i in json.loads(body)["ids"]]


class FailingQueue(DatabaseQueue):
    """A queue that cannot confirm: the broker is down."""

    def publish(self, bodies):
        raise QueueError("broker unreachable (test)")


# ---------------------------------------------------------------------------
# FlpAimImport
# ---------------------------------------------------------------------------


def test_message_bodies_split_ids_by_message_size():
    assert message_bodies([1, 2, 3, 4, 5], 2) == ['{"ids":[1,2]}', '{"ids":[3,4]}', '{"ids":[5]}']


def test_import_publishes_pending_rows_oldest_first_and_marks_them_queued(db, queue):
    pending = seed_with_pending(db, patients=40, pending=250)
    set_setting(db, "aim_import", "MessageSize", "100")
    set_setting(db, "aim_import", "ClaimBatchSize", "120")
    result = run_import(db, queue, triggered_by="test")
    assert result.result == "succeeded" and result.rows == 250
    assert queued_ids(db) == pending  # every pending id once, in Id order
    assert status_counts(db).get(0, 0) == 0
    assert status_counts(db)[1] == 250
    bodies = [b for (b,) in fetch_all(db, "SELECT Body FROM Ops.QueueMessage ORDER BY MessageId")]
    assert max(len(json.loads(b)["ids"]) for b in bodies) == 100
    status, rows, message = fetch_one(
        db, "SELECT Status, RowsAffected, Message FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)
    )
    assert (status, rows) == ("succeeded", 250) and "messages" in message
    # Nothing is due any more: a second run publishes nothing.
    assert run_import(db, queue, triggered_by="test").rows == 0


def test_import_stops_at_max_rows(db, queue):
    pending = seed_with_pending(db, patients=30, pending=90)
    set_setting(db, "aim_import", "MaxRows", "50")
    set_setting(db, "aim_import", "ClaimBatchSize", "20")
    result = run_import(db, queue, triggered_by="test")
    assert result.rows == 50
    assert queued_ids(db) == pending[:50]


def test_import_dry_run_counts_and_changes_nothing(db, queue):
    seed_with_pending(db, patients=30, pending=70)
    result = run_import(db, queue, triggered_by="test", execute=False)
    assert (result.result, result.rows) == ("dry_run", 70)
    assert status_counts(db)[0] == 70
    assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 0
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM WHERE ClaimJobRunId IS NOT NULL") == 0


def test_a_second_import_at_the_same_time_is_already_running(db, queue):
    seed_with_pending(db, patients=20, pending=5)
    with db.connect() as conn:
        db.call(
            conn,
            "Job.job_run_start",
            {"JobName": "aim_import", "TriggeredBy": "test"},
            ("JobRunId", "Result"),
        )
        assert run_import(db, queue, triggered_by="test").result == "already_running"
    assert status_counts(db)[0] == 5


def test_an_unconfirmed_publish_fails_the_run_and_marks_nothing(db):
    seed_with_pending(db, patients=20, pending=30)
    failing = FailingQueue(db, QUEUE_NAME)
    result = run_import(db, failing, triggered_by="test")
    assert result.result == "failed" and "broker unreachable" in result.error
    assert status_counts(db)[0] == 30  # still pending: the next run publishes them
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)) == "failed"
    ok = DatabaseQueue(db, QUEUE_NAME)
    assert run_import(db, ok, triggered_by="test").rows == 30
    ok.close()


def test_rows_claimed_by_a_run_that_died_before_publishing_are_published_by_the_next(db, queue):
    pending = seed_with_pending(db, patients=20, pending=40)
    # The dead run: started and claimed on its own session, then the session ended.
    with db.connect() as conn:
        run = db.call(
            conn, "Job.job_run_start", {"JobName": "aim_import", "TriggeredBy": "test"}, ("JobRunId",)
        )
        claim = db.call(
            conn,
            "Job.aim_import_claim",
            {"JobRunId": run["JobRunId"], "BatchSize": 25, "VisibilityTimeoutSeconds": 7200},
            ("Rows", "Ids"),
        )
        assert claim["Rows"] == 25
    result = run_import(db, queue, triggered_by="test")
    assert result.rows == 40
    assert queued_ids(db) == pending
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (run["JobRunId"],)) == "abandoned"


def test_queued_rows_not_delivered_within_the_visibility_timeout_are_published_again(db, queue):
    pending = seed_with_pending(db, patients=20, pending=12)
    assert run_import(db, queue, triggered_by="test").rows == 12
    execute(db, "DELETE FROM Ops.QueueMessage")  # the messages were lost
    assert run_import(db, queue, triggered_by="test").rows == 0  # not yet due
    set_setting(db, "aim_import", "VisibilityTimeoutSeconds", "1")
    execute(db, "UPDATE PLSP.FLP_AIM SET QueuedUtc = QueuedUtc - INTERVAL '5 seconds' WHERE Status = 1")
    assert run_import(db, queue, triggered_by="test").rows == 12
    assert queued_ids(db) == pending


def test_claim_and_mark_refuse_a_session_without_the_job_lock(db):
    seed_with_pending(db, patients=10, pending=3)
    with db.connect() as conn:
        with pytest.raises(Exception, match="p_JobRunId"):
            db.call(
                conn, "Job.aim_import_claim", {"JobRunId": 1, "BatchSize": 5, "VisibilityTimeoutSeconds": 60}
            )
        with pytest.raises(Exception, match="p_BatchSize"):
            db.call(
                conn,
                "Job.aim_import_claim",
                {"JobRunId": 1, "BatchSize": 5000, "VisibilityTimeoutSeconds": 60},
            )
        with pytest.raises(Exception, match="p_ToId"):
            db.call(conn, "Job.aim_import_mark_queued", {"JobRunId": 1, "FromId": 5, "ToId": 5})


def test_a_malformed_setting_fails_the_import_naming_it(db, queue):
    seed_with_pending(db, patients=10, pending=3)
    set_setting(db, "aim_import", "MessageSize", "lots")
    result = run_import(db, queue, triggered_by="test")
    assert result.result == "failed" and "MessageSize" in result.error


# ---------------------------------------------------------------------------
# The consumer
# ---------------------------------------------------------------------------


def test_parse_body_accepts_only_messages_of_ids():
    assert parse_body('{"ids": [1, 2]}') == [1, 2]
    for bad in ("nonsense", "[]", '{"ids": []}', '{"ids": [0]}', '{"ids": ["1"]}', '{"ids": [true]}'):
        with pytest.raises(BadMessage):
            parse_body(bad)


def test_consumer_writes_one_valid_document_per_row_and_marks_them_delivered(db, queue, store):
    pending = seed_with_pending(db, patients=40, pending=120)
    set_setting(db, "aim_import", "MessageSize", "50")
    run_import(db, queue, triggered_by="test")
    stats = consume_once(db, store)
    assert stats.documents == 120 and stats.marked == 120 and stats.dead_letters == 0
    assert status_counts(db).get(1, 0) == 0 and status_counts(db).get(0, 0) == 0
    assert sorted(d["_id"] for d in store.collection.find({}, {"_id": 1})) == pending
    assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 0
    validator = jsonschema.Draft202012Validator(SCHEMA)
    documents = list(store.collection.find({}))
    for document in documents:
        validator.validate(document)
    sample = documents[0]
    assert sample["aimId"] == sample["_id"] and len(sample["patient"]["cpr"]) == 10
    assert any(d["values"] for d in documents) and any(d["diagnoses"] for d in documents)
    names = {i["name"] for i in store.collection.list_indexes()}
    assert names == {"_id_", "patient_cpr", "rkkp_created"}


def test_a_redelivered_message_writes_no_duplicate(db, queue, store):
    seed_with_pending(db, patients=20, pending=30)
    run_import(db, queue, triggered_by="test")
    body = fetch_one(db, "SELECT Body FROM Ops.QueueMessage")[0]
    # The first consumer wrote the documents and died before marking: the
    # documents are there, the rows still queued, the message comes back.
    documents = json.loads(
        db_call(db, "Job.aim_documents", {"Ids": json.dumps(json.loads(body)["ids"])}, ("Documents",))[
            "Documents"
        ]
    )
    store.write(documents[:20])
    stats = consume_once(db, store)
    assert (stats.documents, stats.duplicates, stats.marked) == (10, 20, 30)
    assert store.count() == 30
    # A message whose rows are delivered already writes nothing.
    queue.publish([body])
    again = consume_once(db, store)
    assert (again.documents, again.already_delivered, again.marked) == (0, 30, 0)
    assert store.count() == 30


def db_call(db, procedure, params, outputs):
    with db.connect() as conn:
        return db.call(conn, procedure, params, outputs)


def test_missing_ids_are_dead_lettered_and_the_rest_delivered(db, queue, store):
    pending = seed_with_pending(db, patients=20, pending=10)
    queue.publish([json.dumps({"ids": [*pending, 99_999_999]})])
    stats = consume_once(db, store)
    assert stats.documents == 10 and stats.missing == 1
    body, reason = fetch_one(db, "SELECT Body, Reason FROM Ops.QueueDeadLetter")
    assert json.loads(body) == {"ids": [99_999_999]} and "not found" in reason
    assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 0


def test_poison_messages_are_dead_lettered_with_a_reason_while_others_flow(db, queue, store):
    pending = seed_with_pending(db, patients=20, pending=20)
    queue.publish(
        [
            "not json at all",
            json.dumps({"ids": pending[:10]}),
            json.dumps({"ids": list(range(1, 6000))}),  # too many ids for one message
            json.dumps({"ids": pending[10:]}),
        ]
    )
    stats = consume_once(db, store, max_attempts=2)
    assert stats.documents == 20
    dead = fetch_all(db, "SELECT Body, Reason, DeliveryCount FROM Ops.QueueDeadLetter ORDER BY DeadLetterId")
    assert len(dead) == 2
    assert all(reason.startswith("not a message of FLP_AIM ids") for _, reason, _ in dead)
    assert status_counts(db).get(2) == scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM")


def test_a_message_that_keeps_failing_is_dead_lettered_after_max_attempts(db, queue, store):
    pending = seed_with_pending(db, patients=20, pending=5)
    queue.publish([json.dumps({"ids": pending})])
    set_setting(db, "aim_consume", "RecentValueDays", "0")  # Job.aim_documents refuses: a failing message
    stats = consume_once(db, store, max_attempts=3)
    assert stats.retries == 2 and stats.dead_letters == 1
    reason, count = fetch_one(db, "SELECT Reason, DeliveryCount FROM Ops.QueueDeadLetter")
    assert count == 3 and "failed 3 times" in reason and "RecentValueDays" in reason
    assert status_counts(db).get(0, 0) == 5  # nothing marked


def test_no_cpr_reaches_a_dead_letter_reason(db, queue, store):
    pending = seed_with_pending(db, patients=10, pending=2)
    cpr = scalar(db, "SELECT p.Cpr FROM PLSP.Patient AS p ORDER BY p.PatientId LIMIT 1")
    queue.publish([f"patient {cpr} is not a message"])
    consume_once(db, store)
    reasons = " ".join(r for (r,) in fetch_all(db, "SELECT Reason FROM Ops.QueueDeadLetter"))
    assert cpr not in reasons
    assert pending  # the rows stay for a real message


def test_aim_status_counts_rows_by_state(db, queue):
    seed_with_pending(db, patients=10, pending=7)
    with db.connect() as conn:
        out = db.call(
            conn, "Job.aim_status", {}, ("Pending", "Queued", "Delivered", "Overdue", "OldestPendingSeconds")
        )
    assert out["Pending"] == 7 and out["Queued"] == 0 and out["OldestPendingSeconds"] >= 0
    add_pending(db, 3)
    run_import(db, queue, triggered_by="test")
    with db.connect() as conn:
        out = db.call(
            conn, "Job.aim_status", {}, ("Pending", "Queued", "Delivered", "Overdue", "OldestPendingSeconds")
        )
    assert (out["Pending"], out["Queued"], out["OldestPendingSeconds"]) == (0, 10, None)


def test_the_registry_runs_the_import_on_the_database_queue_by_default(db, monkeypatch):
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    monkeypatch.delenv("FLP_QUEUE_URL", raising=False)
    monkeypatch.setenv("FLP_CONFIG", "/nonexistent/flp.toml")
    seed_with_pending(db, patients=10, pending=4)
    job = JOBS["aim_import"]
    assert job.timetable.every_minutes == 30
    result = run_job(db, job, triggered_by="test")
    assert (result.result, result.rows) == ("succeeded", 4)
    assert len(queued_ids(db)) == 4


def test_outages_are_told_apart_from_bad_messages(db):
    import psycopg
    import pymongo.errors

    from orchestrator.aim.consumer import is_outage

    assert is_outage(pymongo.errors.ServerSelectionTimeoutError("no servers"))
    assert is_outage(pymongo.errors.AutoReconnect("connection reset"))
    assert is_outage(psycopg.OperationalError("connection refused"))  # no SQLSTATE: never reached the server
    assert not is_outage(pymongo.errors.DuplicateKeyError("E11000"))
    assert not is_outage(ValueError("bad"))
    with db.connect() as conn:
        try:
            db.call(conn, "Job.aim_documents", {"Ids": "[0]"})
        except Exception as exc:  # the procedure refuses the parameter: the message's fault
            assert not is_outage(exc)
        else:
            raise AssertionError("Job.aim_documents accepted id 0")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        with db.connect() as other, other.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            db.call(conn, "Job.aim_status", {}, ("Pending",))
        except Exception as exc:  # the session was terminated: an outage
            assert is_outage(exc)
        else:
            raise AssertionError("a terminated session answered")


# ---------------------------------------------------------------------------
# The consumer's pipeline (read N+1 and write it while N is marked and acknowledged)
# ---------------------------------------------------------------------------


def test_the_same_ids_in_two_messages_in_flight_at_once_give_one_document_per_row(db, queue, store):
    pending = seed_with_pending(db, patients=30, pending=60)
    first, second = json.dumps({"ids": pending[:30]}), json.dumps({"ids": pending[30:]})
    # Each body twice in a row: the second copy is read (and written) while the
    # first is still being marked, so both copies find the rows undelivered.
    queue.publish([first, first, second, second])
    stats = consume_once(db, store)
    assert store.count() == 60
    assert stats.documents + stats.duplicates + stats.already_delivered == 120
    assert stats.marked == 60 and stats.dead_letters == 0
    assert status_counts(db) == {2: 60}
    assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 0


def test_a_message_mongodb_refuses_is_dead_lettered_while_the_messages_around_it_flow(db, queue, store):
    pending = seed_with_pending(db, patients=30, pending=30)
    refused = pending[15]
    # A collection validator that refuses one document (code 121): that message fails
    # in the write thread while its neighbours are read, written and marked.
    store.collection.database.command("collMod", store.collection.name, validator={"aimId": {"$ne": refused}})
    bodies = [json.dumps({"ids": pending[i : i + 10]}) for i in range(0, 30, 10)]
    queue.publish(bodies)
    stats = consume_once(db, store, max_attempts=2)
    assert stats.retries == 1 and stats.dead_letters == 1
    reason, count = fetch_one(db, "SELECT Reason, DeliveryCount FROM Ops.QueueDeadLetter")
    assert count == 2 and "MongoDB refused 1 of 10 documents" in reason and "121" in reason
    delivered = {r for (r,) in fetch_all(db, "SELECT Id FROM PLSP.FLP_AIM WHERE Status = 2")}
    assert delivered == set(pending[:10] + pending[20:])  # the refused message's rows stay undelivered
    assert store.collection.count_documents({"_id": refused}) == 0


def test_parse_documents_gives_what_json_gives_and_leaves_the_collector_on(db):
    import gc

    from orchestrator.aim.consumer import parse_documents

    pending = seed_with_pending(db, patients=10, pending=10)
    text = db_call(db, "Job.aim_documents", {"Ids": json.dumps(pending)}, ("Documents",))["Documents"]
    assert gc.isenabled()
    assert parse_documents(text) == json.loads(text) and len(json.loads(text)) == 10
    assert parse_documents(None) == [] and gc.isenabled()
    with pytest.raises(ValueError):
        parse_documents("[{not json")
    assert gc.isenabled()
