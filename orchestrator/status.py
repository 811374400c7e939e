"""``flp status``: what the jobs did, from the Monitor read procedures alone.

Gathering and rendering are apart: ``overview``, ``job_runs`` and ``run_batches``
return plain dicts with stable snake_case keys (what ``--json`` prints, for
monitoring); ``show`` renders them as rich tables for a person. Everything is
read through schema Monitor, so the read-only role ``flp_operator`` is enough.

Times in the database are UTC; a person sees starts in Danish time and ages
from the database's own now (never this machine's clock). A job is marked when
it has failed ``FAILURES_IN_A_ROW_WARNING`` runs in a row, or has not
succeeded within ``STALE_INTERVALS`` times its timetable's interval.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from orchestrator.errors import FlpError
from orchestrator.jobs import JOBS, TIMEZONE
from orchestrator.logs import mask_cpr
from orchestrator.scheduler import overrides

FAILURES_IN_A_ROW_WARNING = 3  # failed runs in a row that earn a job a warning mark
STALE_INTERVALS = 2  # no success within this many timetable intervals earns a warning mark
WINDOW_HOURS = 24  # runs and failures are counted over this many hours
RUNS_LIMIT = 20  # runs shown by --job unless --limit says otherwise
MISSED_LOOKBACK_RUNS = 200  # recent runs of a job looked through for missed slots
MESSAGE_CHARS = 60  # a message is cut to this many characters in the tables
MARK = "!"  # the warning mark (ASCII: any terminal shows it)
JOB_NAME = re.compile(r"^[a-z0-9_]+$")
LOCAL = ZoneInfo(TIMEZONE)


class StatusError(FlpError):
    """A job or run asked for does not exist, or cannot be asked for."""


# ---------------------------------------------------------------------------
# Values: database rows to JSON-ready values and to text
# ---------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    """A database time (UTC, no zone attached) as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _local_iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(LOCAL).isoformat(timespec="seconds")


def _seconds(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def local_time(iso: str | None) -> str:
    """'2026-12-01 23:15:02 CET' from a JSON time."""
    if iso is None:
        return ""
    return datetime.fromisoformat(iso).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S %Z")


def span(seconds: float | None) -> str:
    """A length of time for a person: 42s, 12m 05s, 3h 04m, 2d 03h."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return span(ms / 1000)


def cut(text: str | None, chars: int = MESSAGE_CHARS) -> str:
    """The first line of a message, at most ``chars`` characters."""
    if not text:
        return ""
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return line if len(line) <= chars else line[: chars - 3] + "..."


def _run(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One Ops.JobRun row of a Monitor read as stable JSON keys."""
    started = _utc(row["startedutc"])
    run = {
        "job_run_id": row["jobrunid"],
        "job": row["jobname"],
        "status": row["status"],
        "triggered_by": row["triggeredby"],
        "host": row["host"],
        "started_utc": _iso(started),
        "started_local": _local_iso(started),
        "ended_utc": _iso(_utc(row["endedutc"])),
        "age_seconds": _seconds(now, started),
        "duration_ms": None if row["durationms"] is None else int(row["durationms"]),
        "rows": int(row["rowsaffected"]),
        "message": None if row["message"] is None else mask_cpr(row["message"]),
    }
    if "batches" in row:
        run["batches"] = int(row["batches"])
    if "parameters" in row:
        run["parameters"] = row["parameters"]
    return run


# ---------------------------------------------------------------------------
# Gathering (one connection, Monitor routines only)
# ---------------------------------------------------------------------------


def _warnings(job: dict[str, Any], now: datetime, interval_seconds: int | None) -> list[dict[str, str]]:
    found = []
    if job["consecutive_failures"] >= FAILURES_IN_A_ROW_WARNING:
        found.append(
            {
                "code": "failures_in_a_row",
                "message": f"failed {job['consecutive_failures']} runs in a row",
            }
        )
    if interval_seconds is not None and job["last_run"] is not None:
        limit = STALE_INTERVALS * interval_seconds
        since = _seconds(now, _utc_from_iso(job["last_succeeded_utc"]))
        if since is None or since > limit:
            what = "no success recorded" if since is None else f"no success for {span(since)}"
            found.append(
                {
                    "code": "no_recent_success",
                    "message": f"{what} (expected within {span(limit)}: {job['timetable']})",
                }
            )
    if job.get("missed_24h"):
        found.append(
            {
                "code": "missed_slots",
                "message": f"{job['missed_24h']} slot(s) missed in the last {WINDOW_HOURS} hours "
                "(no scheduler ran them within the grace period)",
            }
        )
    return found


def _missed(db, conn, name: str, now: datetime) -> int:
    """Missed-slot rows of the job in the window (Monitor.job_runs: its recent runs)."""
    recent = db.rows(conn, "Monitor.job_runs", {"JobName": name, "Limit": MISSED_LOOKBACK_RUNS})
    return sum(
        1
        for row in recent
        if row["status"] == "missed" and (_seconds(now, _utc(row["startedutc"])) or 0) <= WINDOW_HOURS * 3600
    )


def _next_run(effective, now: datetime) -> str | None:
    """The next slot of a job as scheduled (None: not in the registry, or switched off)."""
    from orchestrator.scheduler.timetable import next_slot

    if effective is None or not effective.enabled:
        return None
    return _iso(next_slot(effective.job.timetable, now))


def _utc_from_iso(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso)


def _now(rows: list[dict[str, Any]], conn, db) -> datetime:
    if rows:
        return _utc(rows[0]["nowutc"])
    beats = db.rows(conn, "Monitor.heartbeats")
    if beats:
        return _utc(beats[0]["nowutc"])
    return datetime.now(UTC)  # nothing in the database to show an age for


UPLOAD_DAYS = 2  # today and yesterday (UTC)


def _uploads(db, conn, now: datetime) -> list[dict[str, Any]]:
    """Monitor.upload_statistics for the last UPLOAD_DAYS days: per LPS (SOR) and day."""
    from datetime import timedelta

    today = now.date()
    rows = db.rows(
        conn,
        "Monitor.upload_statistics",
        {"FromDay": today - timedelta(days=UPLOAD_DAYS - 1), "ToDay": today},
    )
    out = []
    for r in rows:
        written = int(r["rowsinserted"]) + int(r["rowsupdated"]) + int(r["rowsunchanged"])
        out.append(
            {
                "sor": r["sorcode"],
                "day_utc": r["dayutc"].isoformat(),
                "uploads": int(r["uploads"]),
                "documents": int(r["documents"]),
                "rejected_documents": int(r["rejecteddocuments"]),
                "rows_inserted": int(r["rowsinserted"]),
                "rows_updated": int(r["rowsupdated"]),
                "rows_unchanged": int(r["rowsunchanged"]),
                "rows_rejected": int(r["rowsrejected"]),
                "no_op_share": round(int(r["rowsunchanged"]) / written, 4) if written else None,
                "throttled": int(r["throttled"]),
                "rejected_by_reason": r["rejectedbyreason"] or "",
            }
        )
    return out


def overview(db) -> dict[str, Any]:
    """Every job of the registry (and any other job that has runs) with its last run,
    its runs and failures in the last WINDOW_HOURS, and the orchestrators' heartbeats."""
    with db.connect() as conn:
        last = db.rows(conn, "Monitor.job_last_runs", {"WindowHours": WINDOW_HOURS})
        beats = db.rows(conn, "Monitor.heartbeats")
        now = _utc((last or beats)[0]["nowutc"]) if (last or beats) else datetime.now(UTC)  # nothing to age
        by_name = {row["jobname"]: row for row in last}
        missed = {name: _missed(db, conn, name, now) for name in JOBS if name in by_name}
        scheduled = overrides.apply(overrides.read_on(db, conn))
        uploads = _uploads(db, conn, now)
        engine = _engine(db, conn)
        aim = _aim(db, conn)
    by_name = {row["jobname"]: row for row in last}
    names = list(JOBS) + sorted(name for name in by_name if name not in JOBS)
    jobs = []
    for name in names:
        effective = scheduled.jobs.get(name)
        row = by_name.get(name)
        next_run = _next_run(effective, now)
        job = {
            "job": name,
            "in_registry": effective is not None,
            "enabled": effective.enabled if effective else None,
            "overridden": list(effective.overridden) if effective else [],
            "timetable": effective.describe() if effective else None,
            "interval_seconds": effective.job.timetable.interval_seconds
            if effective and effective.enabled
            else None,
            "last_run": _run(row, now) if row else None,
            "last_succeeded_utc": _iso(_utc(row["lastsucceededutc"])) if row else None,
            "runs_24h": int(row["runsinwindow"]) if row else 0,
            "failures_24h": int(row["failuresinwindow"]) if row else 0,
            "consecutive_failures": int(row["consecutivefailures"]) if row else 0,
            "missed_24h": missed.get(name, 0),
            "next_run_utc": next_run,
            "next_run_local": _local_iso(_utc_from_iso(next_run)),
        }
        job["warnings"] = _warnings(job, now, job["interval_seconds"]) + [
            {"code": "timetable_override_ignored", "message": problem}
            for problem in (effective.problems if effective else ())
        ]
        jobs.append(job)
    heartbeats = [
        {
            "component": b["component"],
            "host": b["host"],
            "process_id": int(b["processid"]),
            "started_utc": _iso(_utc(b["startedutc"])),
            "beat_utc": _iso(_utc(b["beatutc"])),
            "age_seconds": _seconds(now, _utc(b["beatutc"])),
        }
        for b in beats
    ]
    return {
        "now_utc": _iso(now),
        "window_hours": WINDOW_HOURS,
        "failures_in_a_row_warning": FAILURES_IN_A_ROW_WARNING,
        "stale_intervals": STALE_INTERVALS,
        "jobs": jobs,
        "warnings": sum(len(job["warnings"]) for job in jobs),
        "heartbeats": heartbeats,
        "uploads": uploads,
        "engine": engine,
        "aim": aim,
    }


def job_runs(db, name: str, limit: int = RUNS_LIMIT) -> dict[str, Any]:
    """The last ``limit`` runs of one job, newest first."""
    if not JOB_NAME.match(name):
        raise StatusError(f"job name {name!r} is not supported: lower-case letters, digits and _")
    with db.connect() as conn:
        found = db.rows(conn, "Monitor.job_runs", {"JobName": name, "Limit": limit})
        now = _now(found, conn, db)
    if not found and name not in JOBS:
        raise StatusError(f"unknown job {name!r}: it has no runs; known: {', '.join(JOBS)}")
    return {"job": name, "now_utc": _iso(now), "runs": [_run(row, now) for row in found]}


def run_batches(db, run_id: int) -> dict[str, Any]:
    """One run and its batches in order."""
    with db.connect() as conn:
        header = db.rows(conn, "Monitor.job_run", {"JobRunId": run_id})
        if not header:
            raise StatusError(f"no job run {run_id} (see flp status --job NAME for run ids)")
        batches = db.rows(conn, "Monitor.job_run_batches", {"JobRunId": run_id})
    now = _utc(header[0]["nowutc"])
    return {
        "now_utc": _iso(now),
        "run": _run(header[0], now),
        "batches": [
            {
                "batch_no": int(b["batchno"]),
                "started_utc": _iso(_utc(b["startedutc"])),
                "started_local": _local_iso(_utc(b["startedutc"])),
                "duration_ms": int(b["durationms"]),
                "batch_size": int(b["batchsize"]),
                "rows": int(b["rowsaffected"]),
                "note": b["note"],
            }
            for b in batches
        ],
    }


# ---------------------------------------------------------------------------
# Rendering (rich, imported only when a person is shown something)
# ---------------------------------------------------------------------------


def _console(out: TextIO):
    from rich.console import Console

    terminal = out.isatty()
    # Not a terminal (a pipe, a file, a test): no colour and no wrapping of long lines.
    return Console(file=out, highlight=False, soft_wrap=not terminal, width=None if terminal else 1000)


def _table(title: str | None, *columns: str, right: tuple[str, ...] = ()):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    return table


OVERRIDDEN = "*"  # beside a next run whose timetable an Ops.Setting override changed


def _next_text(job: dict[str, Any]) -> str:
    if job["enabled"] is False:
        return "disabled"
    if not job["next_run_utc"]:
        return ""
    return local_time(job["next_run_utc"]) + (f" {OVERRIDDEN}" if job["overridden"] else "")


def _render_overview(data: dict[str, Any], console) -> None:
    from rich.markup import escape

    table = _table(
        f"Jobs (last {data['window_hours']} hours; started in Danish time, ages from the database's now)",
        "",
        "job",
        "last start",
        "age",
        "trigger@host",
        "status",
        "duration",
        "rows",
        "runs",
        "failed",
        "in a row",
        "message",
        "next run",
        right=("age", "duration", "rows", "runs", "failed", "in a row"),
    )
    for job in data["jobs"]:
        mark = f"[bold red]{MARK}[/]" if job["warnings"] else ""
        run = job["last_run"]
        nxt = _next_text(job)
        if run is None:
            table.add_row(mark, job["job"], "", "", "", "never run", "", "", "0", "0", "0", "", nxt)
            continue
        table.add_row(
            mark,
            escape(job["job"]),
            local_time(run["started_utc"]),
            span(run["age_seconds"]),
            escape(f"{run['triggered_by']}@{run['host']}"),
            escape(run["status"]),
            duration(run["duration_ms"]),
            f"{run['rows']:,}",
            str(job["runs_24h"]),
            str(job["failures_24h"]),
            str(job["consecutive_failures"]),
            escape(cut(run["message"])),
            nxt,
        )
    console.print(table)
    if any(job["overridden"] for job in data["jobs"]):
        console.print(
            f"{OVERRIDDEN} timetable overridden in Ops.Setting (flp jobs shows the default beside it)"
        )
    for job in data["jobs"]:
        for warning in job["warnings"]:
            console.print(f"[bold red]{MARK}[/] {escape(job['job'])}: {escape(warning['message'])}")
    console.print()
    if not data["heartbeats"]:
        console.print("Orchestrators: no heartbeat recorded (Ops.Heartbeat is empty)")
    else:
        beats = _table(
            "Orchestrators (an orchestrator beats every 30 seconds)",
            "component",
            "host",
            "pid",
            "started",
            "last beat",
            right=("pid", "last beat"),
        )
        for beat in data["heartbeats"]:
            beats.add_row(
                escape(beat["component"]),
                escape(beat["host"]),
                str(beat["process_id"]),
                local_time(beat["started_utc"]),
                f"{span(beat['age_seconds'])} ago",
            )
        console.print(beats)
    if data.get("uploads"):
        _render_uploads(data["uploads"], console)
    _render_engine(data["engine"], console)
    _render_aim(data["aim"], console)


def _render_uploads(uploads: list[dict[str, Any]], console) -> None:
    from rich.markup import escape

    table = _table(
        "Uploads per LPS (SOR) and UTC day",
        "day",
        "sor",
        "uploads",
        "documents",
        "rows",
        "no-op",
        "rejected",
        "throttled",
        "reasons",
        right=("uploads", "documents", "rows", "no-op", "rejected", "throttled"),
    )
    for u in uploads:
        rows = u["rows_inserted"] + u["rows_updated"] + u["rows_unchanged"]
        table.add_row(
            u["day_utc"],
            escape(u["sor"]),
            f"{u['uploads']:,}",
            f"{u['documents']:,}",
            f"{rows:,}",
            "" if u["no_op_share"] is None else f"{u['no_op_share']:.1%}",
            f"{u['rows_rejected']:,}",
            f"{u['throttled']:,}",
            escape(u["rejected_by_reason"]),
        )
    console.print(table)


def _render_runs(data: dict[str, Any], console) -> None:
    from rich.markup import escape

    if not data["runs"]:
        console.print(f"{escape(data['job'])}: never run")
        return
    table = _table(
        f"Runs of {escape(data['job'])}, newest first (started in Danish time)",
        "run",
        "start",
        "age",
        "trigger@host",
        "status",
        "duration",
        "rows",
        "batches",
        "message",
        right=("run", "age", "duration", "rows", "batches"),
    )
    for run in data["runs"]:
        table.add_row(
            str(run["job_run_id"]),
            local_time(run["started_utc"]),
            span(run["age_seconds"]),
            escape(f"{run['triggered_by']}@{run['host']}"),
            escape(run["status"]),
            duration(run["duration_ms"]),
            f"{run['rows']:,}",
            str(run["batches"]),
            escape(cut(run["message"])),
        )
    console.print(table)


def _render_batches(data: dict[str, Any], console) -> None:
    from rich.markup import escape

    run = data["run"]
    console.print(
        f"Run {run['job_run_id']} of {escape(run['job'])}: {escape(run['status'])}, "
        f"started {local_time(run['started_utc'])} ({span(run['age_seconds'])} ago) "
        f"by {escape(run['triggered_by'])}@{escape(run['host'])}, {duration(run['duration_ms'])}, "
        f"{run['rows']:,} rows, {run['batches']} batch{'' if run['batches'] == 1 else 'es'}"
    )
    if run.get("parameters"):
        console.print(f"parameters: {escape(run['parameters'])}")
    if run["message"]:
        console.print(f"message: {escape(run['message'])}")
    if not data["batches"]:
        return
    table = _table(
        None,
        "batch",
        "start",
        "duration",
        "size",
        "rows",
        "note",
        right=("batch", "duration", "size", "rows"),
    )
    for batch in data["batches"]:
        table.add_row(
            str(batch["batch_no"]),
            local_time(batch["started_utc"]),
            duration(batch["duration_ms"]),
            f"{batch['batch_size']:,}",
            f"{batch['rows']:,}",
            escape(batch["note"] or ""),
        )
    console.print(table)


def show(
    db,
    job: str | None = None,
    run_id: int | None = None,
    as_json: bool = False,
    limit: int = RUNS_LIMIT,
    out: TextIO | None = None,
) -> int:
    """Gather and print one view of ``flp status``; the exit code (0)."""
    out = out or sys.stdout
    if run_id is not None:
        data, render = run_batches(db, run_id), _render_batches
    elif job is not None:
        data, render = job_runs(db, job, limit), _render_runs
    else:
        data, render = overview(db), _render_overview
    if as_json:
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        console = _console(out)
        render(data, console)
    return 0


def _engine(db, conn) -> dict[str, Any]:
    """The FLP engine's backlog (Monitor.engine_status, docs/engine.md): the dirty list, values
    waiting for conversion, invalid and rejected values, Relevant changes due, a running recompute."""
    (row,) = db.rows(conn, "Monitor.engine_status")
    now = _utc(row["nowutc"])
    oldest = _utc(row["oldestdueutc"])
    return {
        "dirty_due": int(row["dirtydue"]),
        "dirty_later": int(row["dirtylater"]),
        "oldest_due_age_seconds": _seconds(now, oldest) if oldest and oldest <= now else None,
        "values_new": int(row["valuesnew"]),
        "values_invalid": int(row["valuesinvalid"]),
        "values_rejected": int(row["valuesrejected"]),
        "relevant_changes_due": int(row["relevantchangesdue"]),
        "recompute_running": int(row["sweeprunning"]) > 0,
    }


def engine_backlog(db) -> dict[str, Any]:
    """The FLP engine's backlog alone (its own connection)."""
    with db.connect() as conn:
        return _engine(db, conn)


def _aim(db, conn) -> dict[str, Any]:
    """The AIM pipeline (Monitor.aim_counts, docs/aim-document.md): FLP_AIM rows by state, queued
    rows past the visibility timeout, the oldest pending row's age, the database queue's dead letters."""
    (row,) = db.rows(conn, "Monitor.aim_counts")
    now = _utc(row["nowutc"])
    return {
        "pending": int(row["pending"]),
        "queued": int(row["queued"]),
        "overdue": int(row["overdue"]),
        "delivered": int(row["delivered"]),
        "oldest_pending_age_seconds": _seconds(now, _utc(row["oldestpendingutc"])),
        "dead_letters_database_queue": int(row["deadletters"]),
    }


def _render_engine(data: dict[str, Any], console) -> None:
    age = data["oldest_due_age_seconds"]
    console.print()
    console.print(
        f"FLP engine: dirty patients due {data['dirty_due']:,}"
        + (f" (oldest {span(age)})" if age is not None else "")
        + f", later {data['dirty_later']:,}; values new {data['values_new']:,}, "
        f"invalid {data['values_invalid']:,}, rejected {data['values_rejected']:,}; "
        f"Relevant changes due {data['relevant_changes_due']:,}"
        + ("; full recompute running" if data["recompute_running"] else "")
    )


def _render_aim(data: dict[str, Any], console) -> None:
    age = data["oldest_pending_age_seconds"]
    console.print(
        f"AIM: pending {data['pending']:,}"
        + (f" (oldest {span(age)})" if age is not None else "")
        + f", queued {data['queued']:,}"
        + (f" ({data['overdue']:,} past the visibility timeout)" if data["overdue"] else "")
        + f", delivered {data['delivered']:,}"
        + f"; dead letters (database queue) {data['dead_letters_database_queue']:,}"
    )
