"""The ``flp`` command line."""

from __future__ import annotations

import argparse
import logging
import sys

from orchestrator import config, logs

log = logging.getLogger("flp")


def _settings() -> config.Settings:
    return config.load()


def _database(settings: config.Settings):
    from orchestrator.db.connection import Database, resolve_url
    from orchestrator.db.databases import NORMAL_DATABASE, ensure_database

    if settings.database_url is None:
        return Database(ensure_database(settings, NORMAL_DATABASE))
    return Database(resolve_url(settings))


def cmd_config(args, settings) -> int:
    width = max(len(k) for k in settings.masked())
    for key, value in settings.masked().items():
        print(f"{key.ljust(width)}  {value}")
    print(f"{'engine'.ljust(width)}  {settings.engine}")
    return 0


def cmd_db(args, settings) -> int:
    from orchestrator.db import migrate

    if args.db_command == "script":
        sys.stdout.write(migrate.script(args.engine, args.from_revision, args.to_revision, args.downgrade_to))
        return 0
    db = _database(settings)
    if args.db_command == "upgrade":
        migrate.upgrade(db.url, args.revision)
    elif args.db_command == "downgrade":
        migrate.downgrade(db.url, args.revision)
    print(migrate.current(db.url) or "(empty: no revision applied)")
    return 0


def cmd_seed(args, settings) -> int:
    from orchestrator.db import migrate
    from orchestrator.dev import seed

    db = _database(settings)
    migrate.upgrade(db.url)
    try:
        counts = seed.seed(db, patients=args.patients, seed=args.seed)
    except seed.SeedError as exc:
        print(f"flp seed: {exc}", file=sys.stderr)
        return 2
    for table, rows in counts.items():
        print(f"{table:<32} {rows:>12,}")
    return 0


def cmd_jobs(args, settings) -> int:
    from orchestrator.jobs import JOBS
    from orchestrator.scheduler import next_runs

    timetable = next_runs()
    for job in JOBS.values():
        print(f"{job.name:<16} {job.description}\n{'':<16} {timetable[job.name]}")
    return 0


def cmd_orchestrator(args, settings) -> int:
    from orchestrator.db import migrate
    from orchestrator.scheduler import Orchestrator

    db = _database(settings)
    migrate.upgrade(db.url)
    Orchestrator(db).run_forever()
    return 0


def cmd_run(args, settings) -> int:
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    if args.job not in JOBS:
        print(f"flp run: unknown job {args.job!r}; known: {', '.join(JOBS)}", file=sys.stderr)
        return 2
    db = _database(settings)
    result = run_job(
        db, JOBS[args.job], "manual", execute=not args.dry_run, time_limit_seconds=args.time_limit
    )
    print(
        f"{result.job}: {result.result}, {result.rows:,} rows, {result.seconds:.2f} s"
        + (f", job run {result.job_run_id}" if result.job_run_id else "")
        + (f"\n{result.error}" if result.error else "")
    )
    return 0 if result.result != "failed" else 1


def cmd_demo(args, settings) -> int:
    from orchestrator.dev import demo

    return demo.run(settings, patients=args.patients, seed_value=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flp", description="FLP job system")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("config", help="print the effective settings, passwords masked")

    db = sub.add_parser("db", help="schema and procedures (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="undo migrations down to REVISION (base: all)")
    down.add_argument("revision")
    db_sub.add_parser("current", help="print the applied revision")
    script = db_sub.add_parser("script", help="print the upgrade as one SQL script for a DBA")
    script.add_argument("--engine", choices=("mssql", "postgresql"), required=True)
    script.add_argument(
        "--from",
        dest="from_revision",
        default=None,
        help="start after this revision (default: from an empty database)",
    )
    script.add_argument("--to", dest="to_revision", default="head")
    script.add_argument(
        "--downgrade-to",
        dest="downgrade_to",
        default=None,
        metavar="REV",
        help="print the downgrade to REV instead (base: everything), from head or --from",
    )

    seed = sub.add_parser("seed", help="load a deterministic synthetic population")
    seed.add_argument("--patients", type=int, default=2000)
    seed.add_argument("--seed", type=int, default=1)

    sub.add_parser("jobs", help="list the jobs and their timetable")
    sub.add_parser("orchestrator", help="run the jobs on their timetable until stopped (SIGTERM)")

    run = sub.add_parser("run", help="run one job now")
    run.add_argument("job")
    run.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    run.add_argument("--time-limit", type=int, default=None, help="seconds; no new batch after it")

    demo = sub.add_parser("demo", help="embedded engines, seed, every job once, summary")
    demo.add_argument("--patients", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=1)
    return parser


COMMANDS = {
    "config": cmd_config,
    "db": cmd_db,
    "seed": cmd_seed,
    "jobs": cmd_jobs,
    "run": cmd_run,
    "orchestrator": cmd_orchestrator,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings()
    except config.ConfigError as exc:
        print(f"flp: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    return COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    sys.exit(main())
