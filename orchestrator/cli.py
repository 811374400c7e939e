"""The ``flp`` command line.

What a person asked for goes to stdout; logs go to stderr (key=value or JSON,
WARNING by default, INFO for ``flp orchestrator``, ``-v`` INFO, ``-vv`` DEBUG).
Every error the project raises on purpose (``FlpError``) ends the command with
one line and its exit code; nothing a person can act on shows a traceback.

Deploying is the DBA's, running is the service's: only ``flp db upgrade`` /
``downgrade``, ``flp seed`` and ``flp demo`` migrate. The runtime commands
(``run``, ``orchestrator``, ``status``) check the database's schema revision
against this code's and stop with exit code 3 when they differ.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from orchestrator import config, logs
from orchestrator.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    DatabaseUnreachable,
    FlpError,
    MissingExtra,
    SchemaMismatch,
    UsageError,
    database_message,
)

log = logging.getLogger("flp")

MSSQL_EXTRA = 'pip install "flp-jobs[mssql]"'
MESSAGE_LINE_MAX = 400  # characters of an unexpected error's message on the terminal
# SQLSTATEs for "no such procedure" / "no such schema" (an older database).
PG_MISSING_ROUTINE = ("42883", "3F000")


# ---------------------------------------------------------------------------
# Argument types and the parser
# ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0; got {value}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # One line instead of the usage block: the usage is one --help away.
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------
# Output: tables and progress (rich, imported only when something is shown)
# ---------------------------------------------------------------------------


def console(stderr: bool = False):
    """A rich console on stdout (or stderr); plain text, unwrapped, when not a terminal."""
    from rich.console import Console

    class FlpConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 itself; main() handles a closed pipe for every command alike.
            self.quiet = True
            raise BrokenPipeError

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    # Not a terminal (a pipe, a file, a test): no colour, and never wrap a long URL.
    return FlpConsole(file=stream, highlight=False, soft_wrap=not terminal, width=None if terminal else 1000)


def table(*columns: str, right: tuple[str, ...] = ()):
    from rich import box
    from rich.table import Table

    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        out.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return out


@contextlib.contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner with the elapsed time on a terminal (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=console(stderr=True), transient=True
    ) as progress:
        progress.add_task(text, total=None)
        yield


class _SeedProgress(logging.Handler):
    """Advances a progress bar on each ``seed table loaded`` event of the seed loaders."""

    def __init__(self, progress, task) -> None:
        super().__init__(logging.DEBUG)
        self.progress, self.task = progress, task

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "seed table loaded":
            rows = getattr(record, "rows", 0)
            self.progress.update(self.task, advance=1, description=f"{record.table} ({rows:,} rows)")


@contextlib.contextmanager
def seed_progress() -> Iterator[None]:
    """Per-table progress of a seed on a terminal (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestrator.dev.seed.tables import TABLES

    loader = logging.getLogger("orchestrator.dev.seed")
    level = loader.level
    with Progress(
        TextColumn("seed"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console(stderr=True),
        transient=True,
    ) as progress:
        handler = _SeedProgress(progress, progress.add_task("", total=len(TABLES)))
        loader.addHandler(handler)
        loader.setLevel(logging.DEBUG)  # the root handler's own level still keeps DEBUG off stderr
        try:
            yield
        finally:
            loader.removeHandler(handler)
            loader.setLevel(level)


# ---------------------------------------------------------------------------
# The database: reachable, driver installed, schema at this code's revision
# ---------------------------------------------------------------------------


def _missing_driver(settings: config.Settings, exc: ImportError) -> FlpError:
    if settings.engine == "mssql":
        if "libodbc" in str(exc):
            return MissingExtra(
                f"the SQL Server driver pyodbc cannot load unixODBC ({exc}): install the OS package "
                "unixodbc and Microsoft ODBC Driver 18 for SQL Server (docs/operations.md)"
            )
        return MissingExtra(
            f"SQL Server needs the mssql extra, which is not installed ({exc}): {MSSQL_EXTRA}"
        )
    return MissingExtra(f"the database driver is not installed ({exc}): pip install flp-jobs")


def database(settings: config.Settings):
    """The configured database (or the embedded server's), not yet connected."""
    from orchestrator.db.connection import Database, resolve_url

    try:
        if settings.database_url is None:
            from orchestrator.db.databases import ensure_database

            return Database(ensure_database(settings, settings.embedded_database))
        return Database(resolve_url(settings))
    except ImportError as exc:
        raise _missing_driver(settings, exc) from exc


def unreachable(url: str, exc: BaseException) -> DatabaseUnreachable:
    """'cannot reach the database at HOST:PORT: REASON' from a driver's connect error."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "the local socket"
    if isinstance(host, tuple):
        host = host[0]
    where = f"{host}:{parsed.port}" if parsed.port else str(host)
    if parsed.host and not parsed.port:
        where += " (default port)"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else ""
    # psycopg: 'connection failed: connection to server at "h", port p failed: REASON'
    reason = reason.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip() or type(exc).__name__
    return DatabaseUnreachable(f"cannot reach the database at {where}: {reason}")


def connected(db) -> None:
    """Open and close one connection; raise DatabaseUnreachable if that fails."""
    from sqlalchemy.exc import DBAPIError

    # Database.connect hands out the driver's connection: its errors come unwrapped.
    try:
        with db.connect():
            pass
    except (DBAPIError, db.engine.dialect.loaded_dbapi.Error) as exc:
        raise unreachable(db.url, exc) from exc


def _missing_routine(exc: BaseException) -> bool:
    if getattr(exc, "sqlstate", None) in PG_MISSING_ROUTINE:
        return True
    text = str(exc)
    return "Could not find stored procedure" in text or "(2812)" in text


def applied_revision(db) -> str | None:
    """The revision applied to the database: Monitor.schema_revision (any FLP role may run it),
    or, in a database older than that procedure, alembic_version read directly (the owner may)."""
    from orchestrator.db import migrate

    with db.connect() as conn:
        try:
            return db.call(conn, "Monitor.schema_revision", {}, ("Revision",))["Revision"]
        except Exception as exc:
            if not _missing_routine(exc):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise FlpError(f"cannot read the database's schema revision: {first}") from exc
    try:
        return migrate.current(db.url)
    except Exception as exc:
        raise SchemaMismatch(
            f"the database has no Monitor.schema_revision, so its schema is older than this flp "
            f"(which expects revision {migrate.head()}): a DBA runs `flp db upgrade`",
            None,
            migrate.head(),
        ) from exc


def check_schema(db) -> str:
    """Raise SchemaMismatch (exit 3) unless the database is at this code's head revision."""
    from orchestrator.db import migrate

    expected = migrate.head()
    applied = applied_revision(db)
    if applied == expected:
        return applied
    if applied is None:
        message = (
            f"the database has no migration applied; this flp expects revision {expected}: "
            "a DBA runs `flp db upgrade`"
        )
    elif migrate.known(applied):
        message = (
            f"the database is at revision {applied}, this flp expects {expected}: a DBA runs `flp db upgrade`"
        )
    else:
        message = (
            f"the database is at revision {applied}, newer than this flp knows (it expects {expected}): "
            "install the flp release that migrated it, or a DBA runs that release's "
            f"`flp db downgrade {expected}`"
        )
    raise SchemaMismatch(message, applied, expected)


def runtime_database(settings: config.Settings):
    """The database for a runtime command: reachable and at this code's revision. Never migrates."""
    db = database(settings)
    connected(db)
    check_schema(db)
    return db


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def cmd_config(args, settings) -> int:
    out = table("setting", "value")
    for key, value in settings.masked().items():
        out.add_row(key, value)
    out.add_row("engine", settings.engine)
    show = console()
    show.print(out)
    show.print(f"uses: {settings.database_description()}")
    return 0


def cmd_db(args, settings) -> int:
    from orchestrator.db import migrate

    if args.db_command == "script":
        sys.stdout.write(migrate.script(args.engine, args.from_revision, args.to_revision, args.downgrade_to))
        return 0
    if args.db_command == "agent-script":
        from orchestrator.scheduler import fallback

        sys.stdout.write(fallback.script(args.engine, args.database, args.owner))
        return 0
    from alembic.util.exc import CommandError

    db = database(settings)
    connected(db)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(db.url, args.revision)
        elif args.db_command == "downgrade":
            migrate.downgrade(db.url, args.revision)
        print(migrate.current(db.url) or "(empty: no revision applied)")
    except CommandError as exc:  # an unknown revision and the like
        raise UsageError(str(exc)) from exc
    except Exception as exc:
        if not _permission_denied(exc):
            raise
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split()).split(" [SQL:")[0]
        raise FlpError(
            f"this login may not migrate ({reason}): migrations are the DBA's; "
            f"the database owner (a DBA) runs `flp db {args.db_command}`"
        ) from exc
    return 0


def _permission_denied(exc: BaseException) -> bool:
    """A privilege error from either engine (SQLSTATE 42501; SQL Server 229/262/297 and the like)."""
    error = getattr(exc, "orig", None) or exc
    return getattr(error, "sqlstate", None) == "42501" or "permission was denied" in str(error).lower()


def cmd_seed(args, settings) -> int:
    from orchestrator.db import migrate
    from orchestrator.dev import seed

    try:
        seed.check_arguments(args.patients, args.seed, None)  # before anything is migrated
        db = database(settings)
        connected(db)
        migrate.upgrade(db.url)
        with seed_progress():
            counts = seed.seed(db, patients=args.patients, seed=args.seed)
    except seed.SeedError as exc:
        raise UsageError(str(exc)) from exc
    out = table("table", "rows", right=("rows",))
    for name, rows in counts.items():
        out.add_row(name, f"{rows:,}")
    console().print(out)
    return 0


def _timetable_overrides(settings):
    """The database's timetable overrides (None, and why not, when they cannot be read)."""
    from orchestrator.scheduler import overrides

    if settings.database_url is None and not (settings.data_dir / "pgdata").exists():
        return None, None  # no database yet, so no overrides: nothing to say
    try:
        return overrides.effective(runtime_database(settings)), None
    except FlpError as exc:
        return None, str(exc)
    except Exception as exc:
        log.debug("timetable overrides not read", exc_info=True)
        return None, _one_line(exc)


def cmd_jobs(args, settings) -> int:
    """The jobs and their effective timetable: the registry's, with the database's overrides
    (Ops.Setting EveryMinutes / DailyAt / Enabled), marked *; an override ignored, marked !."""
    from orchestrator.jobs import JOBS
    from orchestrator.scheduler import next_runs

    effective, why_not = _timetable_overrides(settings)
    timetable = next_runs(effective=effective)
    out = table("", "job", "what", "when")
    for job in JOBS.values():
        state = effective.jobs[job.name] if effective else None
        mark = "!" if state and state.problems else "*" if state and state.overridden else ""
        out.add_row(mark, job.name, job.description, timetable[job.name])
    show = console()
    show.print(out)
    if effective is None:
        if why_not:
            print(f"flp jobs: the registry's timetables; overrides not read: {why_not}", file=sys.stderr)
        return 0
    if any(state.overridden for state in effective.jobs.values()):
        show.print("* overridden by Ops.Setting (docs/operations.md, The orchestrator service)")
    for problem in effective.problems:
        print(f"flp jobs: ! {problem}", file=sys.stderr)
    return 0


def _before_start(db) -> None:
    """Once the database answers: its revision, then the start-up checks (engine,
    SET options, owner...): a failed one stops the service naming itself."""
    from orchestrator.db import startup

    check_schema(db)
    startup.require(db)


def cmd_orchestrator(args, settings) -> int:
    from orchestrator.scheduler import Orchestrator

    db = database(settings)
    # Waits (with backoff) for the database, checks its revision once, then runs until SIGTERM or
    # Ctrl-C (a clean stop, exit 0; a second Ctrl-C while it waits for running jobs: KeyboardInterrupt, 130).
    Orchestrator(db, host=settings.host).run_forever(before_start=lambda: _before_start(db))
    return 0


def cmd_run(args, settings) -> int:
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    if args.job not in JOBS:
        raise UsageError(f"unknown job {args.job!r}; known: {', '.join(JOBS)}")
    db = runtime_database(settings)
    with spinner(f"{args.job} running"):
        result = run_job(
            db,
            JOBS[args.job],
            "manual",
            execute=not args.dry_run,
            time_limit_seconds=args.time_limit,
            host=settings.host,
        )
    print(
        f"{result.job}: {result.result}, {result.rows:,} rows, {result.seconds:.2f} s"
        + (f", job run {result.job_run_id}" if result.job_run_id else "")
    )
    if result.error:
        log.debug("job error in full", extra={"job": result.job, "error": result.error})
        print(f"flp run: {result.job} failed: {database_message(result.error)}", file=sys.stderr)
    return 0 if result.result != "failed" else EXIT_FAILED


def cmd_status(args, settings) -> int:
    from orchestrator import status

    db = runtime_database(settings)
    return status.show(db, job=args.job, run_id=args.run, as_json=args.json, limit=args.limit)


def cmd_aim(args, settings) -> int:
    """``flp aim import | consume | status``: the AIM pipeline (docs/jobs/aim.md)."""
    import json

    from orchestrator.aim import commands as aim

    db = runtime_database(settings)
    if args.aim_command == "import":
        with spinner("aim_import running"):
            result = aim.run_import_command(db, settings, dry_run=args.dry_run)
        print(
            f"{result.job}: {result.result}, {result.rows:,} rows, {result.seconds:.2f} s"
            + (f", job run {result.job_run_id}" if result.job_run_id else "")
        )
        if result.error:
            print(f"flp aim import: failed: {database_message(result.error)}", file=sys.stderr)
        return 0 if result.result != "failed" else EXIT_FAILED
    if args.aim_command == "consume":
        stats = aim.run_consume(db, settings, once=args.once, concurrency=args.concurrency)
        print(" ".join(f"{k}={v}" for k, v in stats.as_dict().items()))
        return 0
    counts = aim.status(db, settings)
    if args.json:
        print(json.dumps(counts))
        return 0
    out = table("what", "value", right=("value",))
    for key, value in counts.items():
        out.add_row(
            key.replace("_", " "), "-" if value is None else f"{value:,}" if isinstance(value, int) else value
        )
    console().print(out)
    return 0


def cmd_serve(args, settings) -> int:
    from orchestrator.http.server import serve

    runtime_database(settings)  # reachable and at this code's revision, before listening
    return serve(settings)


def cmd_report(args, settings) -> int:
    """``flp report daily | send``: the daily operations report (docs/reports.md)."""
    from reports.cli import command

    return command(args, settings, runtime_database(settings))


def cmd_demo(args, settings) -> int:
    from orchestrator.dev import demo

    return demo.run(settings, patients=args.patients, seed_value=args.seed)


def build_parser() -> argparse.ArgumentParser:
    # -v / -vv before or after the command: `flp -v run x` and `flp run x -v`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logs: -v INFO, -vv DEBUG"
    )
    parser = Parser(prog="flp", description="FLP job system")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logs: -v INFO, -vv DEBUG")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("config", parents=[common], help="print the effective settings, passwords masked")

    db = sub.add_parser("db", parents=[common], help="schema and procedures (Alembic)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", parents=[common], help="apply migrations up to REVISION (default head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser(
        "downgrade", parents=[common], help="undo migrations down to REVISION (base: all)"
    )
    down.add_argument("revision")
    db_sub.add_parser("current", parents=[common], help="print the applied revision")
    script = db_sub.add_parser(
        "script", parents=[common], help="print the upgrade as one SQL script for a DBA"
    )
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
    agent = db_sub.add_parser(
        "agent-script",
        parents=[common],
        help="print the fallback scheduler's script (SQL Server Agent jobs / pg_cron) from the job registry",
    )
    agent.add_argument("--engine", choices=("mssql", "postgresql"), required=True)
    agent.add_argument("--database", default=None, help="the FLP database's name (default FLP / flp)")
    agent.add_argument("--owner", default="sa", help="SQL Server Agent jobs' owner login (default sa)")

    seed = sub.add_parser("seed", parents=[common], help="load a deterministic synthetic population")
    seed.add_argument("--patients", type=positive_int, default=2000)
    seed.add_argument("--seed", type=non_negative_int, default=1)

    sub.add_parser("jobs", parents=[common], help="list the jobs and their timetable")
    sub.add_parser(
        "orchestrator",
        parents=[common],
        help="run the jobs on their timetable until stopped (SIGTERM or Ctrl-C)",
    )

    run = sub.add_parser("run", parents=[common], help="run one job now")
    run.add_argument("job")
    run.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    run.add_argument(
        "--time-limit", type=positive_int, default=None, help="seconds (1 or more); no new batch after it"
    )

    status = sub.add_parser(
        "status", parents=[common], help="what the jobs did: last runs, warnings, heartbeats"
    )
    view = status.add_mutually_exclusive_group()
    view.add_argument("--job", metavar="NAME", default=None, help="that job's last runs, newest first")
    view.add_argument("--run", metavar="ID", type=positive_int, default=None, help="that run and its batches")
    status.add_argument("--limit", type=positive_int, default=20, help="runs shown with --job (default 20)")
    status.add_argument("--json", action="store_true", help="the same data as JSON on stdout, for monitoring")

    aim = sub.add_parser("aim", parents=[common], help="the AIM pipeline: import, consume, status")
    aim_sub = aim.add_subparsers(dest="aim_command", required=True)
    aim_import = aim_sub.add_parser(
        "import", parents=[common], help="run FlpAimImport now: pending FLP_AIM ids onto the queue"
    )
    aim_import.add_argument("--dry-run", action="store_true", help="count the rows due, publish nothing")
    aim_consume = aim_sub.add_parser(
        "consume", parents=[common], help="store the queued care plans in MongoDB until SIGTERM"
    )
    aim_consume.add_argument("--once", action="store_true", help="stop when the queue is empty")
    aim_consume.add_argument(
        "--concurrency", type=positive_int, default=None, help="workers (default: the Concurrency setting)"
    )
    aim_status = aim_sub.add_parser("status", parents=[common], help="rows pending, queued, delivered, dead")
    aim_status.add_argument("--json", action="store_true", help="the counts as JSON on stdout")

    sub.add_parser("serve", parents=[common], help="the HTTP service (uploads), docs/http.md")

    from reports.cli import add_parsers as add_report_parsers

    add_report_parsers(sub, common)

    demo = sub.add_parser("demo", parents=[common], help="embedded engines, seed, every job once, summary")
    demo.add_argument("--patients", type=positive_int, default=2000)
    demo.add_argument("--seed", type=non_negative_int, default=1)
    return parser


COMMANDS = {
    "config": cmd_config,
    "db": cmd_db,
    "seed": cmd_seed,
    "jobs": cmd_jobs,
    "run": cmd_run,
    "orchestrator": cmd_orchestrator,
    "status": cmd_status,
    "aim": cmd_aim,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "report": cmd_report,
}
# The service logs what it does; a person at a terminal wants only what went wrong.
DEFAULT_LOG_LEVELS = {"orchestrator": "INFO", "serve": "INFO"}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_LINE_MAX else text[: MESSAGE_LINE_MAX - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    prog = "flp"
    try:
        config.check_environment()  # a mistyped FLP_ variable, before anything else happens
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or a usage error already printed on one line
            return exc.code if isinstance(exc.code, int) else 2
        prog = f"flp {args.command}"
        settings = config.load()
        default = DEFAULT_LOG_LEVELS.get(args.command, logs.DEFAULT_LEVEL)
        logs.setup(logs.level_for(settings.log_level, args.verbose, default), settings.log_format)
        code = COMMANDS[args.command](args, settings)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except FlpError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`flp jobs | head -1`): stop quietly, and keep Python's
        # final flush of stdout from raising again at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        print(
            f"{prog}: unexpected {type(exc).__name__}: {_one_line(exc)} (run with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
