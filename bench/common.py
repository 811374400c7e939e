"""What every benchmark shares: a throwaway PostgreSQL, a migrated database,
timing, and the one output format (figure, baseline, ratio).

Benchmarks are scripts, not tests: ``python -m bench.<name>``. Each measures
its baseline in the same run, because these machines are noisy, and prints
its result as a ratio against it. docs/benchmarks.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from orchestrator.db import migrate
from orchestrator.db.connection import Database
from orchestrator.db.databases import create_database, drop_database
from orchestrator.db.server import start_throwaway
from orchestrator.db.urls import libpq_url, sqlalchemy_url

WAL_SEGMENT_MB = 16
WAL_RECYCLED_MB = 1536  # more than a benchmark writes between two of its CHECKPOINTs (load, warm)


@contextlib.contextmanager
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL: FLP_BENCH_DATABASE_URL, or a throwaway pgserver."""
    url = os.environ.get("FLP_BENCH_DATABASE_URL")
    if url:
        yield sqlalchemy_url(url)
        return
    with tempfile.TemporaryDirectory(prefix="flp-bench-") as tmp:
        server = start_throwaway(Path(tmp), cleanup_mode="stop")
        try:
            yield sqlalchemy_url(server.get_uri())
        finally:
            server.cleanup()


@contextlib.contextmanager
def fresh_database(server_url: str, migrated: bool = True) -> Iterator[Database]:
    """A new database on the server (migrated to head unless told not to), dropped afterwards."""
    name = f"flp_bench_{uuid.uuid4().hex[:10]}"
    url = create_database(server_url, name)
    if migrated:
        migrate.upgrade(url)
    db = Database(url)
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(server_url, name)


@contextlib.contextmanager
def clone(server_url: str, source: Database, suffix: str = "") -> Iterator[Database]:
    """An identical copy of ``source`` (CREATE DATABASE ... TEMPLATE), dropped afterwards.

    Loading is the slow part of a benchmark; a copy of the loaded database lets
    every contender start from the same bytes without loading twice. The copy
    is named ``<source>_<suffix>`` (``_copy`` without a suffix). FILE_COPY
    checkpoints and copies files instead of writing the copy through WAL, so it
    is quick and leaves no WAL behind for a measurement to meet.
    """
    source.engine.dispose()  # a template may have no other connections
    source_name = make_url(source.url).database
    name = f"{source_name}_{suffix or 'copy'}"
    db = Database(create_database(server_url, name, template=source_name, file_copy=True))
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(server_url, name)


def recycle_wal(server_url: str) -> bool:
    """Give a throwaway server the recycled WAL segments a server in service has.

    A fresh cluster creates (and zero-fills) a 16 MB segment every time its
    WAL grows, stalling every commit for tens of milliseconds; a server in
    service reuses recycled segments. The contenders of a benchmark run on the
    same server, so all of them get recycled segments alike, and no checkpoint
    is forced by WAL volume during a measurement. Only on the throwaway server:
    never changes a server given by FLP_BENCH_DATABASE_URL (returns False then).
    Prints what it did, so the output says so.
    """
    if os.environ.get("FLP_BENCH_DATABASE_URL"):
        return False
    with Stopwatch() as watch, psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET min_wal_size = '{WAL_RECYCLED_MB}MB'")
        conn.execute(f"ALTER SYSTEM SET max_wal_size = '{2 * WAL_RECYCLED_MB}MB'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CREATE TABLE public.bench_wal_fill (x integer)")
        for _ in range(WAL_RECYCLED_MB // WAL_SEGMENT_MB):
            conn.execute("INSERT INTO public.bench_wal_fill VALUES (1)")
            conn.execute("SELECT pg_switch_wal()")
        conn.execute("DROP TABLE public.bench_wal_fill")
        conn.execute("CHECKPOINT")
    print(
        f"server: {WAL_RECYCLED_MB} MB of recycled WAL segments ({watch.seconds:.1f} s), "
        "as a server in service has; ours and the baseline alike"
    )
    return True


def warm(db: Database, *queries: str, settle_seconds: float = 0.0) -> None:
    """Run ``queries`` once (reads of the table and the index a contender uses), so no
    contender starts from a cold cache; then CHECKPOINT and flush the file system's dirty
    pages (loading's and cloning's files), so no write-back runs under a measurement; then
    wait ``settle_seconds``."""
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        for query in queries:
            conn.execute(query)
        conn.execute("CHECKPOINT")
    os.sync()
    time.sleep(settle_seconds)


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction 0.99 for p99); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Print a result table: figure | ours | baseline | ratio (ours / baseline)."""
    print(f"\n{title}")
    header = ("figure", "ours", "baseline", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def spread(latencies_ms: list[float]) -> str:
    """A latency distribution in one line: count, p50, p90, p99, max."""
    cuts = ", ".join(f"p{round(f * 100)} {percentile(latencies_ms, f):.2f}" for f in (0.5, 0.9, 0.99))
    return f"{len(latencies_ms)} rounds, {cuts}, max {max(latencies_ms):.2f} ms"


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


class Probe(threading.Thread):
    """What a client of the database sees while a contender runs: a thread that runs one round
    of statements again and again on its own (autocommit) connection, paced by
    ``interval_seconds``, and times each round (``latencies_ms``).

    Its own connection, so it meets the contender only in the server (locks, WAL, I/O), as an
    application would; the loop is bounded by ``max_rounds`` whatever happens, and ends at the
    next round after ``stop`` is set. A subclass says what one round is: ``prepare`` (untimed:
    ids, timestamps) and ``step`` (timed: the statements). A failed round is recorded in
    ``errors`` and the loop goes on; leaving the ``with`` block (or ``check``) fails the
    benchmark then, so a figure never silently rests on a probe that broke.
    """

    kind = "probe"

    def __init__(self, db: Database, interval_seconds: float, max_rounds: int) -> None:
        super().__init__(daemon=True)
        self.url = libpq_url(db.url)
        self.interval_seconds, self.max_rounds = interval_seconds, max_rounds
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def prepare(self, n: int) -> Any:
        """What round ``n`` needs, made before its timing starts."""
        return n

    def step(self, conn: psycopg.Connection, arg: Any) -> None:
        """One round: the statements timed."""
        raise NotImplementedError

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for n in range(self.max_rounds):
                if self.stop.is_set():
                    break
                arg = self.prepare(n)
                started = time.perf_counter()
                try:
                    self.step(conn, arg)
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(self.interval_seconds)

    def halt(self) -> None:
        """Stop the loop and wait for the thread."""
        self.stop.set()
        self.join()

    def check(self) -> None:
        if self.errors:
            raise SystemExit(f"the {self.kind} failed {len(self.errors)} time(s): {self.errors[0]}")

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.halt()
        if exc_type is None:  # a failure inside the block is the one to see
            self.check()


def add_setting_overrides(parser: argparse.ArgumentParser, job: str) -> None:
    """The --set NAME=VALUE option every batch benchmark offers for its job's settings."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a {job} setting for this run (e.g. --set SleepFactor=2); repeatable",
    )


def setting_overrides(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    """--set NAME=VALUE items as a dict; a malformed item stops the benchmark."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--set {item}: write NAME=VALUE")
        overrides[name] = value
    return overrides


def load_average() -> str:
    """The machine's load average (1, 5, 15 minutes), as uptime prints it: printed beside each figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"
