"""The seed's bulk load against the ceiling: a plain COPY of the same number of rows.

    python -m bench.bench_seed [--patients 100000] [--seed 1]

Ours: ``seed.seed`` into a fresh migrated database on a throwaway server
(generation, COPY of every table, indexes and foreign keys rebuilt, ANALYZE,
commit). Baseline, measured in the same run on the same server: COPY of as
many rows of pre-built simple text (id, number, short code) into an unindexed
table, in one transaction: what the server can take at best. Also printed:
whether the requirement holds, 100,000 patients in at most 60 s (projected
linearly from another --patients).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os

import numpy as np
import psycopg

from bench.common import Stopwatch, fresh_database, libpq_url, pg_server, report
from orchestrator.dev import seed
from orchestrator.dev.seed.text import join, text

DEFAULT_PATIENTS = 100_000
TODAY = dt.date(2025, 6, 1)  # fixed, so every run loads the same rows
TARGET_PATIENTS = 100_000
TARGET_SECONDS = 60.0
COPY_CHUNK_BYTES = 8 << 20  # baseline COPY writes of 8 MB


def ceiling_text(rows: int) -> list[str]:
    """Pre-built COPY text, split in chunks: 'id<TAB>number<TAB>code' lines."""
    ids = np.arange(1, rows + 1)
    lines = join(text(ids), "\t", text(ids % 100_000), "\tNPU27300\n").tolist()
    body = "".join(lines)
    return [body[i : i + COPY_CHUNK_BYTES] for i in range(0, len(body), COPY_CHUNK_BYTES)]


def copy_ceiling(server_url: str, rows: int) -> float:
    chunks = ceiling_text(rows)
    with fresh_database(server_url, migrated=False) as db, psycopg.connect(libpq_url(db.url)) as conn:
        conn.execute("CREATE TABLE ceiling (Id bigint, Number bigint, Code varchar(20))")
        conn.commit()
        with Stopwatch() as watch:
            with conn.cursor() as cur, cur.copy("COPY ceiling (Id, Number, Code) FROM STDIN") as copy:
                for chunk in chunks:
                    copy.write(chunk)
            conn.commit()
        loaded = conn.execute("SELECT count(*) FROM ceiling").fetchone()[0]
        assert loaded == rows, (loaded, rows)
    return watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with pg_server() as server_url:
        with fresh_database(server_url) as db, Stopwatch() as ours:
            counts = seed.seed(db, patients=args.patients, seed=args.seed, today=TODAY)
        total = sum(counts.values())
        baseline_seconds = copy_ceiling(server_url, total)

    print(f"\nseed --patients {args.patients:,} --seed {args.seed} (today {TODAY})")
    for table, rows in counts.items():
        print(f"  {table:<28} {rows:>12,}")
    ours_rate = total / ours.seconds
    baseline_rate = total / baseline_seconds
    report(
        "Seed bulk load vs plain COPY of pre-built text into an unindexed table (ceiling)",
        [
            ("rows loaded", f"{total:,}", f"{total:,}", "1.00"),
            (
                "seconds",
                f"{ours.seconds:.1f}",
                f"{baseline_seconds:.1f}",
                f"{ours.seconds / baseline_seconds:.2f}",
            ),
            (
                "rows per second",
                f"{ours_rate:,.0f}",
                f"{baseline_rate:,.0f}",
                f"{ours_rate / baseline_rate:.2f}",
            ),
        ],
    )
    projected = ours.seconds * TARGET_PATIENTS / args.patients
    how = "measured" if args.patients == TARGET_PATIENTS else f"projected linearly from {args.patients:,}"
    verdict = "MET" if projected <= TARGET_SECONDS else "NOT MET"
    print(
        f"\ntarget: {TARGET_PATIENTS:,} patients in <= {TARGET_SECONDS:.0f} s: {verdict} "
        f"({projected:.1f} s, {how})"
    )


if __name__ == "__main__":
    main()
