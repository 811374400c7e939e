"""What every benchmark shares: a throwaway PostgreSQL, a migrated database,
timing, and the one output format (figure, baseline, ratio).

Benchmarks are scripts, not tests: ``python -m bench.<name>``. Each measures
its baseline in the same run, because these machines are noisy, and prints
its result as a ratio against it. docs/benchmarks.md keeps the latest table.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from orchestrator import migrate
from orchestrator.database import Database, sqlalchemy_url


@contextlib.contextmanager
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL: FLP_BENCH_DATABASE_URL, or a throwaway pgserver."""
    url = os.environ.get("FLP_BENCH_DATABASE_URL")
    if url:
        yield sqlalchemy_url(url)
        return
    with tempfile.TemporaryDirectory(prefix="flp-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            yield sqlalchemy_url(server.get_uri())
        finally:
            server.cleanup()


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def fresh_database(server_url: str, migrated: bool = True) -> Iterator[Database]:
    """A new database on the server (migrated to head unless told not to), dropped afterwards."""
    name = f"flp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        migrate.upgrade(url)
    db = Database(url)
    try:
        yield db
    finally:
        db.engine.dispose()
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
