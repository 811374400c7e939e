"""Archive AIM against a single-statement bulk move, on PostgreSQL.

    python -m bench.bench_archive [--rows 1200000 --delivered 1000000]

Loads FLP_AIM (COPY) into a fresh migrated database once; every round clones
it twice, so both contenders start from the same bytes. Ours: the Archive AIM job with the
settings below. Baseline: INSERT INTO history SELECT ...; DELETE ...; in one
transaction. A probe (its own connection, bounded loop) inserts an FLP_AIM row
and reads a few rows by Id, first on the idle database, then during each move.

Printed per round and as the median over the rounds: throughput ours / bulk
(target >= 0.5), our longest transaction (the largest Ops.JobRunBatch.DurationMs,
target <= 250 ms) beside the bulk move's, and the probe's p99 latency during
each move as a ratio against idle in the same round (target: ours <= 2x idle).
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import psycopg

from bench.common import (
    Probe,
    Stopwatch,
    add_setting_overrides,
    clone,
    fresh_database,
    libpq_url,
    load_average,
    median,
    percentile,
    pg_server,
    recycle_wal,
    report,
    setting_overrides,
    spread,
    verdict,
    warm,
)
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job

DEFAULT_ROWS = 1_200_000
DEFAULT_DELIVERED = 1_000_000
SEED = 20240601
DEFAULT_ROUNDS = 3  # the machines are noisy: each round is ours + bulk on fresh copies
COPY_CHUNK_ROWS = 100_000
SPAN_DAYS = 60  # the rows were created over this many days
DELIVERY_DELAY_HOURS = (1, 48)  # from creation to delivery
RECENT_SHARE = 0.10  # the newest rows are all still pending or queued

# Our job's settings for the run: the ones migration 0002 ships for archive_aim
# (per-job rows in Ops.Setting), written again so --set can vary them. Small
# batches (about 5 ms, 1,000 to 2,000 rows) keep each burst of WAL short, so a
# probe's commit rarely waits behind one; no sleep, so throughput holds.
# Measured on a 2-core machine: 4,999-row batches with SleepFactor 0.2 gave the
# same throughput but a probe p99 of 2.2 to 3x idle.
JOB_SETTINGS = {
    "RetentionDays": "0",
    "BatchTargetMs": "5",
    "BatchSizeStart": "1000",
    "BatchSizeMin": "200",
    "BatchSizeMax": "2000",
    "SleepFactor": "0",
    "BatchMaxMs": "50",
}
# Engine settings a run may vary with --set (written as archive_aim rows only when given).
ENGINE_SETTINGS = ("TimeEfficiencyMin", "LockTimeoutMs")

IDLE_PROBE_SECONDS = 5.0
PROBE_INTERVAL_SECONDS = 0.005  # pause between probe iterations
PROBE_MAX_ITERATIONS = 200_000  # bound on the probe loop, whatever happens
PROBE_READ_IDS = 5
PROBE_INSERT = "INSERT INTO PLSP.FLP_AIM (ForloebsplanId) VALUES (%s)"
PROBE_READ = "SELECT Id, Status FROM PLSP.FLP_AIM WHERE Id = ANY(%s)"
P99 = 0.99
THROUGHPUT_TARGET = 0.5  # ours / bulk, at least
LONGEST_TRANSACTION_TARGET_MS = 250
LATENCY_TARGET = 2.0  # ours p99 / idle p99, at most

# The baseline: one transaction, two statements.
BULK_INSERT = """
INSERT INTO PLSP.FLP_AIM_History
    (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc, ArchivedUtc)
SELECT Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc, clock_timestamp() AT TIME ZONE 'UTC'
FROM PLSP.FLP_AIM
WHERE Status = 2 AND DeliveredUtc < %(cutoff)s
"""
COPY_AIM = "COPY PLSP.FLP_AIM (Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc) FROM STDIN"
SETTING_UPSERT = """
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES ('archive_aim', %s, %s, %s)
ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value
"""
BULK_DELETE = "DELETE FROM PLSP.FLP_AIM WHERE Status = 2 AND DeliveredUtc < %(cutoff)s"


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------


def generate(rows: int, delivered: int, now: np.datetime64) -> list[str]:
    """FLP_AIM rows as COPY text lines: the oldest mostly delivered, a few stuck, the newest pending."""
    rng = np.random.default_rng(SEED)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    older = int(rows * (1 - RECENT_SHARE))
    if delivered > older:
        raise SystemExit(f"--delivered must be at most {older:,} (the newest {RECENT_SHARE:.0%} are pending)")
    status = np.zeros(rows, dtype=np.int8)
    status[rng.choice(older, size=delivered, replace=False)] = 2
    status[(status == 0) & (rng.random(rows) < 0.5)] = 1  # queued
    span_ms = SPAN_DAYS * 86_400_000
    created = now - np.timedelta64(span_ms, "ms") + (ids * span_ms // rows).astype("timedelta64[ms]")
    queued = created + rng.integers(1, 3_600_000, rows).astype("timedelta64[ms]")
    lo, hi = (h * 3_600_000 for h in DELIVERY_DELAY_HOURS)
    delivered_at = queued + rng.integers(lo, hi, rows).astype("timedelta64[ms]")
    delivered_at = np.minimum(delivered_at, now - np.timedelta64(1, "m"))
    fmt = np.datetime_as_string
    created_s, queued_s, delivered_s = (
        fmt(created, unit="ms"),
        fmt(queued, unit="ms"),
        fmt(delivered_at, unit="ms"),
    )
    plan = rng.integers(1, rows // 3, rows)
    lines = []
    for i in range(rows):
        s = status[i]
        q = queued_s[i] if s > 0 else r"\N"
        d = delivered_s[i] if s == 2 else r"\N"
        lines.append(f"{ids[i]}\t{plan[i]}\t{s}\t{created_s[i]}\t{q}\t{d}\n")
    return lines


def load(db: Database, lines: list[str]) -> None:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(COPY_AIM) as copy,
        ):
            for start in range(0, len(lines), COPY_CHUNK_ROWS):
                copy.write("".join(lines[start : start + COPY_CHUNK_ROWS]))
        conn.execute("SELECT setval(pg_get_serial_sequence('plsp.flp_aim', 'id'), max(Id)) FROM PLSP.FLP_AIM")
        conn.execute("VACUUM ANALYZE PLSP.FLP_AIM")
        conn.execute("CHECKPOINT")


def warm_up(db: Database) -> None:
    """The table and its key read once, then CHECKPOINT and sync (bench.common.warm)."""
    warm(
        db,
        "SELECT count(*), sum(Status) FROM PLSP.FLP_AIM",
        "SELECT count(*) FROM PLSP.FLP_AIM WHERE Id > 0 AND Id % 7 = 3",
    )


# ------------------------------------------------------------------------------
# Probe
# ------------------------------------------------------------------------------


class AimProbe(Probe):
    """Keeps inserting one FLP_AIM row and reading a few by Id; records each round's latency."""

    def __init__(self, db: Database, max_id: int) -> None:
        super().__init__(db, PROBE_INTERVAL_SECONDS, PROBE_MAX_ITERATIONS)
        self.max_id = max_id
        self.rng = random.Random(SEED)

    def prepare(self, n: int) -> list[int]:
        return [self.rng.randint(1, self.max_id) for _ in range(PROBE_READ_IDS)]

    def step(self, conn: psycopg.Connection, ids: list[int]) -> None:
        conn.execute(PROBE_INSERT, (self.rng.randint(1, 99_999),))
        conn.execute(PROBE_READ, (ids,)).fetchall()


def probe_idle(db: Database, max_id: int) -> list[float]:
    with AimProbe(db, max_id) as probe:
        time.sleep(IDLE_PROBE_SECONDS)
    return probe.latencies_ms


# ------------------------------------------------------------------------------
# The two contenders
# ------------------------------------------------------------------------------


def run_ours(db: Database, max_id: int, settings: dict[str, str]) -> dict:
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(SETTING_UPSERT, (name, value, "bench_archive"))
    with AimProbe(db, max_id) as probe:
        result = run_job(db, JOBS["archive_aim"], triggered_by="test")
    if result.result != "succeeded":
        raise SystemExit(f"archive_aim did not succeed: {result}")
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        batches, longest_ms, median_ms, median_size, largest_size = conn.execute(
            "SELECT count(*), max(DurationMs), percentile_cont(0.5) WITHIN GROUP (ORDER BY DurationMs), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY BatchSize), max(BatchSize) "
            "FROM Ops.JobRunBatch WHERE JobRunId = %s",
            (result.job_run_id,),
        ).fetchone()
        slowest = conn.execute(
            "SELECT BatchNo, DurationMs, BatchSize FROM Ops.JobRunBatch WHERE JobRunId = %s "
            "ORDER BY DurationMs DESC, BatchNo LIMIT 3",
            (result.job_run_id,),
        ).fetchall()
    return {
        "rows": result.rows,
        "seconds": result.seconds,
        "batches": batches,
        "longest_ms": longest_ms,
        "median_batch_ms": median_ms,
        "median_size": median_size,
        "largest_size": largest_size,
        "slowest": slowest,
        "latencies": probe.latencies_ms,
    }


def run_bulk(db: Database, max_id: int) -> dict:
    with psycopg.connect(libpq_url(db.url)) as conn, AimProbe(db, max_id) as probe:
        cutoff = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::timestamp(3)").fetchone()[0]
        conn.commit()
        with Stopwatch() as watch:
            conn.execute(BULK_INSERT, {"cutoff": cutoff})
            rows = conn.execute(BULK_DELETE, {"cutoff": cutoff}).rowcount
            conn.commit()
    return {"rows": rows, "seconds": watch.seconds, "latencies": probe.latencies_ms}


# ------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------


def one_round(server: str, template: Database, rows: int, settings: dict[str, str], n: int) -> dict:
    """Ours and the bulk move, each on its own fresh copy of the loaded data, with an idle probe first."""
    with clone(server, template, f"ours{n}") as ours_db, clone(server, template, f"bulk{n}") as bulk_db:
        warm_up(ours_db)
        idle = probe_idle(ours_db, rows)
        ours = run_ours(ours_db, rows, settings)
        warm_up(bulk_db)
        bulk = run_bulk(bulk_db, rows)
    if ours["rows"] != bulk["rows"]:
        raise SystemExit(f"round {n}: rows moved differ: ours {ours['rows']:,}, bulk {bulk['rows']:,}")
    idle_p99 = percentile(idle, P99)
    figures = {
        "rows": ours["rows"],
        "ours_rate": ours["rows"] / ours["seconds"],
        "bulk_rate": bulk["rows"] / bulk["seconds"],
        "longest_ms": ours["longest_ms"],
        "bulk_ms": bulk["seconds"] * 1000,
        "idle_p99": idle_p99,
        "ours_p99": percentile(ours["latencies"], P99),
        "bulk_p99": percentile(bulk["latencies"], P99),
    }
    print(
        f"round {n}: ours {ours['rows']:,} rows in {ours['seconds']:.1f} s, {ours['batches']} batches "
        f"(median {ours['median_batch_ms']:.0f} ms, longest {ours['longest_ms']} ms); "
        f"bulk {bulk['rows']:,} rows in {bulk['seconds']:.1f} s; {load_average()}"
    )
    print(
        f"  batch rows: median {ours['median_size']:.0f}, largest {ours['largest_size']}; slowest batches "
        + ", ".join(f"#{no} {ms} ms ({size} rows)" for no, ms, size in ours["slowest"])
    )
    for phase, values in (("idle", idle), ("ours", ours["latencies"]), ("bulk", bulk["latencies"])):
        print(f"  probe during {phase}: {spread(values)}")
    print(
        f"  throughput ours/bulk {figures['ours_rate'] / figures['bulk_rate']:.2f}, "
        f"probe p99 ours/idle {figures['ours_p99'] / idle_p99:.2f}, "
        f"bulk/idle {figures['bulk_p99'] / idle_p99:.2f}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--delivered", type=int, default=DEFAULT_DELIVERED)
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="repeat ours + bulk this often; medians are reported",
    )
    add_setting_overrides(parser, "archive_aim")
    args = parser.parse_args(argv)
    settings = dict(JOB_SETTINGS)
    for name, value in setting_overrides(parser, args.set).items():
        if name not in settings and name not in ENGINE_SETTINGS:
            parser.error(f"--set {name}: not one of {', '.join((*settings, *ENGINE_SETTINGS))}")
        settings[name] = value

    print(
        f"bench_archive: {args.rows:,} FLP_AIM rows, {args.delivered:,} delivered; "
        f"PostgreSQL; {args.rounds} rounds"
    )
    print("our settings (per-job Ops.Setting rows): " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    now = np.datetime64(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "ms")
    with Stopwatch() as gen:
        lines = generate(args.rows, args.delivered, now)
    with pg_server() as server, fresh_database(server) as template:
        recycle_wal(server)
        with Stopwatch() as loading:
            load(template, lines)
        del lines
        print(f"generated in {gen.seconds:.1f} s, loaded (COPY, VACUUM ANALYZE) in {loading.seconds:.1f} s")
        rounds = [one_round(server, template, args.rows, settings, n) for n in range(1, args.rounds + 1)]

    if any(r["rows"] != args.delivered for r in rounds):
        raise SystemExit(f"rows moved: {[r['rows'] for r in rounds]}, expected {args.delivered:,} each")

    def mid(key: str) -> float:
        return median([r[key] for r in rounds])

    throughput = median([r["ours_rate"] / r["bulk_rate"] for r in rounds])
    latency = median([r["ours_p99"] / r["idle_p99"] for r in rounds])
    bulk_latency = median([r["bulk_p99"] / r["idle_p99"] for r in rounds])
    longest = max(r["longest_ms"] for r in rounds)
    report(
        f"Archive AIM vs bulk move, median of {len(rounds)} rounds (ratio = ours / baseline)",
        [
            (
                "throughput, rows/s",
                f"{mid('ours_rate'):,.0f}",
                f"{mid('bulk_rate'):,.0f} (bulk)",
                f"{throughput:.2f}",
            ),
            (
                "longest transaction, ms",
                f"{longest} (max)",
                f"{mid('bulk_ms'):,.0f} (bulk)",
                f"{longest / mid('bulk_ms'):.3f}",
            ),
            (
                "probe p99 during ours, ms",
                f"{mid('ours_p99'):.2f}",
                f"{mid('idle_p99'):.2f} (idle)",
                f"{latency:.2f}",
            ),
            (
                "probe p99 during bulk, ms",
                f"{mid('bulk_p99'):.2f}",
                f"{mid('idle_p99'):.2f} (idle)",
                f"{bulk_latency:.2f}",
            ),
        ],
    )
    print()
    print(f"at the end: {load_average()}")
    throughput_ok = throughput >= THROUGHPUT_TARGET
    longest_ok = longest <= LONGEST_TRANSACTION_TARGET_MS
    latency_ok = latency <= LATENCY_TARGET
    print(f"throughput ours/bulk {throughput:.2f} (target >= {THROUGHPUT_TARGET}): {verdict(throughput_ok)}")
    print(
        f"longest transaction {longest} ms "
        f"(target <= {LONGEST_TRANSACTION_TARGET_MS} ms): {verdict(longest_ok)}"
    )
    print(f"probe p99 ours/idle {latency:.2f} (target <= {LATENCY_TARGET}): {verdict(latency_ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
