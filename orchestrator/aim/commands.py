"""``flp aim import | consume | status``: the AIM pipeline from the command line (and the demo)."""

from __future__ import annotations

import signal
import threading
import time

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim import settings as aim_settings
from orchestrator.aim.consumer import IN_FLIGHT, Consumer, ConsumeStats, is_outage
from orchestrator.aim.importer import run_import
from orchestrator.aim.store import DocumentStore
from orchestrator.errors import FlpError
from orchestrator.queue import Queue, backoff, open_queue
from orchestrator.runner import JobResult


class MongoNotConfigured(FlpError):
    """The consumer needs MongoDB and FLP_MONGO_URL is unset."""


def queue_for(db, settings, aim=None) -> Queue:
    """The AIM queue: RabbitMQ when FLP_QUEUE_URL is set, else the database queue."""
    aim = aim or aim_settings.load(db)
    return open_queue(
        QUEUE_NAME,
        settings.queue_url,
        database=db,
        visibility_seconds=aim.queue_visibility_seconds,
        prefetch=IN_FLIGHT,  # the consumer's pipeline: one message marked, one written, one read
    )


def run_import_command(db, settings, dry_run: bool = False, triggered_by: str = "manual") -> JobResult:
    queue = queue_for(db, settings)
    try:
        return run_import(db, queue, triggered_by, execute=not dry_run, host=getattr(settings, "host", None))
    finally:
        queue.close()


def run_consume(
    db,
    settings,
    once: bool = False,
    concurrency: int | None = None,
    mongo_url: str | None = None,
    stop: threading.Event | None = None,
) -> ConsumeStats:
    """Consume until SIGTERM/SIGINT (or, with ``once``, until the queue is empty)."""
    url = mongo_url or settings.mongo_url
    if not url:
        raise MongoNotConfigured(
            "setting mongo_url (FLP_MONGO_URL) is unset: the AIM consumer writes to MongoDB"
        )
    aim = aim_settings.load(db)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    store = DocumentStore.from_settings(url, aim)
    attempt = 0
    while True:  # the indexes, once MongoDB answers
        try:
            store.ensure_indexes()
            break
        except Exception as exc:
            if not is_outage(exc) or stop.is_set():
                raise
            time.sleep(backoff(attempt))
            attempt += 1
    try:
        consumer = Consumer(db, lambda: queue_for(db, settings, aim), store, aim.max_attempts, stop)
        return consumer.run(concurrency=concurrency or aim.concurrency, once=once)
    finally:
        store.close()


STATUS_OUTPUTS = ("Pending", "Queued", "Delivered", "Overdue", "OldestPendingSeconds")


def status(db, settings) -> dict:
    """Rows by state and the queue's counts, for ``flp aim status`` (and monitoring)."""
    with db.connect() as conn:
        rows = db.call(conn, "Job.aim_status", {}, STATUS_OUTPUTS)
    queue = queue_for(db, settings)
    try:
        counts = queue.counts()
    finally:
        queue.close()
    return {
        "pending": rows["Pending"],
        "queued": rows["Queued"],
        "overdue": rows["Overdue"],
        "delivered": rows["Delivered"],
        "oldest_pending_seconds": rows["OldestPendingSeconds"],
        "queue": "rabbitmq" if settings.queue_url else "database",
        "queue_ready": counts.ready,
        "queue_in_flight": counts.in_flight,
        "dead_letters": counts.dead,
    }
