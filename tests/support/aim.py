"""Helpers of the AIM pipeline tests and benchmark: pending FLP_AIM rows, statuses, a consumer."""

from __future__ import annotations

import threading
import uuid

from orchestrator.aim import QUEUE_NAME
from orchestrator.aim import settings as aim_settings
from orchestrator.aim.consumer import Consumer
from orchestrator.aim.store import DocumentStore
from orchestrator.dev import seed
from orchestrator.queue.database import DatabaseQueue
from tests.support.sql import execute, fetch_all, scalar


def seed_with_pending(db, patients: int = 60, pending: int = 0, seed_value: int = 1) -> list[int]:
    """Seed a population, make every FLP_AIM row delivered, then add ``pending`` new pending rows.

    Returns the ids of the pending rows (ascending), the only rows the import may publish.
    """
    seed.seed(db, patients=patients, seed=seed_value)
    execute(db, "UPDATE PLSP.FLP_AIM SET Status = 2, DeliveredUtc = CreatedUtc WHERE Status <> 2")
    if pending:
        add_pending(db, pending)
    return [r[0] for r in fetch_all(db, "SELECT Id FROM PLSP.FLP_AIM WHERE Status = 0 ORDER BY Id")]


def add_pending(db, rows: int) -> None:
    """``rows`` new pending FLP_AIM rows over the existing care plans (round robin)."""
    execute(
        db,
        "INSERT INTO PLSP.FLP_AIM (ForloebsplanId) "
        "SELECT p.ForloebsplanId FROM generate_series(1, ?) AS g(n) "
        "INNER JOIN (SELECT ForloebsplanId, row_number() OVER (ORDER BY ForloebsplanId) - 1 AS k, "
        "count(*) OVER () AS c FROM PLSP.Forloebsplan) AS p ON p.k = mod(g.n - 1, p.c) ORDER BY g.n",
        (rows,),
    )


def status_counts(db) -> dict[int, int]:
    return dict(fetch_all(db, "SELECT Status, count(*) FROM PLSP.FLP_AIM GROUP BY Status"))


def set_setting(db, job: str, name: str, value: str) -> None:
    execute(db, "UPDATE Ops.Setting SET Value = ? WHERE JobName = ? AND Name = ?", (value, job, name))
    assert scalar(db, "SELECT Value FROM Ops.Setting WHERE JobName = ? AND Name = ?", (job, name)) == value


def mongo_collection_name() -> str:
    return f"careplans_{uuid.uuid4().hex[:10]}"


def store_for(db, mongo_url: str, collection: str) -> DocumentStore:
    settings = aim_settings.load(db)
    store = DocumentStore(mongo_url, settings.mongo_database, collection, "1", settings.mongo_timeout_ms)
    store.ensure_indexes()
    return store


def consume_once(db, store, queue_factory=None, max_attempts: int = 5, concurrency: int = 1):
    """Run the consumer until the queue is empty; return its stats."""
    factory = queue_factory or (lambda: DatabaseQueue(db, QUEUE_NAME, visibility_seconds=30))
    consumer = Consumer(db, factory, store, max_attempts=max_attempts, stop=threading.Event())
    return consumer.run(concurrency=concurrency, once=True)
