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
    """When a job runs: every N minutes, or daily at a local time (HH:MM, Danish)."""

    every_minutes: int | None = None
    daily_at: str | None = None

    def __post_init__(self) -> None:
        if (self.every_minutes is None) == (self.daily_at is None):
            raise ValueError("a timetable is either every_minutes or daily_at")

    @property
    def interval_seconds(self) -> int:
        """The longest time between two runs: for ``flp status``'s 'not succeeded' mark."""
        return self.every_minutes * 60 if self.every_minutes else 24 * 3600

    def describe(self) -> str:
        if self.every_minutes:
            return f"every {self.every_minutes} minutes"
        return f"daily at {self.daily_at} {TIMEZONE}"


@dataclass(frozen=True)
class Job:
    name: str  # also the lock name and Ops.JobRun.JobName
    procedure: str  # schema-qualified stored procedure
    description: str
    timetable: Timetable


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
        Job(
            "ops_retention",
            "Job.ops_retention",
            "remove Ops job runs, batch rows and heartbeats older than their settings",
            Timetable(daily_at="02:30"),
        ),
    )
}
