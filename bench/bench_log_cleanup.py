"""Log clean-up: cost against rows removed, and what a concurrent log writer sees, on PostgreSQL.

    python -m bench.bench_log_cleanup [--small 10000 --big 1000000 --months 10]

One fresh migrated database. Each round loads rows (COPY through PLSP.Log) into
the old months before the current UTC month, spread evenly, while a writer
thread (its own connection) inserts a log row for now every few milliseconds
through PLSP.Log and a reader thread counts the last minute's rows through
PLSP.Log; both time every statement.

  * ours, small: the log_cleanup job removing --small rows;
  * ours, big: the log_cleanup job removing --big rows;
  * baseline: ``DELETE FROM PLSP.Log WHERE LoggedUtc < <start of this month>``
    removing --big rows, one statement.

Printed: time big / small (target <= 2: the cost does not grow with the rows),
our time beside the plain DELETE's, and the longest insert of the writer during
each (target < 1 s).

Then the design choice, measured: a reader holds an old month open (an open
transaction that read it) while the month is removed with a lock budget of
LOCK_BUDGET_MS, three ways: ours (TRUNCATE, lock asked with NOWAIT and retried,
never queued), TRUNCATE with lock_timeout (queued), and DETACH PARTITION + DROP
with lock_timeout (the alternative design; DETACH ... CONCURRENTLY cannot run in
a procedure). Printed: the longest insert and the longest read of the whole log
during each.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

import numpy as np
import psycopg

from bench.common import Stopwatch, fresh_database, libpq_url, median, percentile, pg_server, report
from orchestrator.database import Database
from orchestrator.jobs import JOBS, run_job

DEFAULT_SMALL = 10_000
DEFAULT_BIG = 1_000_000
DEFAULT_MONTHS = 10  # old months the rows are spread over
SEED = 20261126
COPY_CHUNK_ROWS = 100_000
MONTH_SPREAD_SECONDS = 27 * 86_400  # rows fall within the first 27 days of their month
SETTLE_SECONDS = 2.0  # after a CHECKPOINT, before anything is timed
OBSERVE_SECONDS = 0.5  # the probes run this long before and after each contender
WRITER_INTERVAL_SECONDS = 0.002
READER_INTERVAL_SECONDS = 0.02
PROBE_MAX_ROUNDS = 500_000  # bound on each probe loop, whatever happens
LOCK_BUDGET_MS = 1_000  # what each contender may wait for an old month's lock
TIME_RATIO_TARGET = 2.0
WRITER_WAIT_TARGET_MS = 1_000.0
P99 = 0.99
REPEATS = 3  # each of our rounds runs this often; the median time counts (noisy shared machines)
OURS_DESIGN = "ours: TRUNCATE, NOWAIT retried"

COPY_LOG = "COPY PLSP.Log (LoggedUtc, Level, Source, Message, CorrelationId) FROM STDIN"
WRITE = "INSERT INTO PLSP.Log (LoggedUtc, Level, Source, Message) VALUES (%s, 'INFO', 'bench', %s)"
READ = "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc >= (now() AT TIME ZONE 'UTC') - INTERVAL '1 minute'"
PLAIN_DELETE = "DELETE FROM PLSP.Log WHERE LoggedUtc < %s"
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")
SOURCES = ("UploadData", "HentCDA", "CheckPatientInkluded", "ConvertPatientValues", "FlpAimImport")


def month_start(offset: int) -> datetime:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1)


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------


def load(db: Database, rows: int, months: int) -> None:
    """``rows`` log rows spread evenly over the ``months`` months before the current one."""
    rng = np.random.default_rng(SEED + rows)
    month = rng.integers(1, months + 1, rows)
    starts = np.array([np.datetime64(month_start(-m), "ms") for m in range(months + 1)])
    logged = starts[month] + rng.integers(0, MONTH_SPREAD_SECONDS * 1000, rows).astype("timedelta64[ms]")
    logged_s = np.datetime_as_string(logged, unit="ms")
    levels = rng.integers(0, len(LEVELS), rows)
    sources = rng.integers(0, len(SOURCES), rows)
    corr = rng.integers(0, 2**62, rows)
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(COPY_LOG) as copy:
            for start in range(0, rows, COPY_CHUNK_ROWS):
                stop = min(rows, start + COPY_CHUNK_ROWS)
                copy.write(
                    "".join(
                        f"{logged_s[i]}\t{LEVELS[levels[i]]}\t{SOURCES[sources[i]]}\t"
                        f"request {i} handled for klinik {i % 2000}, patient ref {corr[i] % 99991}\t"
                        f"00000000-0000-4000-8000-{corr[i] % 10**12:012d}\n"
                        for i in range(start, stop)
                    )
                )
        # Old months in production were vacuumed long ago: so are these, before timing.
        conn.execute("VACUUM ANALYZE PLSP.Log")
        conn.execute("CHECKPOINT")
    time.sleep(SETTLE_SECONDS)


def old_rows(db: Database) -> int:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc < %s", (month_start(0),)
        ).fetchone()[0]


# ------------------------------------------------------------------------------
# Probes: a log writer and a reader of the whole log
# ------------------------------------------------------------------------------


class Probe(threading.Thread):
    """Runs one statement again and again on its own connection; times each."""

    def __init__(self, db: Database, kind: str) -> None:
        super().__init__(daemon=True)
        self.url, self.kind = libpq_url(db.url), kind
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        interval = WRITER_INTERVAL_SECONDS if self.kind == "writer" else READER_INTERVAL_SECONDS
        with psycopg.connect(self.url, autocommit=True) as conn:
            for n in range(PROBE_MAX_ROUNDS):
                if self.stop.is_set():
                    break
                started = time.perf_counter()
                try:
                    if self.kind == "writer":
                        conn.execute(WRITE, (datetime.now(UTC).replace(tzinfo=None), f"bench writer {n}"))
                    else:
                        conn.execute(READ).fetchone()
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(interval)


class Observed:
    """A writer and a reader running around a block of work."""

    def __init__(self, db: Database) -> None:
        self.writer, self.reader = Probe(db, "writer"), Probe(db, "reader")

    def __enter__(self) -> Observed:
        self.writer.start()
        self.reader.start()
        time.sleep(OBSERVE_SECONDS)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(OBSERVE_SECONDS)
        for probe in (self.writer, self.reader):
            probe.stop.set()
            probe.join()
        errors = self.writer.errors + self.reader.errors
        if errors:
            raise SystemExit(f"a probe failed: {errors[0]}")


# ------------------------------------------------------------------------------
# Contenders
# ------------------------------------------------------------------------------


def wal_position(db: Database) -> int:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        return conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()[0]


def run_ours(db: Database) -> dict:
    wal_before = wal_position(db)
    with Observed(db) as seen:
        result = run_job(db, JOBS["log_cleanup"], triggered_by="test")
    wal_bytes = wal_position(db) - wal_before
    if result.result != "succeeded":
        raise SystemExit(f"log_cleanup did not succeed: {result}")
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        batch_ms = conn.execute(
            "SELECT string_agg(DurationMs::text, ', ' ORDER BY BatchNo) FROM Ops.JobRunBatch "
            "WHERE JobRunId = %s",
            (result.job_run_id,),
        ).fetchone()[0]
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "seen": seen,
        "wal_bytes": wal_bytes,
        "detail": f"batches {batch_ms} ms",
    }


def run_plain_delete(db: Database) -> dict:
    wal_before = wal_position(db)
    with (
        Observed(db) as seen,
        psycopg.connect(libpq_url(db.url), autocommit=True) as conn,
        Stopwatch() as watch,
    ):
        rows = conn.execute(PLAIN_DELETE, (month_start(0),)).rowcount
    wal_bytes = wal_position(db) - wal_before
    # What the DELETE leaves behind: dead rows that VACUUM must still read and clear.
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn, Stopwatch() as vacuum:
        conn.execute("VACUUM PLSP.Log")
    return {
        "rows": rows,
        "seconds": watch.seconds,
        "seen": seen,
        "wal_bytes": wal_bytes,
        "vacuum_seconds": vacuum.seconds,
        "detail": f"then VACUUM PLSP.Log {vacuum.seconds:.3f} s",
    }


def with_reader_holding(db: Database, partition: str, action) -> dict:
    """Run ``action(conn)`` while another transaction holds ``partition`` open."""
    holder = psycopg.connect(libpq_url(db.url))
    holder.execute(f"SELECT count(*) FROM {partition}").fetchone()
    try:
        with (
            Observed(db) as seen,
            psycopg.connect(libpq_url(db.url), autocommit=True) as conn,
            Stopwatch() as watch,
        ):
            outcome = action(conn)
    finally:
        holder.rollback()
        holder.close()
    return {"seconds": watch.seconds, "seen": seen, "outcome": outcome}


def queued(statements: list[str]):
    def action(conn) -> str:
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_BUDGET_MS}ms'")
                for statement in statements:
                    conn.execute(statement)
        except psycopg.errors.LockNotAvailable:
            return "gave up (lock_timeout)"
        return "done"

    return action


def ours_action(db: Database):
    def action(conn) -> str:
        result = run_job(db, JOBS["log_cleanup"], triggered_by="test")
        with psycopg.connect(libpq_url(db.url), autocommit=True) as c:
            busy = c.execute(
                "SELECT count(*) FROM Ops.JobRunBatch WHERE JobRunId = %s AND Note LIKE '%% busy%%'",
                (result.job_run_id,),
            ).fetchone()[0]
        return f"{result.result}, {busy} month(s) left as busy"

    return action


# ------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------


def longest(run: dict, kind: str) -> float:
    """The longest statement of the writer or the reader during ``run``, ms."""
    return max(getattr(run["seen"], kind).latencies_ms)


def describe(name: str, run: dict) -> None:
    seen = run["seen"]
    for probe in (seen.writer, seen.reader):
        values = probe.latencies_ms
        print(
            f"  {name}: {probe.kind} {len(values)} statements, p99 {percentile(values, P99):.2f} ms, "
            f"max {max(values):.2f} ms"
        )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def set_setting(db: Database, name: str, value: str) -> None:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute(
            "UPDATE Ops.Setting SET Value = %s WHERE JobName = 'log_cleanup' AND Name = %s", (value, name)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=DEFAULT_SMALL)
    parser.add_argument("--big", type=int, default=DEFAULT_BIG)
    parser.add_argument("--months", type=int, default=DEFAULT_MONTHS)
    args = parser.parse_args(argv)
    print(
        f"bench_log_cleanup: {args.small:,} and {args.big:,} old rows over {args.months} months "
        f"before {month_start(0):%Y-%m}; PostgreSQL"
    )

    with pg_server() as server, fresh_database(server) as db:
        set_setting(db, "LockWaitMs", str(LOCK_BUDGET_MS))
        run_job(db, JOBS["log_cleanup"], triggered_by="test")  # warm-up: nothing to do yet
        runs: dict[str, list[dict]] = {}
        for name, rows, repeats in (
            ("ours, small", args.small, REPEATS),
            ("ours, big", args.big, REPEATS),
            ("plain DELETE", args.big, 1),
        ):
            for _ in range(repeats):
                with Stopwatch() as loading:
                    load(db, rows, args.months)
                if old_rows(db) != rows:
                    raise SystemExit(f"{name}: loaded {old_rows(db)} old rows, expected {rows}")
                run = run_plain_delete(db) if name == "plain DELETE" else run_ours(db)
                if run["rows"] != rows or old_rows(db) != 0:
                    raise SystemExit(f"{name}: removed {run['rows']} of {rows}, {old_rows(db)} old rows left")
                runs.setdefault(name, []).append(run)
                print(
                    f"{name}: loaded {rows:,} rows in {loading.seconds:.1f} s; "
                    f"removed in {run['seconds']:.3f} s, "
                    f"WAL {run['wal_bytes'] / 2**20:.1f} MiB, {run['detail']}"
                )
                describe(name, run)

        # The design choice: one old month held open by a reader.
        busy = f"plsp.log_{month_start(-1):%Y%m}"
        designs = {}
        for name, make in (
            (OURS_DESIGN, lambda: ours_action(db)),
            ("TRUNCATE with lock_timeout", lambda: queued([f"TRUNCATE TABLE {busy}"])),
            (
                "DETACH + DROP with lock_timeout",
                lambda: queued([f"ALTER TABLE PLSP.Log DETACH PARTITION {busy}", f"DROP TABLE {busy}"]),
            ),
        ):
            load(db, args.small, args.months)
            designs[name] = with_reader_holding(db, busy, make())
            print(f"{name}: {designs[name]['outcome']} in {designs[name]['seconds']:.3f} s")
            describe(name, designs[name])

    small, big, plain = (
        {
            "seconds": median([r["seconds"] for r in runs[name]]),
            "wal_bytes": median([r["wal_bytes"] for r in runs[name]]),
        }
        for name in ("ours, small", "ours, big", "plain DELETE")
    )
    time_ratio = big["seconds"] / small["seconds"]
    plain_with_vacuum = plain["seconds"] + runs["plain DELETE"][0]["vacuum_seconds"]
    writer_ms = {name: max(longest(run, "writer") for run in rounds) for name, rounds in runs.items()}
    report(
        "Log clean-up: cost against rows removed (ratio = ours / baseline)",
        [
            (
                f"time (median of {REPEATS}), {args.big:,} rows vs {args.small:,} rows, s",
                f"{big['seconds']:.3f}",
                f"{small['seconds']:.3f}",
                f"{time_ratio:.2f}",
            ),
            (
                f"WAL written, {args.big:,} rows vs {args.small:,} rows, MiB",
                f"{big['wal_bytes'] / 2**20:.2f}",
                f"{small['wal_bytes'] / 2**20:.2f}",
                f"{big['wal_bytes'] / small['wal_bytes']:.2f}",
            ),
            (
                f"time, ours vs plain DELETE of {args.big:,} rows, s",
                f"{big['seconds']:.3f}",
                f"{plain['seconds']:.3f} (DELETE)",
                f"{big['seconds'] / plain['seconds']:.3f}",
            ),
            (
                "time, ours vs plain DELETE + the VACUUM it leaves, s",
                f"{big['seconds']:.3f}",
                f"{plain_with_vacuum:.3f} (DELETE + VACUUM)",
                f"{big['seconds'] / plain_with_vacuum:.3f}",
            ),
            (
                f"WAL written, ours vs plain DELETE of {args.big:,} rows, MiB",
                f"{big['wal_bytes'] / 2**20:.2f}",
                f"{plain['wal_bytes'] / 2**20:.2f} (DELETE)",
                f"{big['wal_bytes'] / plain['wal_bytes']:.4f}",
            ),
            *(
                (
                    f"longest writer insert during {name}, ms",
                    f"{writer_ms[name]:.1f}",
                    f"{WRITER_WAIT_TARGET_MS:,.0f} (target)",
                    f"{writer_ms[name] / WRITER_WAIT_TARGET_MS:.3f}",
                )
                for name in runs
            ),
        ],
    )
    ours_design = designs[OURS_DESIGN]
    rows = []
    for kind, what in (("writer", "writer insert"), ("reader", "whole-log read")):
        for name, run in designs.items():
            if name != OURS_DESIGN:
                ours, other = longest(ours_design, kind), longest(run, kind)
                rows.append(
                    (f"longest {what}, ms", f"{ours:,.1f}", f"{other:,.1f} ({name})", f"{ours / other:.3f}")
                )
    report(
        f"An old month held open by a reader, lock budget {LOCK_BUDGET_MS} ms (ratio = ours / other)", rows
    )
    print()
    ok = time_ratio <= TIME_RATIO_TARGET
    print(f"time big/small {time_ratio:.2f} (target <= {TIME_RATIO_TARGET}): {verdict(ok)}")
    for name in ("ours, small", "ours, big"):
        ok = writer_ms[name] < WRITER_WAIT_TARGET_MS
        print(f"longest writer insert, {name}: {writer_ms[name]:.1f} ms (target < 1000 ms): {verdict(ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
