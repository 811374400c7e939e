"""Log clean-up: cost against rows removed, and what a concurrent log writer sees, on PostgreSQL.

    python -m bench.bench_log_cleanup [--small 10000 --big 1000000 --months 10 --rounds 5]

One fresh migrated database on a server with recycled WAL segments (on a
throwaway server; bench.common.recycle_wal, for every contender alike). Each
run loads rows (COPY through PLSP.Log) into the old months before the current
UTC month, spread evenly, while a writer thread (its own connection) inserts a
log row for now every few milliseconds through PLSP.Log and a reader thread
counts the last minute's rows through PLSP.Log; both time every statement.

  * ours, small: the log_cleanup job (shipped settings) removing --small rows;
  * ours, big: the log_cleanup job removing --big rows;
  * baseline: ``DELETE FROM PLSP.Log WHERE LoggedUtc < <start of this month>``
    removing --big rows, one statement.

Ours runs --rounds times each, small and big interleaved (small, big; big,
small; ...) so a drift in the machine's load hits both alike; the medians
count. Printed: time big / small (target <= 2: the cost does not grow with the
rows), the month step's cost (the median Ops.JobRunBatch.DurationMs of the
steps that emptied a month: TRUNCATE and commit) for small and big, where the
rest of each run's time goes, our time beside the plain DELETE's, and the
longest insert of the writer during each (target < 1 s).

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
import time
from datetime import UTC, datetime

import numpy as np
import psycopg

from bench.common import (
    Probe,
    Stopwatch,
    fresh_database,
    libpq_url,
    load_average,
    median,
    percentile,
    pg_server,
    recycle_wal,
    report,
    verdict,
    warm,
)
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job

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
DEFAULT_ROUNDS = 5  # ours, small and big, run this often each; the medians count (noisy shared machines)
OURS_DESIGN = "ours: TRUNCATE, NOWAIT retried"

COPY_LOG = "COPY PLSP.Log (LoggedUtc, Level, Source, Message, CorrelationId) FROM STDIN"
WRITE = "INSERT INTO PLSP.Log (LoggedUtc, Level, Source, Message) VALUES (%s, 'INFO', 'bench', %s)"
READ = "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc >= (now() AT TIME ZONE 'UTC') - INTERVAL '1 minute'"
PLAIN_DELETE = "DELETE FROM PLSP.Log WHERE LoggedUtc < %s"
RUN_STEPS = """
SELECT DurationMs, Note LIKE 'emptied %%' FROM Ops.JobRunBatch WHERE JobRunId = %s ORDER BY BatchNo
"""
SLEEP_FACTOR = """
SELECT Value::numeric FROM Ops.Setting WHERE Name = 'SleepFactor' AND JobName IN ('log_cleanup', '*')
ORDER BY JobName = '*' LIMIT 1
"""
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
    with (
        psycopg.connect(libpq_url(db.url), autocommit=True) as conn,
        conn.cursor() as cur,
        cur.copy(COPY_LOG) as copy,
    ):
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
    # Old months in production were vacuumed long ago: so are these, before timing; then
    # CHECKPOINT, sync and a pause, so no write-back of the load runs under a measurement.
    warm(db, "VACUUM ANALYZE PLSP.Log", settle_seconds=SETTLE_SECONDS)


def old_rows(db: Database) -> int:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc < %s", (month_start(0),)
        ).fetchone()[0]


# ------------------------------------------------------------------------------
# Probes: a log writer and a reader of the whole log
# ------------------------------------------------------------------------------


class LogWriter(Probe):
    """Inserts a log row for now through PLSP.Log, again and again; times each insert."""

    kind = "writer"

    def __init__(self, db: Database) -> None:
        super().__init__(db, WRITER_INTERVAL_SECONDS, PROBE_MAX_ROUNDS)

    def prepare(self, n: int) -> tuple[datetime, str]:
        return datetime.now(UTC).replace(tzinfo=None), f"bench writer {n}"

    def step(self, conn: psycopg.Connection, row: tuple[datetime, str]) -> None:
        conn.execute(WRITE, row)


class LogReader(Probe):
    """Counts the last minute's rows through PLSP.Log (a read of the whole log); times each."""

    kind = "reader"

    def __init__(self, db: Database) -> None:
        super().__init__(db, READER_INTERVAL_SECONDS, PROBE_MAX_ROUNDS)

    def step(self, conn: psycopg.Connection, n: int) -> None:
        conn.execute(READ).fetchone()


class Observed:
    """A writer and a reader running around a block of work."""

    def __init__(self, db: Database) -> None:
        self.writer, self.reader = LogWriter(db), LogReader(db)

    def __enter__(self) -> Observed:
        self.writer.start()
        self.reader.start()
        time.sleep(OBSERVE_SECONDS)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        time.sleep(OBSERVE_SECONDS)
        for probe in (self.writer, self.reader):
            probe.halt()
        if exc_type is None:
            for probe in (self.writer, self.reader):
                probe.check()


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
        steps = conn.execute(RUN_STEPS, (result.job_run_id,)).fetchall()
        sleep_factor = float(conn.execute(SLEEP_FACTOR).fetchone()[0])
    step_ms = [ms for ms, _ in steps]
    month_ms = [ms for ms, month in steps if month]
    # The engine pauses SleepFactor times a step's duration after every step but the last.
    pause_ms = sum(int(ms * sleep_factor + 0.5) for ms in step_ms[:-1])
    rest_ms = result.seconds * 1000 - sum(step_ms) - pause_ms
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "seen": seen,
        "wal_bytes": wal_bytes,
        "month_ms": month_ms,
        "other_step_ms": sum(step_ms) - sum(month_ms),
        "pause_ms": pause_ms,
        "rest_ms": rest_ms,
        "sleep_factor": sleep_factor,
        "detail": (
            f"batches {', '.join(map(str, step_ms))} ms (month steps: median {median(month_ms):.0f} ms); "
            f"pauses ~{pause_ms} ms, the rest {rest_ms:.0f} ms"
        ),
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="run ours small and big this often each, interleaved; medians are reported",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 0 < args.small < args.big or args.months < 1:
        parser.error("need --rounds >= 1, --months >= 1 and 0 < --small < --big")
    print(
        f"bench_log_cleanup: {args.small:,} and {args.big:,} old rows over {args.months} months "
        f"before {month_start(0):%Y-%m}; PostgreSQL; {args.rounds} rounds"
    )

    # Small and big interleaved, the order turned every round (small, big; big, small; ...):
    # a drift in the machine's load hits both alike. The plain DELETE once, at the end.
    schedule = []
    for n in range(1, args.rounds + 1):
        pair = [("ours, small", args.small, n), ("ours, big", args.big, n)]
        schedule += pair if n % 2 else pair[::-1]
    schedule.append(("plain DELETE", args.big, 1))

    with pg_server() as server, fresh_database(server) as db:
        recycle_wal(server)
        set_setting(db, "LockWaitMs", str(LOCK_BUDGET_MS))
        run_job(db, JOBS["log_cleanup"], triggered_by="test")  # warm-up: nothing to do yet
        runs: dict[str, list[dict]] = {}
        for name, rows, n in schedule:
            with Stopwatch() as loading:
                load(db, rows, args.months)
            if old_rows(db) != rows:
                raise SystemExit(f"{name}: loaded {old_rows(db)} old rows, expected {rows}")
            run = run_plain_delete(db) if name == "plain DELETE" else run_ours(db)
            if run["rows"] != rows or old_rows(db) != 0:
                raise SystemExit(f"{name}: removed {run['rows']} of {rows}, {old_rows(db)} old rows left")
            runs.setdefault(name, []).append(run)
            print(
                f"{name}, round {n}: loaded {rows:,} rows in {loading.seconds:.1f} s; "
                f"removed in {run['seconds']:.3f} s, "
                f"WAL {run['wal_bytes'] / 2**20:.1f} MiB, {run['detail']}; {load_average()}"
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
    month_ms = {
        name: median([ms for run in runs[name] for ms in run["month_ms"]])
        for name in ("ours, small", "ours, big")
    }
    plain_with_vacuum = plain["seconds"] + runs["plain DELETE"][0]["vacuum_seconds"]
    writer_ms = {name: max(longest(run, "writer") for run in rounds) for name, rounds in runs.items()}
    report(
        "Log clean-up: cost against rows removed (ratio = ours / baseline)",
        [
            (
                f"time (median of {args.rounds}), {args.big:,} rows vs {args.small:,} rows, s",
                f"{big['seconds']:.3f}",
                f"{small['seconds']:.3f}",
                f"{time_ratio:.2f}",
            ),
            (
                f"one month's step (median DurationMs), ~{args.big // args.months:,} rows vs "
                f"~{args.small // args.months:,}, ms",
                f"{month_ms['ours, big']:.1f}",
                f"{month_ms['ours, small']:.1f}",
                f"{month_ms['ours, big'] / month_ms['ours, small']:.2f}"
                if month_ms["ours, small"]
                else "n/a",
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
    print(
        f"\nWhere our time goes (medians of {args.rounds} rounds; "
        "pauses: SleepFactor x each step but the last):"
    )
    for name in ("ours, small", "ours, big"):
        rounds = runs[name]
        print(
            f"  {name}: {median([len(r['month_ms']) for r in rounds]):.0f} month steps "
            "(TRUNCATE + commit; the first also checks the months ahead) "
            f"{median([sum(r['month_ms']) for r in rounds]):.0f} ms, "
            f"other steps {median([r['other_step_ms'] for r in rounds]):.0f} ms, "
            f"pauses ~{median([r['pause_ms'] for r in rounds]):.0f} ms "
            f"(SleepFactor {rounds[0]['sleep_factor']:g}), "
            f"the rest {median([r['rest_ms'] for r in rounds]):.0f} ms "
            f"(run row, job lock, health checks, batch rows, client); "
            f"total {median([r['seconds'] for r in rounds]) * 1000:.0f} ms"
        )
    pairs = [b["seconds"] / a["seconds"] for a, b in zip(runs["ours, small"], runs["ours, big"], strict=True)]
    print("  time big/small round by round: " + ", ".join(f"{ratio:.2f}" for ratio in pairs))
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
