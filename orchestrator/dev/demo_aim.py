"""The AIM part of ``flp demo``: FlpAimImport onto the database queue, then the consumer into a
SecantusDB server the demo starts in the data folder, and the counts afterwards.

Always the embedded defaults (the database queue, a local MongoDB wire server), whatever
FLP_QUEUE_URL or FLP_MONGO_URL say: the demo never touches configured services.
"""

from __future__ import annotations

import shutil
import threading
import time

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim import settings as aim_settings
from orchestrator.aim.consumer import Consumer
from orchestrator.aim.importer import run_import
from orchestrator.aim.store import DocumentStore
from orchestrator.dev import mongo
from orchestrator.queue.database import DatabaseQueue


def steps(settings, db, step_type) -> list:
    """Import, start MongoDB, consume; one ``step_type(name, result, rows, seconds)`` each."""
    out = []
    aim = aim_settings.load(db)
    queue = DatabaseQueue(db, QUEUE_NAME, visibility_seconds=aim.queue_visibility_seconds)
    try:
        result = run_import(db, queue, triggered_by="demo")
    finally:
        queue.close()
    out.append(step_type("aim_import", result.result, result.rows, result.seconds))
    if result.error:
        print(f"aim_import failed: {result.error}")
    if not mongo.available():
        print("aim consume skipped: SecantusDB is not installed (pip install -e '.[dev]')")
        out.append(step_type("aim consume", "skipped", None, 0.0))
        return out

    started = time.perf_counter()
    folder = settings.data_dir / "mongo-demo"
    shutil.rmtree(folder, ignore_errors=True)
    server = mongo.MongoServer(data_dir=folder).start()
    out.append(step_type("start MongoDB (SecantusDB)", "ok", None, time.perf_counter() - started))
    try:
        store = DocumentStore.from_settings(server.url, aim)
        store.ensure_indexes()
        started = time.perf_counter()
        consumer = Consumer(
            db,
            lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=aim.queue_visibility_seconds),
            store,
            aim.max_attempts,
            threading.Event(),
        )
        stats = consumer.run(concurrency=aim.concurrency, once=True)
        out.append(step_type("aim consume", "ok", stats.documents, time.perf_counter() - started))
        documents = store.count()
        store.close()
    finally:
        server.cleanup()
    with db.connect() as conn:
        rows = db.call(conn, "Job.aim_status", {}, ("Pending", "Queued", "Delivered"))
        dead = db.call(conn, "Job.queue_status", {"QueueName": QUEUE_NAME}, ("Dead",))["Dead"]
    print(
        f"AIM: {rows['Pending']:,} pending, {rows['Queued']:,} queued, {rows['Delivered']:,} delivered, "
        f"{dead:,} dead letters; {documents:,} care-plan documents in MongoDB "
        f"({aim.mongo_database}.{aim.mongo_collection})"
    )
    return out
