"""The orchestrator's timetable: runs every job on its schedule, and beats.

Each job runs in its own thread so a long archive never delays the 10-minute
session purge; a job still running locally is not started again. Across
processes the job's database lock decides: several orchestrators (and SQL
Server Agent / pg_cron as fallback) may all try, exactly one runs it.
Times are Danish local time, as the jobs' timetable in domain.md is.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import schedule

from orchestrator import config
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS, TIMEZONE, Job, Timetable
from orchestrator.runner import run_job
from orchestrator.scheduler.timetable import local, next_slot

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between looks for due jobs
HEARTBEAT_INTERVAL = 30  # seconds between Ops.Heartbeat updates
# Waiting for an unreachable database at start: exponential backoff with jitter,
# from about a second up to a minute between attempts, for as long as it takes.
CONNECT_RETRY_INITIAL = 1.0
CONNECT_RETRY_MAX = 60.0


def schedule_job(scheduler: schedule.Scheduler, timetable: Timetable) -> schedule.Job:
    """The ``schedule`` job for a registry timetable (not yet given its action)."""
    if timetable.every_minutes:
        return scheduler.every(timetable.every_minutes).minutes
    return scheduler.every().day.at(timetable.daily_at, TIMEZONE)


class Orchestrator:
    def __init__(self, db: Database, component: str | None = None, host: str | None = None) -> None:
        self.db = db
        self.host = host or config.host_name()
        self.component = component or f"orchestrator@{self.host}:{os.getpid()}"
        self.scheduler = schedule.Scheduler()
        self.stopping = threading.Event()
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        for job in JOBS.values():
            schedule_job(self.scheduler, job.timetable).do(self.start_job, job)
        self.scheduler.every(HEARTBEAT_INTERVAL).seconds.do(self.beat)

    def start_job(self, job: Job) -> None:
        """Start ``job`` in a thread unless this process is running it already."""
        with self._lock:
            running = self._running.get(job.name)
            if running is not None and running.is_alive():
                log.info("job still running here; not started again", extra={"job": job.name})
                return
            thread = threading.Thread(target=self._run, args=(job,), name=f"job-{job.name}", daemon=True)
            self._running[job.name] = thread
            thread.start()

    def _run(self, job: Job) -> None:
        try:
            run_job(self.db, job, triggered_by="orchestrator", host=self.host)
        except Exception:  # a lost connection must not end the orchestrator
            log.exception("job could not be started", extra={"job": job.name})

    def beat(self) -> None:
        try:
            with self.db.connect() as conn:
                self.db.call(
                    conn,
                    "Job.heartbeat_beat",
                    {"Component": self.component, "Host": self.host, "ProcessId": os.getpid()},
                )
        except Exception as exc:
            # One line; the next beat tries again.
            log.warning("heartbeat failed", extra={"error": " ".join(str(exc).split())[:300]})

    def wait_for_database(self) -> bool:
        """Connect once, retrying with exponential backoff and jitter until the database answers
        (one log line per failed attempt). False when stopped (SIGTERM) while waiting."""
        import tenacity
        from sqlalchemy.exc import DBAPIError

        # Database.connect hands out the driver's connection: its errors come unwrapped.
        connect_errors = (DBAPIError, self.db.engine.dialect.loaded_dbapi.Error)

        def connect() -> None:
            with self.db.connect():
                pass

        def log_attempt(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            reason = " ".join(str(getattr(error, "orig", None) or error).split())
            log.warning(
                "database unreachable; retrying",
                extra={
                    "attempt": state.attempt_number,
                    "retry_in_seconds": round(state.upcoming_sleep, 1),
                    "reason": reason[:300],
                },
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(connect_errors),
            wait=tenacity.wait_exponential_jitter(initial=CONNECT_RETRY_INITIAL, max=CONNECT_RETRY_MAX),
            stop=lambda _state: self.stopping.is_set(),
            sleep=self.stopping.wait,
            before_sleep=log_attempt,
            reraise=True,
        )
        try:
            retrying(connect)
        except connect_errors:
            if self.stopping.is_set():
                return False
            raise
        return not self.stopping.is_set()

    def run_forever(self, before_start: Callable[[], object] | None = None) -> None:
        """Wait for the database, run ``before_start`` (the schema check), then run the
        timetable until SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        if not self.wait_for_database():
            log.info("orchestrator stopped before the database answered")
            return
        if before_start is not None:
            before_start()
        log.info(
            "orchestrator started",
            extra={"component": self.component, "host": self.host, "jobs": ",".join(JOBS)},
        )
        self.beat()
        while not self.stopping.is_set():
            self.scheduler.run_pending()
            self.stopping.wait(POLL_INTERVAL)
        log.info("orchestrator stopping; waiting for running jobs")
        for thread in list(self._running.values()):
            thread.join()

    def stop(self) -> None:
        self.stopping.set()


def next_runs(now: datetime | None = None, jobs: dict[str, Job] | None = None) -> dict[str, str]:
    """Each job's timetable and next run in Danish time, for ``flp jobs`` and the start line."""
    now = now or datetime.now(UTC)
    return {
        name: f"{job.timetable.describe()}; next {local(next_slot(job.timetable, now)):%Y-%m-%d %H:%M %Z}"
        for name, job in (jobs or JOBS).items()
    }
