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
Targets: the 1,000-patient run at most 2% of the full recompute; the cost per
changed patient about the same at both sizes (printed as measured, and net of
the fixed cost of the runs: a run with nothing to do, timed in the same
benchmark, times the runs each drain took).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random

import psycopg

from bench.common import Stopwatch, fresh_database, libpq_url, pg_server, report, verdict
from orchestrator.dev import seed
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job

DEFAULT_PATIENTS = 200_000
TODAY = dt.date(2026, 6, 1)
TARGET_SHARE = 0.02  # the 1,000-patient run / the full recompute, at most
CHECK_SETTINGS = {
    "SleepFactor": "0",
    "BatchSizeStart": "4000",
    "BatchSizeMin": "4000",
    "MaxPatientsPerRun": "100000000",
    "TimeLimitSeconds": "36000",
    "BatchTargetMs": "5000",
    "BatchMaxMs": "5000",
    "RelevantChangeMaxPatients": "100000000",
}
CONVERT_HBA1C = """
UPDATE PLSP.Patientvaerdier
SET ConversionStatus = 1, ConversionAttempts = 1, Unit = 'mmol/mol', MeasuredUtc = ReceivedUtc,
    ValueNumeric = replace(btrim(RawValue), ',', '.')::numeric, ConvertedUtc = ReceivedUtc
WHERE Code = 'NPU27300' AND btrim(RawValue) ~ '^[0-9]{1,3}([.,][0-9])?$'
"""


def drain(db) -> tuple[float, int, int]:
    """check_inclusion until nothing is left: seconds, patients evaluated, runs."""
    rows = runs = 0
    with Stopwatch() as clock:
        while True:
            result = run_job(db, JOBS["check_inclusion"], triggered_by="manual")
            assert result.error is None, result.error
            runs += 1
            rows += result.rows
            if result.rows == 0:
                break
    return clock.seconds, rows, runs


def full_recompute(db) -> tuple[float, int, int]:
    with db.connect() as conn:
        out = db.call(conn, "Job.inclusion_recompute", {"Force": "Y"}, ("Patients", "Result"))
    assert out["Result"] == "requested", out
    return drain(db)


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
            for name, value in CHECK_SETTINGS.items():
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
        print(f"seed: {args.patients:,} patients in {load.seconds:.1f} s")

        first = full_recompute(db)
        full = full_recompute(db)
        # The fixed cost of one run: nothing due (median of 5).
        idle = sorted(drain(db)[0] for _ in range(5))[2]

        small, large = min(1_000, len(ids) // 20), min(10_000, len(ids) // 2)  # smaller for a quick try
        picked = rng.sample(ids, small + large)
        results = {}
        for size, chosen in ((small, picked[:small]), (large, picked[small:])):
            with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
                change_patients(conn, chosen, today)
                dirty = conn.execute(
                    "SELECT count(*) FROM PLSP.PatientInkluderetPending "
                    "WHERE DueUtc <= now() AT TIME ZONE 'UTC'"
                ).fetchone()[0]
            results[size] = (*drain(db), dirty)

        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO PLSP.RelevantMedicinInklusion "
                "(AtcPrefix, ForloebCode, ActiveFromUtc, Role, Description) "
                "VALUES ('C10AA', 'ALAL02', (now() AT TIME ZONE 'UTC') - INTERVAL '1 second', "
                "'include', 'bench')"
            )
        atc_seconds, atc_rows, _ = drain(db)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            touched = conn.execute(
                "SELECT max(Patients) FROM PLSP.RelevantChange "
                "WHERE RelevantTable = 'relevantmedicininklusion' "
                "AND Code = 'C10AA'"
            ).fetchone()[0]

    full_seconds = full[0]
    rows = [
        ("full recompute, from the seed's states", f"{first[0]:.1f} s", f"{first[1]:,} patients", ""),
        (
            "full recompute, states right (baseline)",
            f"{full_seconds:.1f} s",
            f"{full[1]:,} patients",
            "1.000",
        ),
    ]
    per_patient, net = {}, {}
    for size, (seconds, evaluated, runs, dirty) in results.items():
        per_patient[size] = seconds / size * 1000
        net[size] = max(seconds - runs * idle, 0.0) / size * 1000
        rows.append(
            (
                f"incremental, {size:,} changed patients",
                f"{seconds:.2f} s ({runs} runs, {evaluated:,} evaluated, {dirty:,} due)",
                f"{full_seconds:.1f} s",
                f"{seconds / full_seconds:.4f}",
            )
        )
    rows.append(
        (
            "Relevant change: one ATC code (C10AA includes)",
            f"{atc_seconds:.2f} s ({touched:,} patients touched, {atc_rows:,} evaluated)",
            f"{full_seconds:.1f} s",
            f"{atc_seconds / full_seconds:.4f}",
        )
    )
    report(f"Inclusion check on {args.patients:,} patients: incremental vs full recompute (same run)", rows)
    print(
        f"\ncost per changed patient: {per_patient[small]:.3f} ms at {small:,}, "
        f"{per_patient[large]:.3f} ms at {large:,} "
        f"(ratio {per_patient[large] / per_patient[small]:.2f})"
    )
    print(
        f"fixed cost of a run with nothing to do: {idle * 1000:.1f} ms; net of it: "
        f"{net[small]:.3f} ms at {small:,}, {net[large]:.3f} ms at {large:,} "
        f"(ratio {net[large] / net[small] if net[small] else float('nan'):.2f})"
    )
    share = results[small][0] / full_seconds
    print(
        f"target: the {small:,}-patient run <= {TARGET_SHARE:.0%} of the full recompute: "
        f"{verdict(share <= TARGET_SHARE)} "
        f"({share:.2%})"
    )


if __name__ == "__main__":
    main()
