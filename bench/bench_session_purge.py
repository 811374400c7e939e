"""Session purge against a single-statement DELETE, on PostgreSQL.

    python -m bench.bench_session_purge [--sessions 2000000 --expired 1000000] [--set SleepFactor=2]

Loads PLSP.Session (COPY) into a fresh migrated database and clones it, so both
contenders start from the same bytes. Ours: the session_purge job with the
settings it ships with (Ops.Setting as migrated). Baseline: one
``DELETE FROM PLSP.Session WHERE ExpiresUtc < now``. A probe (its own
connection, paced, bounded loop) inserts a session and reads a live one by id,
first on the idle database, then during each purge. A second one touches an
expired session by id (as a request arriving for a session that just ran out
would): it needs that row's lock, which the purge holds while deleting it.

Printed: throughput ours / bulk, our longest transaction (the largest
Ops.JobRunBatch.DurationMs) beside the bulk DELETE's, the probe's p99 latency
during each purge as a ratio against idle, and the longest wait of the touch of
an expired session during ours beside the bulk DELETE's.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from bench.common import (
    Probe,
    Stopwatch,
    add_setting_overrides,
    clone,
    fresh_database,
    libpq_url,
    percentile,
    pg_server,
    recycle_wal,
    report,
    setting_overrides,
    spread,
    warm,
)
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job

DEFAULT_SESSIONS = 2_000_000
DEFAULT_EXPIRED = 1_000_000
SEED = 20261126
COPY_CHUNK_ROWS = 100_000
EXPIRED_SPAN_SECONDS = 7 * 86_400  # expired sessions ended over the last week
LIVE_MIN_SECONDS = 3_600  # live ones end an hour from now at the earliest ...
LIVE_SPAN_SECONDS = 7 * 86_400  # ... and within the coming week
SESSION_LIFETIME_SECONDS = 1_800  # CreatedUtc is this long before ExpiresUtc
KLINIK_IDS = 2_000
PROBE_IDS = 10_000  # live session ids the probe reads from

IDLE_PROBE_SECONDS = 10.0
SETTLE_SECONDS = 2.0  # after a CHECKPOINT, before anything is measured
PROBE_INTERVAL_SECONDS = 0.005  # pause between probe rounds
PROBE_MAX_ROUNDS = 200_000  # bound on the probe loop, whatever happens
PROBE_SESSION_MINUTES = 30  # lifetime of the sessions the probe creates
TOUCH_INTERVAL_SECONDS = 0.02  # pause between touches of an expired session
P99 = 0.99

COPY_SESSIONS = "COPY PLSP.Session (SessionId, KlinikId, UserRef, CreatedUtc, ExpiresUtc) FROM STDIN"
BULK_DELETE = "DELETE FROM PLSP.Session WHERE ExpiresUtc < %(cutoff)s"
PROBE_INSERT = "INSERT INTO PLSP.Session (SessionId, UserRef, ExpiresUtc) VALUES (%s, %s, %s)"
SETTING_UPSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES ('session_purge', %s, %s, 'bench')
ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value
"""
COUNT_EXPIRED = "SELECT count(*) FROM PLSP.Session WHERE ExpiresUtc < %s"
TOUCH_EXPIRED = "UPDATE PLSP.Session SET UserRef = UserRef WHERE SessionId = %s"
PROBE_READ = "SELECT UserRef, ExpiresUtc FROM PLSP.Session WHERE SessionId = %s"


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------


def generate(total: int, expired: int, now: datetime) -> tuple[list[str], list[str], list[str]]:
    """Session rows as COPY text lines, expired and live mixed; some live and some expired ids."""
    if not 0 < expired < total:
        raise SystemExit("--expired must be more than 0 and less than --sessions")
    rng = np.random.default_rng(SEED)
    is_expired = np.zeros(total, dtype=bool)
    is_expired[rng.choice(total, size=expired, replace=False)] = True
    offsets = np.where(
        is_expired,
        -rng.integers(1, EXPIRED_SPAN_SECONDS, total),
        rng.integers(LIVE_MIN_SECONDS, LIVE_SPAN_SECONDS, total),
    )
    base = np.datetime64(now.replace(microsecond=0), "ms")
    expires = np.datetime_as_string(base + offsets.astype("timedelta64[s]"), unit="ms")
    created = np.datetime_as_string(
        base + (offsets - SESSION_LIFETIME_SECONDS).astype("timedelta64[s]"), unit="ms"
    )
    klinik = rng.integers(1, KLINIK_IDS, total)
    raw = np.frombuffer(rng.bytes(16 * total), dtype=np.uint8).reshape(total, 16)
    ids = [str(uuid.UUID(bytes=row.tobytes(), version=4)) for row in raw]
    lines = [f"{ids[i]}\t{klinik[i]}\tu{i}\t{created[i]}\t{expires[i]}\n" for i in range(total)]
    live = [ids[i] for i in np.flatnonzero(~is_expired)[:PROBE_IDS]]
    gone = [ids[i] for i in rng.permutation(np.flatnonzero(is_expired))[:PROBE_IDS]]
    return lines, live, gone


def load(db: Database, lines: list[str]) -> None:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(COPY_SESSIONS) as copy:
            for start in range(0, len(lines), COPY_CHUNK_ROWS):
                copy.write("".join(lines[start : start + COPY_CHUNK_ROWS]))
        conn.execute("VACUUM ANALYZE PLSP.Session")
        conn.execute("CHECKPOINT")


def warm_up(db: Database) -> None:
    """The table and its expiry index read once, then CHECKPOINT, sync and a pause
    (bench.common.warm), so the writes of loading and cloning are on disk before anything is timed."""
    warm(
        db,
        "SELECT count(*), max(UserRef) FROM PLSP.Session",
        "SELECT count(*) FROM PLSP.Session WHERE ExpiresUtc < now() AT TIME ZONE 'UTC'",
        settle_seconds=SETTLE_SECONDS,
    )


# ------------------------------------------------------------------------------
# Probes
# ------------------------------------------------------------------------------


class SessionProbe(Probe):
    """Keeps creating one session and reading a live one by id; records each round's latency."""

    def __init__(self, db: Database, ids: list[str]) -> None:
        super().__init__(db, PROBE_INTERVAL_SECONDS, PROBE_MAX_ROUNDS)
        self.ids = ids
        self.rng = random.Random(SEED)

    def prepare(self, n: int) -> tuple[int, datetime]:
        return n, datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=PROBE_SESSION_MINUTES)

    def step(self, conn: psycopg.Connection, arg: tuple[int, datetime]) -> None:
        n, expires = arg
        conn.execute(PROBE_INSERT, (uuid.uuid4(), f"probe{n}", expires))
        conn.execute(PROBE_READ, (self.rng.choice(self.ids),)).fetchone()


class TouchProbe(Probe):
    """Keeps touching an expired session by id, as a request arriving for a session that just
    ran out would: it needs that row's lock, which a purge holds while deleting it."""

    kind = "touch"

    def __init__(self, db: Database, ids: list[str]) -> None:
        super().__init__(db, TOUCH_INTERVAL_SECONDS, PROBE_MAX_ROUNDS)
        self.ids = ids

    def step(self, conn: psycopg.Connection, n: int) -> None:
        conn.execute(TOUCH_EXPIRED, (self.ids[n % len(self.ids)],))


def probe_idle(db: Database, live_ids: list[str]) -> list[float]:
    with SessionProbe(db, live_ids) as probe:
        time.sleep(IDLE_PROBE_SECONDS)
    return probe.latencies_ms


# ------------------------------------------------------------------------------
# The two contenders
# ------------------------------------------------------------------------------


def run_ours(db: Database, live_ids: list[str], gone_ids: list[str], loaded_at: datetime) -> dict:
    with SessionProbe(db, live_ids) as probe, TouchProbe(db, gone_ids) as toucher:
        result = run_job(db, JOBS["session_purge"], triggered_by="test")
    if result.result != "succeeded":
        raise SystemExit(f"session_purge did not succeed: {result}")
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        batches, longest_ms, median_ms, largest = conn.execute(
            "SELECT count(*), max(DurationMs), percentile_cont(0.5) WITHIN GROUP (ORDER BY DurationMs), "
            "max(RowsAffected) FROM Ops.JobRunBatch WHERE JobRunId = %s",
            (result.job_run_id,),
        ).fetchone()
        # A row the toucher held at the moment its batch came by was skipped, not waited for.
        skipped = conn.execute(COUNT_EXPIRED, (loaded_at,)).fetchone()[0]
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "batches": batches,
        "longest_ms": longest_ms,
        "median_batch_ms": median_ms,
        "largest_batch": largest,
        "latencies": probe.latencies_ms,
        "touches": toucher.latencies_ms,
        "skipped": skipped,
    }


def run_bulk(db: Database, live_ids: list[str], gone_ids: list[str]) -> dict:
    with (
        psycopg.connect(libpq_url(db.url)) as conn,
        SessionProbe(db, live_ids) as probe,
        TouchProbe(db, gone_ids) as toucher,
    ):
        cutoff = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::timestamp(3)").fetchone()[0]
        conn.commit()
        with Stopwatch() as watch:
            rows = conn.execute(BULK_DELETE, {"cutoff": cutoff}).rowcount
            conn.commit()
    return {
        "rows": rows,
        "seconds": watch.seconds,
        "latencies": probe.latencies_ms,
        "touches": toucher.latencies_ms,
    }


# ------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------


def settings(db: Database) -> str:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.Name, s.Value FROM Ops.Setting AS s WHERE s.JobName = 'session_purge' OR "
            "(s.JobName = '*' AND NOT EXISTS (SELECT 1 FROM Ops.Setting AS o "
            "WHERE o.JobName = 'session_purge' AND o.Name = s.Name)) ORDER BY s.Name"
        ).fetchall()
    return ", ".join(f"{name}={value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=DEFAULT_SESSIONS)
    parser.add_argument("--expired", type=int, default=DEFAULT_EXPIRED)
    add_setting_overrides(parser, "session_purge")
    args = parser.parse_args(argv)
    overrides = setting_overrides(parser, args.set)

    print(f"bench_session_purge: {args.sessions:,} sessions, {args.expired:,} expired; PostgreSQL")
    now = datetime.now(UTC).replace(tzinfo=None)
    with Stopwatch() as gen:
        lines, live_ids, gone_ids = generate(args.sessions, args.expired, now)
    with pg_server() as server, fresh_database(server) as ours_db:
        recycle_wal(server)
        with Stopwatch() as loading:
            load(ours_db, lines)
        del lines
        print(f"generated in {gen.seconds:.1f} s, loaded (COPY, VACUUM ANALYZE) in {loading.seconds:.1f} s")
        with psycopg.connect(libpq_url(ours_db.url), autocommit=True) as conn:
            for name, value in overrides.items():
                conn.execute(SETTING_UPSERT, (name, value))
        shipped = "as shipped" if not overrides else "overridden: " + ", ".join(args.set)
        print(f"our settings ({shipped}): {settings(ours_db)}")
        with clone(server, ours_db) as bulk_db:
            warm_up(ours_db)
            idle = probe_idle(ours_db, live_ids)
            ours = run_ours(ours_db, live_ids, gone_ids, now)
            warm_up(bulk_db)
            bulk = run_bulk(bulk_db, live_ids, gone_ids)

    if ours["rows"] + ours["skipped"] != args.expired or bulk["rows"] != args.expired:
        raise SystemExit(
            f"rows deleted: ours {ours['rows']} (+{ours['skipped']} skipped), bulk {bulk['rows']}, "
            f"expected {args.expired}"
        )
    ours_rate, bulk_rate = ours["rows"] / ours["seconds"], bulk["rows"] / bulk["seconds"]
    idle_p99 = percentile(idle, P99)
    ours_p99, bulk_p99 = percentile(ours["latencies"], P99), percentile(bulk["latencies"], P99)
    bulk_ms = bulk["seconds"] * 1000

    print(
        f"ours: {ours['rows']:,} rows in {ours['seconds']:.1f} s, {ours['batches']} batches "
        f"(median {ours['median_batch_ms']:.0f} ms, largest {ours['largest_batch']} rows); "
        f"bulk: {bulk['rows']:,} rows in {bulk['seconds']:.1f} s; "
        f"expired sessions ours skipped while touched (left for the next run): {ours['skipped']}"
    )
    for phase, values in (("idle", idle), ("ours", ours["latencies"]), ("bulk", bulk["latencies"])):
        print(f"probe during {phase}: {spread(values)}")
    for phase, values in (("ours", ours["touches"]), ("bulk", bulk["touches"])):
        print(f"touch of an expired session during {phase}: {spread(values)}")
    report(
        "Session purge vs single-statement DELETE (ratio = ours / baseline)",
        [
            (
                "throughput, rows/s",
                f"{ours_rate:,.0f}",
                f"{bulk_rate:,.0f} (bulk)",
                f"{ours_rate / bulk_rate:.2f}",
            ),
            (
                "longest transaction, ms",
                f"{ours['longest_ms']}",
                f"{bulk_ms:,.0f} (bulk)",
                f"{ours['longest_ms'] / bulk_ms:.3f}",
            ),
            (
                "probe p99 during ours, ms",
                f"{ours_p99:.2f}",
                f"{idle_p99:.2f} (idle)",
                f"{ours_p99 / idle_p99:.2f}",
            ),
            (
                "probe p99 during bulk, ms",
                f"{bulk_p99:.2f}",
                f"{idle_p99:.2f} (idle)",
                f"{bulk_p99 / idle_p99:.2f}",
            ),
            (
                "longest touch of an expired session, ms",
                f"{max(ours['touches']):.2f}",
                f"{max(bulk['touches']):.2f} (bulk)",
                f"{max(ours['touches']) / max(bulk['touches']):.3f}",
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
