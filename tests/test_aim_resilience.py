"""The AIM pipeline under failure, on real servers: PostgreSQL, RabbitMQ (Debian's) and SecantusDB.

* the consumer SIGKILLed at random points, again and again: afterwards every row is
  delivered and MongoDB holds exactly one document per row (both queues);
* the importer SIGKILLed between claim and publish, and after publish before marking;
* RabbitMQ restarted while the consumer works: it reconnects, nothing is lost;
* MongoDB down for a while: nothing acknowledged or marked, then the flow resumes;
* poison messages dead-lettered with their reason while the others flow.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pymongo
import pytest

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim.consumer import Consumer
from orchestrator.aim.importer import run_import
from orchestrator.aim.store import DocumentStore
from orchestrator.dev import mongo
from orchestrator.queue.database import DatabaseQueue
from tests.support.aim import mongo_collection_name, seed_with_pending, set_setting, status_counts
from tests.support.sql import fetch_all, scalar

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def rabbit_queue(url):
    from orchestrator.queue.rabbitmq import RabbitQueue

    return RabbitQueue(url, QUEUE_NAME, prefetch=1, reconnect_for=120)


@pytest.fixture
def rabbit(rabbitmq_server):
    """The session's RabbitMQ with the AIM queues empty."""
    queue = rabbit_queue(rabbitmq_server.url)
    queue._channel.queue_purge(QUEUE_NAME)
    queue._channel.queue_purge(f"{QUEUE_NAME}.dead")
    queue.close()
    return rabbitmq_server


@pytest.fixture
def collection(db, mongo_server):
    """A fresh MongoDB collection for the test, named in the MongoCollection setting."""
    name = mongo_collection_name()
    set_setting(db, "aim_consume", "MongoCollection", name)
    client = pymongo.MongoClient(mongo_server.url)
    yield client["flp_aim"][name]
    client["flp_aim"][name].drop()
    client.close()


def flp_env(db, mongo_url, queue_url=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    env.update(
        {
            "FLP_DATABASE_URL": db.url,
            "FLP_MONGO_URL": mongo_url,
            "FLP_CONFIG": "/nonexistent/flp.toml",
            "PYTHONPATH": str(ROOT),
        }
    )
    if queue_url:
        env["FLP_QUEUE_URL"] = queue_url
    return env


def assert_delivered_exactly_once(db, collection, ids: list[int]) -> None:
    assert status_counts(db) == {2: len(ids)}, status_counts(db)
    found = sorted(d["_id"] for d in collection.find({}, {"_id": 1}))
    assert found == sorted(ids)  # one document per row, none twice, none missing
    assert collection.count_documents({}) == len(ids)


def open_queue_factory(kind, db, rabbit_url):
    if kind == "rabbitmq":
        return lambda: rabbit_queue(rabbit_url)
    return lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=2)


# ---------------------------------------------------------------------------
# The consumer killed at random points
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rabbitmq", "database"])
def test_consumer_sigkilled_at_random_points_delivers_every_row_exactly_once(
    kind, db, mongo_server, collection, request
):
    rabbit_url = request.getfixturevalue("rabbit").url if kind == "rabbitmq" else None
    ids = seed_with_pending(db, patients=300, pending=3000)
    set_setting(db, "aim_import", "MessageSize", "25")
    set_setting(db, "aim_consume", "MaxAttempts", "100")  # kills are not the message's fault
    set_setting(db, "aim_consume", "QueueVisibilitySeconds", "2")
    queue = open_queue_factory(kind, db, rabbit_url)()
    assert run_import(db, queue, triggered_by="test").rows == 3000
    queue.close()

    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    env = flp_env(db, mongo_server.url, rabbit_url)
    command = [sys.executable, "-m", "orchestrator", "aim", "consume", "--concurrency", "2"]
    kills = 0
    for run in range(12):
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if run == 0:
            # The first consumer lives until it has delivered something (a busy machine can
            # take longer than the random lives below to start), then dies mid-flow.
            deadline = time.monotonic() + 60
            while status_counts(db).get(2, 0) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(rng.uniform(1.0, 3.0))  # start-up takes about a second: some kills land early
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
        if kind == "database":
            time.sleep(rng.uniform(0, 2.5))  # sometimes before, sometimes after the visibility timeout
    assert kills >= 10, f"only {kills} kills landed (seed {seed})"
    delivered_before_drain = status_counts(db).get(2, 0)

    final = subprocess.run(
        [*command[:-2], "--once"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert_delivered_exactly_once(db, collection, ids)
    assert delivered_before_drain > 0, f"the killed consumers delivered nothing (seed {seed})"
    if kind == "database":
        assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 0
        assert scalar(db, "SELECT count(*) FROM Ops.QueueDeadLetter") == 0


# ---------------------------------------------------------------------------
# The importer killed
# ---------------------------------------------------------------------------

KILLING_IMPORT = textwrap.dedent(
    """
    import os, signal, sys
    from orchestrator.aim.importer import run_import
    from orchestrator.db.connection import Database
    from orchestrator.queue.database import DatabaseQueue

    class Dies(DatabaseQueue):
        def publish(self, bodies):
            if sys.argv[2] == "after":
                super().publish(bodies)
            os.kill(os.getpid(), signal.SIGKILL)

    db = Database(sys.argv[1])
    run_import(db, Dies(db, "flp.aim"), triggered_by="test")
    """
)


@pytest.mark.parametrize("moment", ["before", "after"])
def test_importer_killed_between_claim_and_mark_loses_nothing(moment, db, mongo_server, collection):
    ids = seed_with_pending(db, patients=50, pending=400)
    set_setting(db, "aim_import", "MessageSize", "50")
    set_setting(db, "aim_import", "ClaimBatchSize", "200")
    dead = subprocess.run(
        [sys.executable, "-c", KILLING_IMPORT, db.url, moment],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert dead.returncode == -signal.SIGKILL
    # Claimed (stamped with the dead run), but still pending: nothing was marked.
    assert status_counts(db) == {0: 400}
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM WHERE ClaimJobRunId IS NOT NULL") == 200
    published = scalar(db, "SELECT count(*) FROM Ops.QueueMessage")
    assert published == (4 if moment == "after" else 0)

    queue = DatabaseQueue(db, QUEUE_NAME, visibility_seconds=30)
    result = run_import(db, queue, triggered_by="test")
    queue.close()
    assert (result.result, result.rows) == ("succeeded", 400)
    assert (
        scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = 'aim_import' AND Status = 'abandoned'")
        == 1
    )
    store = DocumentStore(mongo_server.url, "flp_aim", collection.name)
    consumer = Consumer(db, lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=30), store, 5)
    stats = consumer.run(concurrency=2, once=True)
    store.close()
    assert_delivered_exactly_once(db, collection, ids)
    if moment == "after":  # the first 200 ids were published twice: the second copy wrote nothing
        assert stats.already_delivered + stats.duplicates == 200


# ---------------------------------------------------------------------------
# RabbitMQ restarted, MongoDB down
# ---------------------------------------------------------------------------


def run_in_thread(consumer: Consumer, concurrency: int = 2):
    errors = []

    def target():
        try:
            consumer.run(concurrency=concurrency, once=False)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_rabbitmq_restarted_while_consuming_loses_nothing(db, rabbit, mongo_server, collection):
    ids = seed_with_pending(db, patients=200, pending=2000)
    set_setting(db, "aim_import", "MessageSize", "10")
    queue = rabbit_queue(rabbit.url)
    run_import(db, queue, triggered_by="test")
    queue.close()
    store = DocumentStore(mongo_server.url, "flp_aim", collection.name)
    consumer = Consumer(db, lambda: rabbit_queue(rabbit.url), store, max_attempts=20)
    thread, errors = run_in_thread(consumer)
    try:
        assert wait_until(lambda: status_counts(db).get(2, 0) >= 100, 60)
        rabbit.restart()  # the broker goes away for several seconds and comes back
        assert wait_until(lambda: status_counts(db).get(2, 0) == len(ids), 180), status_counts(db)
    finally:
        consumer.stop.set()
        thread.join(timeout=60)
        store.close()
    assert not errors, errors
    assert_delivered_exactly_once(db, collection, ids)
    check = rabbit_queue(rabbit.url)
    assert check.counts().ready == 0 and check.counts().dead == 0
    check.close()


@pytest.mark.parametrize("kind", ["database", "rabbitmq"])
def test_mongodb_down_for_a_while_acks_and_marks_nothing_then_resumes(kind, db, request, tmp_path):
    rabbit_url = request.getfixturevalue("rabbit").url if kind == "rabbitmq" else None
    ids = seed_with_pending(db, patients=50, pending=200)
    set_setting(db, "aim_import", "MessageSize", "20")
    set_setting(db, "aim_consume", "QueueVisibilitySeconds", "3")
    factory = open_queue_factory(kind, db, rabbit_url)
    queue = factory()
    run_import(db, queue, triggered_by="test")
    queue.close()
    server = mongo.MongoServer(data_dir=tmp_path / "mongo")  # one of our own, to stop and start
    store = DocumentStore(server.url, "flp_aim", "careplans", timeout_ms=500)
    consumer = Consumer(db, factory, store, max_attempts=2)
    thread, errors = run_in_thread(consumer)
    try:
        time.sleep(6)  # MongoDB is not running: longer than the database queue's visibility timeout
        assert status_counts(db) == {1: 200}  # nothing marked delivered
        if kind == "database":
            assert scalar(db, "SELECT count(*) FROM Ops.QueueMessage") == 10  # nothing acknowledged
            assert scalar(db, "SELECT max(DeliveryCount) FROM Ops.QueueMessage") == 1  # kept, not redelivered
        else:
            assert status_counts(db) == {1: 200}
        server.start()
        assert wait_until(lambda: status_counts(db).get(2, 0) == 200, 120), status_counts(db)
    finally:
        consumer.stop.set()
        thread.join(timeout=60)
        client = pymongo.MongoClient(server.url)
        documents = sorted(d["_id"] for d in client["flp_aim"]["careplans"].find({}, {"_id": 1}))
        client.close()
        store.close()
        server.cleanup()
    assert not errors, errors
    assert documents == ids
    assert consumer.stats.outages > 0 and consumer.stats.dead_letters == 0


def test_poison_messages_on_rabbitmq_are_dead_lettered_while_others_flow(
    db, rabbit, mongo_server, collection
):
    ids = seed_with_pending(db, patients=30, pending=60)
    queue = rabbit_queue(rabbit.url)
    queue.publish(
        [
            json.dumps({"ids": ids[:30]}),
            "{broken json",
            json.dumps({"ids": [*ids[30:], 77_777_777]}),
        ]
    )
    queue.close()
    set_setting(db, "aim_consume", "RecentValueDays", "730")
    store = DocumentStore(mongo_server.url, "flp_aim", collection.name)
    stats = Consumer(db, lambda: rabbit_queue(rabbit.url), store, max_attempts=3).run(
        concurrency=2, once=True
    )
    store.close()
    assert stats.documents == 60
    assert_delivered_exactly_once(db, collection, ids)
    check = rabbit_queue(rabbit.url)
    dead = check.dead_letters()
    check.close()
    reasons = {body: reason for body, reason in dead}
    assert reasons["{broken json"].startswith("not a message of FLP_AIM ids")
    assert "not found" in reasons[json.dumps({"ids": [77_777_777]})]
    cprs = [c for (c,) in fetch_all(db, "SELECT Cpr FROM PLSP.Patient")]
    assert not any(c in r for c in cprs for r in reasons.values())


def test_a_failing_message_on_rabbitmq_is_dead_lettered_after_max_attempts(
    db, rabbit, mongo_server, collection
):
    ids = seed_with_pending(db, patients=10, pending=5)
    queue = rabbit_queue(rabbit.url)
    queue.publish([json.dumps({"ids": ids})])
    queue.close()
    set_setting(db, "aim_consume", "RecentValueDays", "0")  # Job.aim_documents refuses every call
    store = DocumentStore(mongo_server.url, "flp_aim", collection.name)
    stats = Consumer(db, lambda: rabbit_queue(rabbit.url), store, max_attempts=3).run(
        concurrency=1, once=True
    )
    store.close()
    assert (stats.retries, stats.dead_letters) == (2, 1)
    check = rabbit_queue(rabbit.url)
    [(body, reason)] = check.dead_letters()
    check.close()
    assert json.loads(body) == {"ids": ids} and "failed 3 times" in reason and "RecentValueDays" in reason
    assert status_counts(db) == {0: 5}


def test_database_connections_killed_while_consuming_lose_nothing(db, mongo_server, collection):
    """pg_terminate_backend on the consumer's sessions, again and again: it reconnects, nothing is lost."""
    ids = seed_with_pending(db, patients=100, pending=1000)
    set_setting(db, "aim_import", "MessageSize", "10")
    queue = DatabaseQueue(db, QUEUE_NAME, visibility_seconds=3)
    run_import(db, queue, triggered_by="test")
    queue.close()
    store = DocumentStore(mongo_server.url, "flp_aim", collection.name)
    consumer = Consumer(
        db, lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=3), store, max_attempts=50
    )
    thread, errors = run_in_thread(consumer)
    kill = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    killed = 0
    try:
        for _ in range(6):
            time.sleep(0.7)
            killed += scalar(db, kill)
        assert wait_until(lambda: status_counts(db).get(2, 0) == len(ids), 180), status_counts(db)
    finally:
        consumer.stop.set()
        thread.join(timeout=60)
        store.close()
    assert not errors, errors
    assert killed >= 6 and consumer.stats.outages > 0
    assert_delivered_exactly_once(db, collection, ids)
