"""ConvertPatientValues over 1,000,000 raw values against a plain INSERT ... SELECT copy of them.

    python -m bench.bench_convert [--values 1000000] [--seed 1]

Loads a synthetic population with the seed (raw values as the LPS send them:
decimal comma or point, units in the text, padding, blanks, typos, three date
formats), keeps exactly --values of its values, then in the same run, on a
server with recycled WAL segments (bench.common.recycle_wal) and a checkpoint
before each contender:
  * baseline: one INSERT INTO copy SELECT * FROM PLSP.Patientvaerdier into a
    table LIKE it, with its indexes (the cost of writing the rows once);
  * for scale, not a target: the write alone, on a copy of the database: the
    same rows updated in place in 4,000-row batches with constant converted
    values (picked FOR UPDATE SKIP LOCKED, one UPDATE, one commit a batch,
    triggers on), with no parsing and no batch engine: what any conversion
    that updates Patientvaerdier in place costs at least;
  * ours: the convert_values job (batches on the engine, SleepFactor 0, batch
    size at its 4,000 ceiling), every row read, parsed, converted or marked
    invalid with a reason, in short transactions.
Then the nightly retry (convert_invalid_values with MaxAttempts 2) gives the
still-invalid values up. Printed: seconds, rows/s, ratio (target ours <= 3x
the copy), the shares converted, invalid, rejected, and the reasons.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os

import psycopg

from bench.common import (
    Stopwatch,
    clone,
    fresh_database,
    libpq_url,
    load_average,
    pg_server,
    recycle_wal,
    report,
    verdict,
    warm,
)
from orchestrator.dev import seed
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job

DEFAULT_VALUES = 1_000_000
VALUES_PER_PATIENT = 35  # about what the seed makes (3.5 million for 100,000 patients)
TODAY = dt.date(2026, 6, 1)
TARGET = 3.0  # ours / copy, at most
JOB_SETTINGS = {
    "SleepFactor": "0",
    "BatchSizeStart": "4000",
    "BatchSizeMin": "4000",
    "TimeLimitSeconds": "36000",
    "BatchTargetMs": "5000",
    "BatchMaxMs": "5000",
}


def set_settings(conn: psycopg.Connection, job: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        conn.execute(
            "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (%s, %s, %s, 'bench') "
            "ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value",
            (job, name, value),
        )


# The write alone: a batch of rows of status 0 updated in place with constant converted values.
FLOOR_BATCH = """
WITH picked AS (
    SELECT v.ctid AS RowAt, v.PatientvaerdiId
    FROM PLSP.Patientvaerdier AS v
    WHERE v.ConversionStatus IN (0, 2) AND v.ConversionStatus = 0 AND v.PatientvaerdiId > %s
    ORDER BY v.PatientvaerdiId
    LIMIT 4000
    FOR UPDATE OF v SKIP LOCKED
),
written AS (
    UPDATE PLSP.Patientvaerdier AS v SET
        ConversionStatus = 1, ConversionAttempts = v.ConversionAttempts + 1, ReasonCode = NULL,
        ValueNumeric = 1, Comparator = NULL, Unit = v.Unit, MeasuredUtc = TIMESTAMP '2020-01-01',
        ConvertedUtc = TIMESTAMP '2026-06-01'
    FROM picked AS p
    WHERE v.ctid = p.RowAt
    RETURNING v.PatientvaerdiId
)
SELECT count(*), max(PatientvaerdiId) FROM written
"""


def write_floor(db) -> tuple[float, int]:
    """Seconds to update every row of ``db`` in place in 4,000-row batches (FLOOR_BATCH), and the rows."""
    rows, position = 0, 0
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # as Job.convert_values_rows runs
        with Stopwatch() as watch:
            while True:
                count, last = conn.execute(FLOOR_BATCH, (position,)).fetchone()
                rows += count
                if count < 4000:
                    break
                position = last
    return watch.seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=DEFAULT_VALUES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()

    with pg_server() as server, fresh_database(server) as db:
        recycle_wal(server)
        patients = args.values // VALUES_PER_PATIENT + 1000
        with Stopwatch() as load:
            seed.seed(db, patients=patients, seed=args.seed, today=TODAY)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # trimming marks nobody
            conn.execute(
                "DELETE FROM PLSP.Patientvaerdier WHERE PatientvaerdiId > "
                "(SELECT PatientvaerdiId FROM PLSP.Patientvaerdier ORDER BY 1 OFFSET %s LIMIT 1)",
                (args.values - 1,),
            )
            conn.execute("RESET session_replication_role")
            rows = conn.execute("SELECT count(*) FROM PLSP.Patientvaerdier").fetchone()[0]
            conn.execute("VACUUM ANALYZE PLSP.Patientvaerdier")
            print(f"seed: {patients:,} patients in {load.seconds:.1f} s; {rows:,} raw values kept")
            set_settings(conn, "convert_values", JOB_SETTINGS)
            set_settings(conn, "convert_invalid_values", JOB_SETTINGS | {"MaxAttempts": "2"})
            conn.execute(
                "CREATE TABLE public.bench_copy "
                "(LIKE PLSP.Patientvaerdier INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
        scan = "SELECT count(*) FROM PLSP.Patientvaerdier"
        warm(db, scan)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            with Stopwatch() as copy:
                conn.execute("INSERT INTO public.bench_copy SELECT * FROM PLSP.Patientvaerdier")
            conn.execute("DROP TABLE public.bench_copy")
        print(f"copy: {copy.seconds:.1f} s ({load_average()})")

        with clone(server, db, "floor") as floor_db:
            warm(floor_db, scan)
            floor_seconds, floor_rows = write_floor(floor_db)
        print(f"write alone: {floor_seconds:.1f} s for {floor_rows:,} rows ({load_average()})")

        warm(db, scan)

        with Stopwatch() as ours:
            result = run_job(db, JOBS["convert_values"], triggered_by="manual")
        assert result.error is None, result.error
        print(f"ours: {ours.seconds:.1f} s ({load_average()})")
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")  # this session's counts; the job's are flushed
            updated, hot = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE schemaname = 'plsp' AND relname = 'patientvaerdier'"
            ).fetchone()
        print(f"ours: {hot:,} of {updated:,} updates of Patientvaerdier HOT (the copy is not counted)")
        with Stopwatch() as retry:
            again = run_job(db, JOBS["convert_invalid_values"], triggered_by="manual")
        assert again.error is None, again.error

        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            status = dict(
                conn.execute("SELECT ConversionStatus, count(*) FROM PLSP.Patientvaerdier GROUP BY 1")
            )
            reasons = conn.execute(
                "SELECT ReasonCode, count(*) FROM PLSP.Patientvaerdier WHERE ReasonCode IS NOT NULL "
                "GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
            batches, longest = conn.execute(
                "SELECT count(*), max(DurationMs) FROM Ops.JobRunBatch WHERE JobRunId = %s",
                (result.job_run_id,),
            ).fetchone()

    load_after = os.getloadavg()
    ratio = ours.seconds / copy.seconds
    report(
        f"ConvertPatientValues over {rows:,} raw values vs INSERT ... SELECT copy (same rows, same run)",
        [
            ("rows", f"{result.rows:,}", f"{rows:,}", ""),
            ("seconds", f"{ours.seconds:.1f}", f"{copy.seconds:.1f}", f"{ratio:.2f}"),
            (
                "the write alone, seconds",
                f"{floor_seconds:.1f}",
                f"{copy.seconds:.1f}",
                f"{floor_seconds / copy.seconds:.2f}",
            ),
            ("rows per second", f"{result.rows / ours.seconds:,.0f}", f"{rows / copy.seconds:,.0f}", ""),
            ("batches, longest ms", f"{batches:,}, {longest:,}", "1 statement", ""),
        ],
    )
    converted, invalid, rejected = (status.get(k, 0) for k in (1, 2, 3))
    print(
        f"\nafter the conversion and one nightly retry (MaxAttempts 2, {retry.seconds:.1f} s): "
        f"converted {converted / rows:.1%}, invalid {invalid / rows:.1%}, rejected {rejected / rows:.1%}"
    )
    print("reasons: " + ", ".join(f"{reason} {count:,}" for reason, count in reasons))
    print(f"\ntarget: ours <= {TARGET:.0f}x the copy: {verdict(ratio <= TARGET)} ({ratio:.2f}x)")
    before, after = (", ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
    print(f"load average (1, 5, 15 min): before {before}; after {after}")


if __name__ == "__main__":
    main()
