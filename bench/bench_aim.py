"""AIM pipeline end to end: ``python -m bench.bench_aim [--rows 150000] [--queues rabbitmq,database]``.

One run, on a throwaway PostgreSQL, a RabbitMQ node (Debian's rabbitmq-server,
started on loopback like the tests do) and a SecantusDB server:

1. a population (the seed generator; the tests' small SQL population if the
   seed fails) and ``--rows`` pending FLP_AIM rows over its care plans;
2. for each queue: FlpAimImport (claim, publish, mark: in this process, each
   procedure call timed), then ``flp aim consume --once`` as a child process
   until the queue is drained (its per-stage times from its own counters, its
   peak memory from the kernel: VmHWM of the child);
3. the floor, in the same run against the same MongoDB server: a plain
   ``insert_many`` of the same documents (read back a batch at a time, untimed)
   into a fresh collection, in batches of MessageSize.

Ratio = (import + consume wall time) / floor. Target: at most 1.5.

Beside the times it prints the CPU seconds each process used (the consumer,
PostgreSQL, SecantusDB, RabbitMQ) during the consume and during the floor, and
the load average: on a shared two-core machine the ratio moves with the CPU
the other processes leave to SecantusDB (a Python server, about one core).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pymongo

from bench.common import fresh_database, pg_server, report, verdict
from orchestrator.aim import QUEUE_NAME
from orchestrator.aim import settings as aim_settings
from orchestrator.aim.importer import run_import
from orchestrator.aim.store import INDEXES
from orchestrator.db.connection import Database
from orchestrator.dev import mongo
from orchestrator.queue import open_queue
from tests.support import aim as aim_support
from tests.support import rabbitmq
from tests.support.sql import execute, scalar

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5
# Memory a run needs, per pending row: SecantusDB keeps growing with the collections
# (the consumer's, the floor's), plus the consumer and PostgreSQL. A run that does not
# fit is refused up front: running out of memory on a machine without swap kills
# whole process trees (another run's too), without a word.
MEMORY_PER_ROW_KB = 40  # SecantusDB: 1.5 GB at 20,000 rows, about 4 GB at 150,000 (seen)
MEMORY_BASE_MB = 1536


CONSUME_CHILD = """
import sys
from orchestrator import config
from orchestrator.aim.commands import run_consume
from orchestrator.db.connection import Database
settings = config.load()
stats = run_consume(Database(settings.database_url), settings, once=True, concurrency=int(sys.argv[1]))
print(" ".join(f"{k}={v}" for k, v in stats.as_dict().items()))
"""


class TimedDatabase(Database):
    """A Database whose procedure calls are timed by procedure name."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.seconds: dict[str, float] = defaultdict(float)

    def call(self, conn, procedure, params=None, outputs=(), **kwargs):
        started = time.perf_counter()
        try:
            return super().call(conn, procedure, params, outputs, **kwargs)
        finally:
            self.seconds[procedure] += time.perf_counter() - started


class TimedQueue:
    """Wraps a queue; times publish (the confirmed part of the import)."""

    def __init__(self, queue) -> None:
        self.queue = queue
        self.publish_seconds = 0.0

    def publish(self, bodies) -> None:
        started = time.perf_counter()
        self.queue.publish(bodies)
        self.publish_seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self.queue, name)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class CpuMeter:
    """CPU seconds (user + system) of process trees, read at two moments.

    A root's figure counts its living descendants and the children it has reaped
    (PostgreSQL's postmaster reaps the backends of closed connections).
    """

    def __init__(self, roots: dict[str, int | None]) -> None:
        self.roots = {name: pid for name, pid in roots.items() if pid}

    @staticmethod
    def _tree(pid: int) -> float:
        try:
            root = psutil.Process(pid)
            total = sum(root.cpu_times()[:4])
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:4])
            return total
        except psutil.Error:
            return 0.0

    def read(self) -> dict[str, float]:
        return {name: self._tree(pid) for name, pid in self.roots.items()}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: after[name] - before.get(name, 0.0) for name in after}


def postmaster_pid(url: str) -> int | None:
    """The pid of the PostgreSQL server of ``url`` (pgserver: the socket folder is its data folder)."""
    found = re.search(r"host=([^&]+)", url)
    if not found:
        return None
    pid_file = Path(found.group(1).replace("%2F", "/")) / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def populate(db: Database, rows: int, patients: int) -> str:
    """Care plans and exactly ``rows`` pending FLP_AIM rows; returns which population was used."""
    try:
        from orchestrator.dev import seed

        seed.seed(db, patients=patients, seed=1)
        execute(db, "UPDATE PLSP.FLP_AIM SET Status = 2, DeliveredUtc = CreatedUtc WHERE Status <> 2")
        source = f"seed --patients {patients:,}"
    except Exception as exc:  # the seed generator is not usable on this tree: the tests' population
        print(f"  (seed failed: {type(exc).__name__}; using the tests' SQL population)")
        execute(db, "TRUNCATE PLSP.FLP_AIM")
        aim_support.seed_with_pending(db, patients=patients)
        source = f"SQL population, {patients:,} patients"
    aim_support.add_pending(db, rows)
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM WHERE Status = 0") == rows
    return source


def reset(db: Database) -> None:
    """The same rows pending again, the queue tables empty: the next queue starts alike."""
    execute(
        db,
        "UPDATE PLSP.FLP_AIM SET Status = 0, QueuedUtc = NULL, DeliveredUtc = NULL, ClaimJobRunId = NULL "
        "WHERE ClaimJobRunId IS NOT NULL",
    )
    execute(db, "DELETE FROM Ops.QueueMessage")
    execute(db, "DELETE FROM Ops.QueueDeadLetter")
    execute(db, "VACUUM ANALYZE PLSP.FLP_AIM")


def _vm_hwm_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def consume_child(db: Database, mongo_url: str, queue_url: str | None, concurrency: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    env.update(
        {"FLP_DATABASE_URL": db.url, "FLP_MONGO_URL": mongo_url, "FLP_CONFIG": "/nonexistent/flp.toml"}
    )
    env["PYTHONPATH"] = str(ROOT)
    if queue_url:
        env["FLP_QUEUE_URL"] = queue_url
    # The consumer's own code path (what `flp aim consume --once` runs), without the CLI's
    # schema-revision check: this run migrated the database itself.
    command = [sys.executable, "-c", CONSUME_CHILD, str(concurrency)]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # Files, not pipes: a child that logs a lot never blocks on a full pipe.
    out_file = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read after the child exits
    err_file = tempfile.TemporaryFile("w+")  # noqa: SIM115
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out_file, stderr=err_file, text=True)
    # Peak memory: VmHWM of the child's own image, read while it runs (ru_maxrss would count
    # the pages it shared with this process between fork and exec).
    peak_kb = 0
    while child.poll() is None:
        peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    if child.returncode != 0:
        raise RuntimeError(f"consumer exited {child.returncode}: {err[-2000:]}")
    stats = dict(re.findall(r"(\w+)=([\d.]+)", out))
    return {"seconds": seconds, "peak_mb": peak_kb / 1024, "stats": stats, "child_cpu_s": child_cpu}


def run_queue(kind, db, settings, mongo_url, rabbit_url, collection, concurrency, meter) -> dict:
    execute(
        db,
        "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'aim_consume' AND Name = 'MongoCollection'",
        (collection,),
    )
    queue = TimedQueue(
        open_queue(QUEUE_NAME, rabbit_url if kind == "rabbitmq" else None, database=db, prefetch=1)
    )
    db.seconds.clear()
    started = time.perf_counter()
    result = run_import(db, queue, triggered_by="manual")
    import_seconds = time.perf_counter() - started
    queue.close()
    assert result.result == "succeeded", result.error
    load_before = load_average()
    cpu_before = meter.read()
    consumed = consume_child(db, mongo_url, rabbit_url if kind == "rabbitmq" else None, concurrency)
    cpu = CpuMeter.spent(cpu_before, meter.read())
    delivered = scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM WHERE Status = 2 AND ClaimJobRunId IS NOT NULL")
    return {
        "kind": kind,
        "rows": result.rows,
        "delivered": delivered,
        "import_s": import_seconds,
        "claim_s": db.seconds["Job.aim_import_claim"],
        "publish_s": queue.publish_seconds,
        "mark_queued_s": db.seconds["Job.aim_import_mark_queued"],
        "cpu": cpu,
        "load": f"{load_before} / {load_average()}",
        **consumed,
    }


def floor(
    mongo_url: str, source: str, target: str, batch: int, meter: CpuMeter, indexed: bool = False
) -> tuple[float, int, float]:
    """Seconds to insert_many the documents of ``source`` into ``target``, in batches of ``batch``.

    The documents are read a batch at a time (untimed) from one cursor in the server's
    natural order, and only the insert_many calls are timed. Reading all of them first
    (150,000 documents: about 6 GB of dicts in this process) and sorting them on the
    server (another 5-9 GB in SecantusDB) made a full run need some 15 GB: two runs at
    once on a 24 GB machine without swap ran it out of memory. The documents are plain
    dicts, as a writer holding them would pass them: pymongo encodes them to BSON inside
    the timed part, as it does for the consumer. The server's CPU is metered around the
    inserts only (the reads cost it about 4 s of CPU for 20,000 documents).
    """
    client = pymongo.MongoClient(mongo_url)
    target_collection = client["flp_aim"][target]
    if indexed:  # the consumer's collection has these; the plain floor has none
        for keys, name in INDEXES:
            target_collection.create_index(keys, name=name)
    seconds, count, server_cpu = 0.0, 0, 0.0
    cursor = client["flp_aim"][source].find({}, batch_size=batch)
    while True:
        documents = list(itertools.islice(cursor, batch))
        if not documents:
            break
        cpu_before = meter.read()  # the server's CPU for the inserts only, not the reads
        started = time.perf_counter()
        target_collection.insert_many(documents, ordered=False)
        seconds += time.perf_counter() - started
        server_cpu += CpuMeter.spent(cpu_before, meter.read()).get("SecantusDB", 0.0)
        count += len(documents)
    cursor.close()
    client.close()
    return seconds, count, server_cpu


def print_report(
    r: dict, floor_seconds: float, indexed_seconds: float, floor_server_cpu: float, concurrency: int
) -> None:
    floor_cpu = f"{floor_server_cpu:.1f} s"
    total = r["import_s"] + r["seconds"]
    s = r["stats"]
    rows = [
        (
            "end to end (import + consume)",
            f"{total:.1f} s",
            f"{floor_seconds:.1f} s",
            f"{total / floor_seconds:.2f}",
        ),
        *(
            [
                (
                    f"end to end vs floor with our {len(INDEXES)} indexes",
                    f"{total:.1f} s",
                    f"{indexed_seconds:.1f} s",
                    f"{total / indexed_seconds:.2f}",
                )
            ]
            if indexed_seconds
            else []
        ),
        ("  import: claim (procedure calls)", f"{r['claim_s']:.2f} s", "", ""),
        ("  import: publish (confirmed)", f"{r['publish_s']:.2f} s", "", ""),
        ("  import: mark queued", f"{r['mark_queued_s']:.2f} s", "", ""),
        ("  import: wall", f"{r['import_s']:.2f} s", "", ""),
        (f"  consume: wall ({concurrency} workers, child process)", f"{r['seconds']:.1f} s", "", ""),
        ("  consume: fetch (Job.aim_documents), summed", f"{float(s.get('fetch_s', 0)):.1f} s", "", ""),
        (
            "  consume: MongoDB write, summed",
            f"{float(s.get('write_s', 0)):.1f} s",
            f"{floor_seconds:.1f} s",
            "",
        ),
        (
            "  consume: mark delivered + dead letters, summed",
            f"{float(s.get('mark_s', 0)):.1f} s",
            "",
            "",
        ),
        ("  consume: ack, summed", f"{float(s.get('ack_s', 0)):.2f} s", "", ""),
        (
            "  consume: duplicates / outage waits / retries",
            f"{int(s.get('duplicates', 0)):,} / {int(s.get('outages', 0))} / {int(s.get('retries', 0))}",
            "",
            "",
        ),
        ("  consumer peak memory (VmHWM)", f"{r['peak_mb']:.0f} MB", "", ""),
        ("  CPU during consume: consumer process", f"{r['child_cpu_s']:.1f} s", "", ""),
        *[
            (
                f"  CPU during consume: {name}",
                f"{seconds:.1f} s",
                floor_cpu if name == "SecantusDB" else "",
                "",
            )
            for name, seconds in r["cpu"].items()
        ],
        ("  load average (1, 5, 15 min) before / after consume", r["load"], "", ""),
        (
            "  rows delivered / documents written",
            f"{r['delivered']:,} / {int(s.get('documents', 0)):,}",
            "",
            "",
        ),
    ]
    ratio = total / floor_seconds
    report(f"AIM end to end, {r['kind']} queue: {verdict(ratio <= TARGET)} (target <= {TARGET}x floor)", rows)
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--queues", default="rabbitmq,database")
    parser.add_argument(
        "--no-indexed-floor",
        dest="indexed_floor",
        action="store_false",
        help="skip the second floor (insert_many into a collection with the consumer's indexes)",
    )
    # One worker: SecantusDB is one Python process (about one core); a second worker only
    # adds contention (docs/benchmarks.md). The worker's pipeline keeps it busy.
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    kinds = [k for k in args.queues.split(",") if k]
    needed_mb = MEMORY_BASE_MB + args.rows * MEMORY_PER_ROW_KB // 1024
    available_mb = psutil.virtual_memory().available // (1024 * 1024)
    if available_mb < needed_mb:
        print(
            f"bench_aim: {args.rows:,} rows need about {needed_mb:,} MB of memory, "
            f"{available_mb:,} MB are available (another run going?): not started",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # servers are stopped in the finally blocks

    rabbit = rabbitmq.RabbitServer().start() if "rabbitmq" in kinds else None
    mongo_server = mongo.MongoServer().start()
    results, floors = [], []
    try:
        with pg_server() as server_url, fresh_database(server_url) as plain:
            db = TimedDatabase(plain.url)
            started = time.perf_counter()
            source = populate(db, args.rows, args.patients)
            took = time.perf_counter() - started
            print(f"population: {source}; {args.rows:,} pending FLP_AIM rows ({took:.1f} s)")
            settings = aim_settings.load(db)
            meter = CpuMeter(
                {
                    "PostgreSQL": postmaster_pid(db.url),
                    "SecantusDB": mongo_server.process.pid if mongo_server.process else None,
                    "RabbitMQ": rabbit.process.pid if rabbit and rabbit.process else None,
                }
            )
            print(f"load average at start: {load_average()}")
            for n, kind in enumerate(kinds):
                if n:
                    reset(db)
                collection = f"bench_{kind}"
                results.append(
                    run_queue(
                        kind,
                        db,
                        settings,
                        mongo_server.url,
                        rabbit.url if rabbit else None,
                        collection,
                        args.concurrency,
                        meter,
                    )
                )
                if not floors:  # the same documents for every queue: the floors once
                    load_before = load_average()
                    plain_seconds, count, plain_cpu = floor(
                        mongo_server.url, collection, "floor", settings.message_size, meter
                    )
                    indexed_seconds, indexed_cpu = 0.0, 0.0
                    if args.indexed_floor:
                        indexed_seconds, _, indexed_cpu = floor(
                            mongo_server.url,
                            collection,
                            "floor_indexed",
                            settings.message_size,
                            meter,
                            indexed=True,
                        )
                    floors.append((plain_seconds, indexed_seconds, plain_cpu))
                    indexed_text = (
                        f"indexed {indexed_seconds:.1f} s (SecantusDB CPU {indexed_cpu:.1f} s); "
                        if args.indexed_floor
                        else ""
                    )
                    print(
                        f"floor: {count:,} documents, {plain_seconds:.1f} s "
                        f"(SecantusDB CPU {plain_cpu:.1f} s); {indexed_text}"
                        f"load average {load_before} / {load_average()}"
                    )
                    if mongo_server.process:
                        server_peak_mb = _vm_hwm_kb(mongo_server.process.pid) / 1024
                        print(f"SecantusDB peak memory so far (VmHWM): {server_peak_mb:,.0f} MB")
                r = results[-1]
                print(f"{kind}: {r['rows']:,} import {r['import_s']:.1f} s, consume {r['seconds']:.1f} s")
                print_report(r, *floors[0], args.concurrency)
            db.engine.dispose()
            own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            server_peak_mb = _vm_hwm_kb(mongo_server.process.pid) / 1024 if mongo_server.process else 0.0
            print(
                f"peak memory (VmHWM): this process {own_peak_mb:,.0f} MB, "
                f"SecantusDB {server_peak_mb:,.0f} MB"
            )
    finally:
        mongo_server.cleanup()
        if rabbit:
            rabbit.cleanup()

    return 0


if __name__ == "__main__":
    sys.exit(main())
