"""The AIM consumer ("Aim fetch data"): queue messages of FLP_AIM ids to care-plan documents in MongoDB.

Per message, in this order, each step idempotent:

1. ``Job.aim_documents``: one set-based call returns the documents of the ids
   still to deliver, the ids delivered already and the ids found nowhere;
2. ``DocumentStore.write``: insert_many, duplicates count as written;
3. ``Job.aim_mark_delivered``: the rows marked delivered;
4. ids found nowhere go to the dead-letter place as a new body, with the reason;
5. the message is acknowledged.

A crash between any two steps leaves the message unacknowledged: it is
delivered again and the steps repeat without effect where they were done.
So in effect every row is delivered exactly once: MongoDB holds one document
per AIM id, and the row is marked only after MongoDB has it.

Each worker overlaps up to three messages in three threads (``_Worker.loop``):
its fetch thread reads message N+2 (step 1) while its write thread writes
N+1 (step 2) and the worker's own thread marks and acknowledges N (steps
3-5) once N's write has returned. The order within a message never changes;
two messages are independent (different rows, or the same rows absorbed as
duplicates and zero rows marked), so the overlap keeps the guarantee above.
At most ``IN_FLIGHT`` messages are unacknowledged per worker; queue calls
stay on the worker's thread.

Failures are of two kinds. An outage (MongoDB or the database unreachable) is
nobody's message's fault: the consumer keeps the message (extending its
visibility on the database queue), waits with backoff and jitter and tries the
same message again, spending no attempt; nothing is acknowledged or marked
meanwhile. Anything else is the message's problem: it is given back (one more
attempt) until it has been delivered MaxAttempts times, then dead-lettered
with the reason. A body that is not a message of ids is dead-lettered at once.
Reasons and log lines hold counts, ids and error codes, never a document, so
never a CPR number (and ``clean_reason`` masks any that slipped in).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gc
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from orchestrator.aim.store import DocumentStore, DocumentWriteError, WriteResult
from orchestrator.logs import mask_cpr
from orchestrator.queue import Message, Queue, backoff

log = logging.getLogger(__name__)

MAX_IDS = 4999  # Job.aim_documents / aim_mark_delivered accept at most this many
RECEIVE_WAIT = 1.0  # seconds a receive waits for a message
LOOK_AHEAD_WAIT = 0.05  # seconds to wait for the next message while one is in hand
# Messages per worker at once: one being marked and acknowledged, one being written, one
# whose documents are read ahead (so a slow read does not hold up the next write).
# RabbitMQ's prefetch is set to this; with less, the pipeline only runs shallower.
IN_FLIGHT = 3


class BadMessage(ValueError):
    """The body is not ``{"ids": [positive integers]}``."""


def parse_body(body: str) -> list[int]:
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"the body is not JSON ({exc.__class__.__name__})") from None
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
        raise BadMessage(f'the body is not {{"ids": [...]}} with 1 to {MAX_IDS} ids')
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise BadMessage("the ids are not all positive whole numbers")
    return ids


def parse_documents(text: str | None) -> list[dict]:
    """The documents of Job.aim_documents (a JSON array) as dicts for pymongo.

    orjson, with the cyclic garbage collector paused for the one call: a message's
    thousand documents are some hundred thousand dicts and lists, and the collector
    would otherwise scan them (and the documents still in flight) many times over
    while they are built. orjson holds the GIL for the whole call, so the pause
    covers little but the parse; the collector is switched on again if it fails.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return orjson.loads(text or "[]")
    finally:
        if paused:
            gc.enable()


# SQLSTATEs of a lost or refused connection: class 08, the server shutting
# down (57P01-57P03), too many connections (53300); HYT00/HYT01 are ODBC timeouts.
OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "HYT00", "HYT01")


def is_outage(exc: BaseException) -> bool:
    """True when the error says a server is unreachable, not that the message is bad."""
    import pymongo.errors

    if isinstance(exc, pymongo.errors.ConnectionFailure | pymongo.errors.WriteConcernError):
        return True
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    names = {cls.__name__ for cls in type(exc).__mro__}
    if not names & {"OperationalError", "InterfaceError", "DatabaseUnreachable"}:
        return False
    sqlstate = getattr(exc, "sqlstate", None)  # psycopg
    if sqlstate is None and exc.args and isinstance(exc.args[0], str) and len(exc.args[0]) == 5:
        sqlstate = exc.args[0] if "pyodbc" in type(exc).__module__ else None
    # No SQLSTATE at all: the client could not reach the server.
    return sqlstate is None or sqlstate.startswith(OUTAGE_SQLSTATES)


@dataclass
class ConsumeStats:
    messages: int = 0
    documents: int = 0
    duplicates: int = 0
    marked: int = 0
    already_delivered: int = 0
    missing: int = 0
    dead_letters: int = 0
    retries: int = 0  # messages given back after a failure
    outages: int = 0  # waits for an unreachable server
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("fetch", "write", "mark", "ack"), 0.0)
    )
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts) -> None:
        with self.lock:
            for key, value in counts.items():
                if key in self.seconds:
                    self.seconds[key] += value
                else:
                    setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("lock", "seconds")}
        out.update({f"{k}_s": round(v, 3) for k, v in self.seconds.items()})
        return out


class Consumer:
    """Runs ``concurrency`` workers, each with its own queue object and database connection."""

    def __init__(
        self,
        db,
        open_queue: Callable[[], Queue],
        store: DocumentStore,
        max_attempts: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.db = db
        self.open_queue = open_queue
        self.store = store
        self.max_attempts = max_attempts
        self.stop = stop or threading.Event()
        self.stats = ConsumeStats()

    def run(self, concurrency: int = 1, once: bool = False) -> ConsumeStats:
        """Consume until stopped; with ``once``, until the queue is empty."""
        errors: list[BaseException] = []

        def work() -> None:
            try:
                _Worker(self).loop(once)
            except BaseException as exc:  # reported after the join
                errors.append(exc)
                self.stop.set()

        threads = [
            threading.Thread(target=work, name=f"aim-consumer-{i}") for i in range(max(concurrency, 1))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return self.stats


class _Connection:
    """One autocommit DBAPI connection, opened on first use and again after it was closed."""

    def __init__(self, db) -> None:
        self.db = db
        self._raw = None

    def get(self):
        if self._raw is None:
            self._raw = self.db.engine.raw_connection()
            self._raw.driver_connection.autocommit = True
        return self._raw.driver_connection

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw = None


class _Worker:
    def __init__(self, consumer: Consumer) -> None:
        self.c = consumer
        self.stats = consumer.stats
        self._own = _Connection(consumer.db)  # this thread's: marks, and reads on a retry
        self._fetch_conn = _Connection(consumer.db)  # the look-ahead thread's

    def _conn(self):
        return self._own.get()

    def _drop_conn(self) -> None:
        self._own.close()

    def _receive(self, queue: Queue, wait: float) -> Message | None:
        """The next message, or None; waits out an outage of the database queue's database."""
        outage = 0
        while not self.c.stop.is_set():
            try:
                return queue.receive(wait_seconds=wait)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.stats.add(outages=1)
                queue.sleep(backoff(outage))
                outage += 1
        return None

    def loop(self, once: bool) -> None:
        """Receive and handle messages, three stages overlapped (a pipeline of IN_FLIGHT messages).

        The fetch thread reads a message's documents from the database, the write thread
        writes them to MongoDB as soon as they are read, and this thread marks a message
        delivered and acknowledges it once its write has returned, then receives the next.
        So while message N is marked and acknowledged, N+1 is written and N+2 read (the
        reads run ahead as far as IN_FLIGHT allows): MongoDB, the slowest step, waits
        neither for the database nor for the queue. Each
        message still goes write, then mark, then ack, in that order; queue calls stay on
        this thread (a pika channel belongs to one thread).
        """
        queue = self.c.open_queue()
        fetcher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aim-fetch")
        writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aim-write")
        in_flight: collections.deque = collections.deque()
        try:
            while not self.c.stop.is_set():
                if len(in_flight) < IN_FLIGHT:
                    message = self._receive(queue, LOOK_AHEAD_WAIT if in_flight else RECEIVE_WAIT)
                    if message is not None:
                        started = self._start(queue, message, fetcher, writer)
                        if started is not None:
                            in_flight.append(started)
                        continue
                    if not in_flight:
                        if once:
                            return
                        continue
                self.handle(queue, *in_flight.popleft())
        finally:
            # Messages still in flight are not acknowledged: the queue gives them back.
            writer.shutdown(wait=True)
            fetcher.shutdown(wait=True)
            self._fetch_conn.close()
            queue.close()
            self._drop_conn()

    def _start(self, queue: Queue, message: Message, fetcher, writer) -> tuple | None:
        """Check the message; start reading and then writing its documents. None when it
        was dealt with at once."""
        self.stats.add(messages=1)
        if message.attempts > self.c.max_attempts:
            self._dead(
                queue, message, f"delivered {message.attempts} times (MaxAttempts {self.c.max_attempts})"
            )
            return None
        try:
            ids = parse_body(message.body)
        except BadMessage as exc:
            self._dead(queue, message, f"not a message of FLP_AIM ids: {exc}")
            return None
        fetched = fetcher.submit(self._fetch, self._fetch_conn, ids)
        return message, ids, writer.submit(self._write, fetched)

    def _fetch(self, connection: _Connection, ids: list[int]) -> tuple[dict, list[dict]]:
        """Job.aim_documents for ``ids``: its outputs and the documents, parsed."""
        started = time.perf_counter()
        try:
            out = self.c.db.call(
                connection.get(),
                "Job.aim_documents",
                {"Ids": json.dumps(ids)},
                ("Documents", "Found", "AlreadyDelivered", "Missing"),
            )
        except Exception:
            connection.close()
            raise
        # The JSON text (about 6 MB a message) is not needed once parsed: let it go now,
        # not when the message is acknowledged two steps later.
        documents = parse_documents(out.pop("Documents"))
        self.stats.add(fetch=time.perf_counter() - started)
        return out, documents

    def _write(self, fetched) -> tuple[dict, list[int], WriteResult]:
        """The write thread's step: wait for the documents, write them (fetch errors pass through).

        Returns the ids written, not the documents: the mark needs only those, and the
        documents (tens of MB a message as Python objects) are freed while the message
        waits for its mark, so a worker holds at most two messages' documents, not three.
        """
        out, documents = fetched.result() if isinstance(fetched, concurrent.futures.Future) else fetched
        started = time.perf_counter()
        written = self.c.store.write(documents)
        self.stats.add(write=time.perf_counter() - started)
        return out, [d["_id"] for d in documents], written

    def handle(self, queue: Queue, message: Message, ids: list[int], written=None) -> None:
        """Finish one message: its write's result (or, on a retry, read and write again here),
        then mark, dead-letter the ids found nowhere, acknowledge."""
        outage = 0
        while not self.c.stop.is_set():
            try:
                self._process(queue, message, ids, written)
                return
            except Exception as exc:
                written = None  # a retry reads and writes the documents again
                if is_outage(exc):
                    self._drop_conn()
                    pause = backoff(outage)
                    outage += 1
                    self.stats.add(outages=1)
                    log.warning(
                        "aim consumer waits for an unreachable server",
                        extra={
                            "message_id": message.id,
                            "error": type(exc).__name__,
                            "pause_s": round(pause, 2),
                        },
                    )
                    with contextlib.suppress(Exception):
                        queue.keep(message, pause + 60)
                    queue.sleep(pause)
                    continue
                self._failed(queue, message, exc)
                return

    def _process(self, queue: Queue, message: Message, ids: list[int], written=None) -> None:
        db = self.c.db
        if written is not None:
            out, delivered, result = written.result()
        else:
            out, delivered, result = self._write(self._fetch(self._own, ids))
        t2 = time.perf_counter()
        marked = 0
        if delivered:
            marked = db.call(
                self._conn(), "Job.aim_mark_delivered", {"Ids": json.dumps(delivered)}, ("Rows",)
            )["Rows"]
        missing = [int(i) for i in out["Missing"].split(",")] if out["Missing"] else []
        if missing:
            queue.dead_letter_body(
                json.dumps({"ids": missing}),
                f"{len(missing)} FLP_AIM ids not found (no row, or its care plan is gone): "
                + ",".join(map(str, missing[:50])),
            )
        t3 = time.perf_counter()
        queue.ack(message)
        t4 = time.perf_counter()
        # Job.aim_documents v2 classifies each distinct id once (found, delivered, missing).
        already_delivered = int(out["AlreadyDelivered"] or 0)
        self.stats.add(
            documents=result.inserted,
            duplicates=result.duplicates,
            marked=int(marked or 0),
            already_delivered=already_delivered,
            missing=len(missing),
            dead_letters=1 if missing else 0,
            mark=t3 - t2,
            ack=t4 - t3,
        )

    def _failed(self, queue: Queue, message: Message, exc: Exception) -> None:
        if isinstance(exc, DocumentWriteError):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {mask_cpr(str(exc).splitlines()[0] if str(exc) else '')}"
        if message.attempts >= self.c.max_attempts:
            self._dead(queue, message, f"failed {message.attempts} times; last: {reason}")
            return
        log.warning(
            "aim message failed; given back",
            extra={"message_id": message.id, "attempts": message.attempts, "error": mask_cpr(reason)[:300]},
        )
        self.stats.add(retries=1)
        queue.nack(message)

    def _dead(self, queue: Queue, message: Message, reason: str) -> None:
        queue.dead_letter(message, reason)
        self.stats.add(dead_letters=1)
        log.warning(
            "aim message dead-lettered",
            extra={"message_id": message.id, "attempts": message.attempts, "reason": mask_cpr(reason)[:300]},
        )
