"""``flp demo``: the whole system once, on the embedded engines, with nothing configured.

Starts the embedded PostgreSQL in the data folder, recreates the ``flp_demo``
database, migrates it, seeds a synthetic population, runs every job once and
prints what each did. It never touches a configured FLP_DATABASE_URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.db import migrate
from orchestrator.db.connection import Database
from orchestrator.db.databases import DEMO_DATABASE, ensure_database
from orchestrator.dev import seed
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job


@dataclass
class Step:
    name: str
    result: str
    rows: int | None
    seconds: float


def _timed(name: str, action) -> tuple[Step, object]:
    started = time.perf_counter()
    value = action()
    return Step(name, "ok", None, time.perf_counter() - started), value


def print_summary(steps: list[Step]) -> None:
    from orchestrator.cli import console, table

    out = table("step", "result", "rows", "seconds", right=("rows", "seconds"))
    for s in steps:
        out.add_row(s.name, s.result, "" if s.rows is None else f"{s.rows:,}", f"{s.seconds:.2f}")
    console().print(out)


def run(settings: Settings, patients: int, seed_value: int) -> int:
    print(f"FLP demo: embedded PostgreSQL in {settings.data_dir}, database {DEMO_DATABASE} (recreated)")
    steps: list[Step] = []

    step, url = _timed("start database", lambda: ensure_database(settings, DEMO_DATABASE, fresh=True))
    steps.append(step)
    step, _ = _timed("migrate", lambda: migrate.upgrade(url))
    steps.append(step)
    db = Database(url)

    step, counts = _timed("seed", lambda: seed.seed(db, patients=patients, seed=seed_value))
    step.rows = sum(counts.values())
    steps.append(step)

    for job in JOBS.values():
        if job.name == "aim_import":  # with the consumer, on the embedded queue and MongoDB
            from orchestrator.dev import demo_aim

            steps += demo_aim.steps(settings, db, Step)
            continue
        result = run_job(db, job, triggered_by="demo")
        steps.append(Step(job.name, result.result, result.rows, result.seconds))
        if result.error:
            print(f"{job.name} failed: {result.error}")

    from orchestrator.dev import demo_cda  # one patient's DK-CPD document, written and validated

    cda_step, cda_path, cda_message = demo_cda.step(settings, db, Step)
    steps.append(cda_step)

    from orchestrator.dev import demo_upload  # flp serve on a free loopback port, a few uploads, stopped

    upload_steps, upload_lines = demo_upload.steps(settings, db, Step)
    steps += upload_steps

    print_summary(steps)
    print(f"One patient's care plan (DK-CPD): {cda_path} ({cda_message})" if cda_path else cda_message)
    print("\n".join(upload_lines))
    from reports.job import where_the_mail_went

    print(where_the_mail_went(settings))  # the day's operations mail (daily_report)
    db.engine.dispose()
    # Every other command uses the embedded database `flp` unless told otherwise.
    print(
        f"The demo's data is in database {DEMO_DATABASE} on the embedded PostgreSQL in {settings.data_dir}; "
        f"to point the other flp commands at it: export FLP_DATA_DIR={settings.data_dir} "
        f"FLP_EMBEDDED_DATABASE={DEMO_DATABASE}"
    )
    failed = [s.name for s in steps if s.result == "failed"]
    return 1 if failed else 0
