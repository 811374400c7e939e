"""The job registry: one declaration per job, read by the scheduler, ``flp jobs``,
``flp run``, ``flp status`` and the fallback scheduler scripts.

Every job is a stored procedure in schema Job with the same outer parameters:
``@Execute``, ``@TimeLimitSeconds``, ``@TriggeredBy``, ``@Host`` and the outputs
``@JobRunId``, ``@Result``, ``@RowsAffected``. The procedure takes the job's
database lock itself, so the orchestrator, a second orchestrator and the
database's own scheduler (SQL Server Agent, pg_cron) can never run a job twice
at once: the loser gets ``Result = 'already_running'``.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEZONE = "Europe/Copenhagen"  # the timetable's local times are Danish


@dataclass(frozen=True)
class Timetable:
    """When a job runs: every N minutes, or daily at a local time (HH:MM, Danish).

    These are the defaults; an operator overrides them per job with Ops.Setting
    rows EveryMinutes, DailyAt and Enabled (orchestrator/scheduler/overrides.py).

    Interval slots are whole multiples of the interval in UTC (every 10 minutes:
    :00, :10, ... UTC), so their spacing never changes with daylight saving; a
    daily slot is the local time on each Danish calendar day (see
    orchestrator/scheduler/timetable.py for the two days a year the clock moves).
    ``every_seconds`` is for compressed timetables in tests. ``grace_minutes``:
    after downtime a missed slot still runs at start when it is at most this old,
    otherwise a ``missed`` run row records it (default: the interval, or 4 hours
    for a daily job).
    """

    every_minutes: int | None = None
    daily_at: str | None = None
    every_seconds: int | None = None
    grace_minutes: int | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.every_minutes, self.daily_at, self.every_seconds)]
        if sum(given) != 1:
            raise ValueError("a timetable is exactly one of every_minutes, daily_at or every_seconds")
        period = self.period_seconds
        # Slots aligned to UTC and expressible as a cron schedule: the interval divides an hour,
        # or is whole hours dividing a day.
        if period and not (3600 % period == 0 or (period % 3600 == 0 and 86400 % period == 0)):
            raise ValueError(f"an interval must divide an hour or a day; got {period} seconds")
        if self.daily_at is not None:
            hour, _, minute = self.daily_at.partition(":")
            if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
                raise ValueError(f"daily_at is HH:MM; got {self.daily_at!r}")
        if self.grace_minutes is not None and self.grace_minutes < 0:
            raise ValueError("grace_minutes is at least 0")

    @property
    def period_seconds(self) -> int | None:
        """Seconds between two interval slots; None for a daily job."""
        if self.every_seconds is not None:
            return self.every_seconds
        return self.every_minutes * 60 if self.every_minutes is not None else None

    @property
    def interval_seconds(self) -> int:
        """The longest time between two runs: for ``flp status``'s 'not succeeded' mark."""
        return self.period_seconds or 24 * 3600

    @property
    def grace_seconds(self) -> int:
        """How old a missed slot may be and still run at start."""
        if self.grace_minutes is not None:
            return self.grace_minutes * 60
        return self.period_seconds or 4 * 3600

    def describe(self) -> str:
        if self.every_seconds is not None:
            return f"every {self.every_seconds} seconds"
        if self.every_minutes:
            return "every minute" if self.every_minutes == 1 else f"every {self.every_minutes} minutes"
        return f"daily at {self.daily_at} {TIMEZONE}"


@dataclass(frozen=True)
class Job:
    name: str  # also the lock name and Ops.JobRun.JobName
    procedure: str  # schema-qualified stored procedure
    description: str
    timetable: Timetable
    # A job driven from Python around its procedures ("module:function", called
    # like run_job), for work the database cannot do itself, such as publishing
    # to a queue (aim_import). None: one CALL of ``procedure``.
    runner: str | None = None


# In the order `flp demo` runs them. log_cleanup runs nightly: it removes whole
# months, so on all but the first night of a month its probe finds nothing in
# milliseconds.
JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "archive_aim",
            "Job.archive_aim",
            "move delivered FLP_AIM rows to FLP_AIM_History",
            Timetable(daily_at="00:00"),
        ),
        Job(
            "session_purge",
            "Job.session_purge",
            "delete expired sessions",
            Timetable(every_minutes=10),
        ),
        Job(
            "log_cleanup",
            "Job.log_cleanup",
            "empty the PLSP log table except the retention window",
            Timetable(daily_at="01:00"),
        ),
        # The FLP engine (docs/engine.md): values are converted, then the inclusion
        # check re-evaluates the patients they (and other changes) marked dirty; its
        # new FLP_AIM rows are what aim_import publishes next.
        Job(
            "convert_values",
            "Job.convert_values",
            "convert new patient values to typed values in canonical units (ConvertPatientValues)",
            Timetable(every_minutes=5),
        ),
        Job(
            "convert_invalid_values",
            "Job.convert_invalid_values",
            "retry invalid patient values; give up after MaxAttempts (ConvertInvalidPatientValues)",
            Timetable(daily_at="03:00"),
        ),
        Job(
            "check_inclusion",
            "Job.check_inclusion",
            "re-evaluate the inclusion of dirty patients, apply Relevant changes (CheckPatientInkluded)",
            Timetable(every_minutes=1),
        ),
        Job(
            "aim_import",
            "Job.aim_import_claim",
            "publish pending FLP_AIM ids to the AIM queue (FlpAimImport)",
            Timetable(every_minutes=30),
            runner="orchestrator.aim.importer:run_job",
        ),
        Job(
            "ops_retention",
            "Job.ops_retention",
            "remove old job runs, heartbeats, dead letters, CDA access log, job slots, upload dead letters",
            Timetable(daily_at="02:30"),
        ),
        # Bulk uploads (docs/http.md): the queued uploads' staged documents, applied in batches.
        Job(
            "upload_drain",
            "Job.upload_drain",
            "apply queued bulk uploads in throttled batches; big ones in the off-hours window",
            Timetable(every_minutes=1),
        ),
        # Drift e-mails (docs/reports.md): the day's statistics by mail, through the outbox.
        Job(
            "daily_report",
            "Monitor.daily_statistics",
            "the daily operations mail: statistics, status, 14-day chart (Drift e-mails)",
            Timetable(daily_at="23:30"),
            runner="reports.job:run_job",
        ),
    )
}
