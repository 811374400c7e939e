"""The inclusion check, incremental against a full recompute, on 200,000 seeded patients.

    python -m bench.bench_engine [--patients 200000] [--seed 1]

Loads the population with the seed, converts its HbA1c values in one statement
(the value rules need converted values; the conversion has its own benchmark),
settles the dirty list and the Relevant change log, and runs once, in order:
  * full recompute: Job.inclusion_recompute (forced) and check_inclusion runs
    until the sweep has evaluated every patient: once from the seed's states
    (many writes) and once more with the states right (the baseline);
  * incremental: 1,000 changed patients (a new diagnosis, service or
    medication each), then check_inclusion until the dirty list is drained;
    the same with 10,000;
  * a Relevant-list change of one ATC code (C10AA statins start to include into
    heart disease): patients touched and the time to re-evaluate them.
Every run goes through the service's own path (``Orchestrator.run_now``: the
job's kept session, docs/architecture.md), so the full recompute and the
incremental runs alike run on a session kept from run to run, and with the
production batch ceiling (the check_inclusion ``BatchSizeMax`` row of migration
0022; the benchmark only fixes the first and smallest batch at it, turns the
sleep between batches off and lifts the run budget). Each drain is printed as
the run(s) that evaluated the changed patients and, apart, the confirming run
that found nothing left. Before each size the database is vacuumed and analysed
and a run evaluates 100 other changed patients (printed): the steady state of
a service that checks every minute, not the plans an autovacuum of the full
recompute's writes happened to invalidate.
Targets: the 1,000-patient run (the run that evaluated them) at most 2% of the
full recompute (its evaluating runs); the cost per changed patient about the
same at both sizes (printed, with the ratio).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from dataclasses import dataclass

import psycopg

from bench.common import Stopwatch, fresh_database, libpq_url, pg_server, report, verdict
from orchestrator.dev import seed
from orchestrator.jobs import JOBS
from orchestrator.scheduler import Orchestrator

DEFAULT_PATIENTS = 200_000
TODAY = dt.date(2026, 6, 1)
# Changed patients of the run "a minute before" each measured size (printed, not counted).
WARM_PATIENTS = 100
TARGET_SHARE = 0.02  # the 1,000-patient run / the full recompute, at most
# The production batch ceiling stays (check_inclusion BatchSizeMax, or '*'); the first and
# smallest batch are fixed at it so both sizes run the same batches. No sleep, no run budget.
CHECK_SETTINGS = {
    "SleepFactor": "0",
    "MaxPatientsPerRun": "100000000",
    "TimeLimitSeconds": "36000",
    "RelevantChangeMaxPatients": "100000000",
}
BATCH_SIZE_MAX = """
SELECT s.Value FROM Ops.Setting AS s
WHERE s.Name = 'BatchSizeMax' AND s.JobName IN ('check_inclusion', '*')
ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END
LIMIT 1
"""
CONVERT_HBA1C = """
UPDATE PLSP.Patientvaerdier
SET ConversionStatus = 1, ConversionAttempts = 1, Unit = 'mmol/mol', MeasuredUtc = ReceivedUtc,
    ValueNumeric = replace(btrim(RawValue), ',', '.')::numeric, ConvertedUtc = ReceivedUtc
WHERE Code = 'NPU27300' AND btrim(RawValue) ~ '^[0-9]{1,3}([.,][0-9])?$'
"""


@dataclass(frozen=True)
class Drain:
    """check_inclusion runs until one finds nothing: the ones that evaluated patients, then that one."""

    working_seconds: float  # the runs that evaluated patients
    working_runs: int
    evaluated: int
    empty_seconds: float  # the confirming run that found nothing left
    run_ids: tuple[int, ...] = ()  # the runs that evaluated patients

    @property
    def seconds(self) -> float:
        return self.working_seconds + self.empty_seconds


def drain(service: Orchestrator) -> Drain:
    """check_inclusion as the service runs it (kept session) until a run evaluates nobody."""
    working = 0.0
    runs = rows = 0
    ids: list[int] = []
    while True:
        started = time.perf_counter()
        result = service.run_now(JOBS["check_inclusion"])
        seconds = time.perf_counter() - started
        assert result.error is None, result.error
        if result.rows == 0:
            return Drain(working, runs, rows, seconds, tuple(ids))
        ids.append(result.job_run_id)
        working += seconds
        runs += 1
        rows += result.rows


def full_recompute(db, service: Orchestrator) -> Drain:
    with db.connect() as conn:
        out = db.call(conn, "Job.inclusion_recompute", {"Force": "Y"}, ("Patients", "Result"))
    assert out["Result"] == "requested", out
    return drain(service)


def change_patients(conn: psycopg.Connection, patients: list[int], today: dt.date) -> None:
    """One change per patient, set-based by kind: a diagnosis, a consultation, a medication."""
    thirds = [patients[0::3], patients[1::3], patients[2::3]]
    conn.execute(
        "INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate) "
        "SELECT p, 'K86', 'ICPC2', %s FROM unnest(%s::bigint[]) AS p",
        (today, thirds[0]),
    )
    conn.execute(
        "INSERT INTO PLSP.Ydelser (PatientId, KlinikId, ServiceCode, ServiceDate) "
        "SELECT p.PatientId, p.KlinikId, '0101', %s FROM PLSP.Patient AS p WHERE p.PatientId = ANY (%s)",
        (today, thirds[1]),
    )
    conn.execute(
        "INSERT INTO PLSP.Medicin (PatientId, AtcCode, StartDate) "
        "SELECT p, 'A10BA02', %s FROM unnest(%s::bigint[]) AS p",
        (today, thirds[2]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with pg_server() as server, fresh_database(server) as db:
        with Stopwatch() as load:
            seed.seed(db, patients=args.patients, seed=args.seed, today=TODAY)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # the set-up marks nobody
            conn.execute(CONVERT_HBA1C)
            conn.execute("RESET session_replication_role")
            conn.execute("DELETE FROM PLSP.PatientInkluderetPending")
            conn.execute(
                "UPDATE PLSP.RelevantChange SET AppliedUtc = RecordedUtc, Patients = 0 "
                "WHERE AppliedUtc IS NULL"
            )
            batch = conn.execute(BATCH_SIZE_MAX).fetchone()[0]
            settings = {**CHECK_SETTINGS, "BatchSizeStart": batch, "BatchSizeMin": batch}
            for name, value in settings.items():
                conn.execute(
                    "INSERT INTO Ops.Setting (JobName, Name, Value, Description) "
                    "VALUES ('check_inclusion', %s, %s, 'bench') "
                    "ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value",
                    (name, value),
                )
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
            ids = [r[0] for r in conn.execute("SELECT PatientId FROM PLSP.Patient ORDER BY 1")]
            today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        print(f"seed: {args.patients:,} patients in {load.seconds:.1f} s; batches of {batch} patients")

        service = Orchestrator(
            db, component="bench-engine", jobs={"check_inclusion": JOBS["check_inclusion"]}
        )
        first = full_recompute(db, service)
        full = full_recompute(db, service)
        # The fixed cost of one run: nothing due (median of 5).
        idle = sorted(drain(service).empty_seconds for _ in range(5))[2]

        small, large = min(1_000, len(ids) // 20), min(10_000, len(ids) // 2)  # smaller for a quick try
        warm = min(WARM_PATIENTS, len(ids) // 100)
        picked = rng.sample(ids, small + large + 2 * warm)
        sizes = ((small, picked[:small]), (large, picked[small : small + large]))
        warmups = (picked[small + large : small + large + warm], picked[small + large + warm :])
        results = {}
        batches: dict[int, list[tuple[int, int]]] = {}  # size: (ms, patients) of each batch
        warmed: dict[int, Drain] = {}
        for (size, chosen), before in zip(sizes, warmups, strict=True):
            with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
                # Steady state, as the service is in minute after minute: the full recompute's
                # (or the last size's) writes vacuumed and analysed, and the plans that analyse
                # invalidated made again by the run a minute before (a few changed patients).
                conn.execute("VACUUM ANALYZE")
                change_patients(conn, before, today)
            warmed[size] = drain(service)
            with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
                change_patients(conn, chosen, today)
                dirty = conn.execute(
                    "SELECT count(*) FROM PLSP.PatientInkluderetPending "
                    "WHERE DueUtc <= now() AT TIME ZONE 'UTC'"
                ).fetchone()[0]
            results[size] = (drain(service), dirty)
            with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
                batches[size] = conn.execute(
                    "SELECT DurationMs, RowsAffected FROM Ops.JobRunBatch WHERE JobRunId = ANY (%s) "
                    "AND RowsAffected > 0 ORDER BY JobRunId, BatchNo",
                    (list(results[size][0].run_ids),),
                ).fetchall()

        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO PLSP.RelevantMedicinInklusion "
                "(AtcPrefix, ForloebCode, ActiveFromUtc, Role, Description) "
                "VALUES ('C10AA', 'ALAL02', (now() AT TIME ZONE 'UTC') - INTERVAL '1 second', "
                "'include', 'bench')"
            )
        atc = drain(service)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            touched = conn.execute(
                "SELECT max(Patients) FROM PLSP.RelevantChange "
                "WHERE RelevantTable = 'relevantmedicininklusion' "
                "AND Code = 'C10AA'"
            ).fetchone()[0]
        db.close_kept_sessions()

    full_seconds = full.working_seconds
    rows = [
        (
            "full recompute, from the seed's states",
            f"{first.working_seconds:.1f} s ({first.working_runs} run, {first.evaluated:,} patients)",
            "",
            "",
        ),
        (
            "full recompute, states right (baseline)",
            f"{full_seconds:.2f} s ({full.working_runs} run, {full.evaluated:,} patients)",
            "",
            "1.000",
        ),
    ]
    per_patient = {}
    for size, (drained, dirty) in results.items():
        per_patient[size] = drained.working_seconds / size * 1000
        rows.append(
            (
                f"before {size:,}: the run a minute before ({warmed[size].evaluated:,} changed patients)",
                f"{warmed[size].working_seconds:.3f} s",
                "",
                "",
            )
        )
        rows.append(
            (
                f"incremental, {size:,} changed patients: the run(s) that evaluated them",
                f"{drained.working_seconds:.3f} s ({drained.working_runs} run, "
                f"{drained.evaluated:,} evaluated, {dirty:,} due)",
                f"{full_seconds:.2f} s",
                f"{drained.working_seconds / full_seconds:.4f}",
            )
        )
        rows.append(
            (
                f"incremental, {size:,}: the confirming run (nothing left)",
                f"{drained.empty_seconds * 1000:.1f} ms",
                "",
                "",
            )
        )
        rows.append(
            (
                f"incremental, {size:,}: the drain, both runs",
                f"{drained.seconds:.3f} s",
                f"{full.seconds:.2f} s",
                f"{drained.seconds / full.seconds:.4f}",
            )
        )
    rows.append(
        (
            "Relevant change: one ATC code (C10AA includes)",
            f"{atc.working_seconds:.2f} s ({touched:,} patients touched, {atc.evaluated:,} evaluated)",
            f"{full_seconds:.2f} s",
            f"{atc.working_seconds / full_seconds:.4f}",
        )
    )
    report(
        f"Inclusion check on {args.patients:,} patients, batches of {batch}: incremental vs full recompute "
        "(same run; the service's path, kept session)",
        rows,
    )
    print(
        "\ncost per changed patient (the run that evaluated them): "
        f"{per_patient[small]:.4f} ms at {small:,}, "
        f"{per_patient[large]:.4f} ms at {large:,} (ratio {per_patient[large] / per_patient[small]:.2f}); "
        f"full recompute {full_seconds / full.evaluated * 1000:.4f} ms a patient"
    )
    print(f"a run with nothing to do (median of 5): {idle * 1000:.1f} ms")
    for size, rows_ in batches.items():
        if not rows_:
            continue
        (first_ms, first_n), rest = rows_[0], rows_[1:]
        rest_ms, rest_n = sum(r[0] for r in rest), sum(r[1] for r in rest)
        rest_text = f"; the other {len(rest)}: {rest_ms / rest_n:.4f} ms a patient" if rest_n else ""
        print(
            f"batches at {size:,}: {len(rows_)}, the first {first_ms} ms for {first_n} patients "
            f"({first_ms / first_n:.4f} ms a patient){rest_text} (Ops.JobRunBatch)"
        )
    share = results[small][0].working_seconds / full_seconds
    print(
        f"target: the {small:,}-patient run <= {TARGET_SHARE:.0%} of the full recompute: "
        f"{verdict(share <= TARGET_SHARE)} ({share:.2%}; the drain with its confirming run "
        f"{results[small][0].seconds / full.seconds:.2%})"
    )


if __name__ == "__main__":
    main()
