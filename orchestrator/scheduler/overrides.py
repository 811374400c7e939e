"""Timetable overrides: an operator changes a job's timetable with Ops.Setting rows.

The job registry (orchestrator/jobs.py) holds each job's default timetable. A
row of the job's own in ``Ops.Setting`` overrides it (docs/operations.md,
"The orchestrator service"):

=============  =========================================================  ==========
Name           Value                                                      example
=============  =========================================================  ==========
EveryMinutes   whole minutes dividing an hour, or whole hours dividing a   ``15``
               day (``120``); the job becomes an interval job
DailyAt        ``HH:MM``, Danish time (Europe/Copenhagen); the job         ``04:30``
               becomes a daily job
Enabled        ``Y`` or ``N`` (``N``: not run by the orchestrator nor the   ``N``
               fallback)
=============  =========================================================  ==========

The service reads them (``Monitor.timetable_overrides``) at start and every
``REFRESH_SECONDS``; ``flp jobs`` at each call. A malformed override (a value
that is not exactly one of the above, or EveryMinutes and DailyAt both set) is
ignored with a problem that names the job and the setting: the job keeps its
default timetable, and the loop goes on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.jobs import JOBS, Job, Timetable

REFRESH_SECONDS = 60  # seconds between two reads of the overrides by the service
EVERY_MINUTES = "EveryMinutes"
DAILY_AT = "DailyAt"
ENABLED = "Enabled"
NAMES = (EVERY_MINUTES, DAILY_AT, ENABLED)
READ_ROUTINE = "Monitor.timetable_overrides"
_WHOLE = re.compile(r"[0-9]{1,4}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


@dataclass(frozen=True)
class Effective:
    """A job as it is scheduled: the registry's default with the valid overrides applied."""

    job: Job  # with the effective timetable
    default: Timetable
    enabled: bool = True
    overridden: tuple[str, ...] = ()  # the setting names applied, e.g. ("DailyAt",)
    problems: tuple[str, ...] = ()  # malformed overrides, each naming the job and the setting

    @property
    def name(self) -> str:
        return self.job.name

    def describe(self) -> str:
        """The timetable as `flp jobs` and the start line show it."""
        text = self.job.timetable.describe() if self.enabled else "disabled"
        if self.overridden:
            text += f" (overridden: {', '.join(self.overridden)}; default {self.default.describe()})"
        return text


@dataclass
class Overrides:
    """The effective jobs for a set of override rows, and the problems found in them."""

    jobs: dict[str, Effective]
    problems: list[str] = field(default_factory=list)  # every problem, per job and for unknown jobs

    @property
    def enabled_jobs(self) -> dict[str, Job]:
        return {name: e.job for name, e in self.jobs.items() if e.enabled}


def _problem(job: str, name: str, value: str, reason: str, default: Timetable | None) -> str:
    keeps = f"; the job keeps its default ({default.describe()})" if default is not None else ""
    return f"job {job}: setting {name} = {value!r} in Ops.Setting is ignored: {reason}{keeps}"


def _interval(value: str) -> Timetable:
    minutes = int(value) if _WHOLE.fullmatch(value) else 0
    if not minutes or not (60 % minutes == 0 or (minutes % 60 == 0 and 1440 % minutes == 0)):
        raise ValueError(
            "give whole minutes dividing an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) "
            "or whole hours dividing a day (60, 120, 180, 240, 360, 480, 720, 1440)"
        )
    return Timetable(every_minutes=minutes)


def _daily(value: str) -> Timetable:
    if not _HHMM.fullmatch(value):
        raise ValueError("give HH:MM, Danish time (00:00 to 23:59)")
    return Timetable(daily_at=value)


def apply(rows: Iterable[tuple[str, str, str]], jobs: Mapping[str, Job] | None = None) -> Overrides:
    """The effective timetable of each job in ``jobs`` (default: the registry) under the override
    rows ``(JobName, Name, Value)``. Never raises for a bad value: it becomes a problem."""
    jobs = JOBS if jobs is None else jobs
    by_job: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for job_name, name, value in rows:
        if job_name in jobs:
            by_job.setdefault(job_name, {})[name] = value
        elif job_name not in JOBS:  # a job of the registry this process does not run is not a problem
            problems.append(_problem(job_name, name, value, "there is no such job in the registry", None))
    effective: dict[str, Effective] = {}
    for job_name, job in jobs.items():
        settings = by_job.get(job_name, {})
        default = job.timetable
        timetable, enabled, applied, found = default, True, [], []
        if EVERY_MINUTES in settings and DAILY_AT in settings:
            for name in (EVERY_MINUTES, DAILY_AT):
                reason = f"set only one of {EVERY_MINUTES} and {DAILY_AT}"
                found.append(_problem(job_name, name, settings[name], reason, default))
        else:
            for name, parse in ((EVERY_MINUTES, _interval), (DAILY_AT, _daily)):
                if name not in settings:
                    continue
                try:
                    parsed = parse(settings[name])
                except ValueError as exc:
                    found.append(_problem(job_name, name, settings[name], str(exc), default))
                    continue
                timetable = dataclasses.replace(parsed, grace_minutes=default.grace_minutes)
                applied.append(name)
        if ENABLED in settings:
            value = settings[ENABLED]
            if value in ("Y", "N"):  # exactly, as Job.fallback_due compares it
                enabled = value == "Y"
                if not enabled:
                    applied.append(ENABLED)
            else:
                found.append(_problem(job_name, ENABLED, value, "give Y or N", default))
        effective[job_name] = Effective(
            job=dataclasses.replace(job, timetable=timetable),
            default=default,
            enabled=enabled,
            overridden=tuple(applied),
            problems=tuple(found),
        )
        problems.extend(found)
    return Overrides(effective, problems)


def read_on(db, conn) -> list[tuple[str, str, str]]:
    """The override rows ``(JobName, Name, Value)``, by the Monitor read (orchestrator, operator),
    on a connection the caller holds."""
    return [(r["jobname"], r["name"], r["value"]) for r in db.rows(conn, READ_ROUTINE)]


def read(db) -> list[tuple[str, str, str]]:
    """The override rows on a connection of their own."""
    with db.connect() as conn:
        return read_on(db, conn)


def effective(db, jobs: Mapping[str, Job] | None = None) -> Overrides:
    """The effective jobs as the database's overrides make them now."""
    return apply(read(db), jobs)
