"""``flp seed``: load a deterministic synthetic population into a migrated database.

The same ``seed`` and ``today`` give the same rows, on any machine with the
same numpy: every random draw comes from a numpy Generator seeded from
(seed, table, chunk), and every time is relative to ``today`` (00:00 UTC),
never to the clock. CPR numbers are synthetic by construction (day of month
+ 60). The load is all or nothing, and refused when the database already
holds patients.

Modules: codes (what the data is made of), dates (what ``today`` means: now
and the log's months), population (patients and care plans), values and
tables (rows per table), text and rows (vectorised text, COPY and DBAPI
encodings), producer (COPY text made in a child process), postgresql and
mssql (the load per engine).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np

from orchestrator.db.connection import Database
from orchestrator.dev.seed import population as seed_population
from orchestrator.dev.seed.tables import POPULATION_STREAM, TABLES, chunks

log = logging.getLogger(__name__)

MAX_PATIENTS = 5_000_000  # far above any test or demo; CPR numbers per birth date run out long after
SEED_MAX = 2**63 - 1
TODAY_MIN = dt.date(2000, 1, 1)  # with ages 30-98 every birth year fits the CPR century digits
TODAY_MAX = dt.date(2080, 12, 31)


class SeedError(ValueError):
    """An argument is out of range, or the database cannot take the seed; the message says which."""


def seed(db: Database, patients: int, seed: int = 1, today: dt.date | None = None) -> dict[str, int]:
    """Load ``patients`` synthetic patients and everything around them; return rows per table."""
    today = check_arguments(patients, seed, today)
    patients, seed = int(patients), int(seed)
    if db.kind == "postgresql":
        from orchestrator.dev.seed import postgresql as engine
    else:
        from orchestrator.dev.seed import mssql as engine

    started = time.perf_counter()
    with db.connect() as conn, engine.transaction(conn) as loader:
        present = loader.patients_present()
        if present:
            raise SeedError(
                f"the database already holds {present:,} patients; seed loads only into a database "
                "without patients, and wrote nothing"
            )
        first_ids = loader.next_ids(TABLES)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(POPULATION_STREAM,)))
        population = seed_population.build(rng, patients, today, first_ids)
        loader.before_load(TABLES)
        counts = loader.load(
            list(TABLES), lambda table: chunks(table, population, seed, first_ids.get(table.name, 1))
        )
        loader.after_load(TABLES)
    log.info(
        "seed loaded",
        extra={
            "patients": patients,
            "seed": seed,
            "today": today.isoformat(),
            "rows": sum(counts.values()),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    return counts


def check_arguments(patients: Any, seed: Any, today: Any) -> dt.date:
    """Raise SeedError naming the first bad argument; return the effective today."""
    if not _is_int(patients) or not 1 <= patients <= MAX_PATIENTS:
        raise SeedError(f"patients must be an integer from 1 to {MAX_PATIENTS:,}; got {patients!r}")
    if not _is_int(seed) or not 0 <= seed <= SEED_MAX:
        raise SeedError(f"seed must be an integer from 0 to 2**63 - 1; got {seed!r}")
    if today is None:
        return dt.datetime.now(dt.UTC).date()
    # A datetime is a date too, but its time and zone would be silently dropped.
    if not isinstance(today, dt.date) or isinstance(today, dt.datetime):
        raise SeedError(f"today must be a datetime.date (or None for the current UTC date); got {today!r}")
    if not TODAY_MIN <= today <= TODAY_MAX:
        raise SeedError(f"today must be between {TODAY_MIN} and {TODAY_MAX}; got {today}")
    return today


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
