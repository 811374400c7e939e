"""The orchestrator service: runs every job of the registry on its timetable, and beats.

* **When.** The timetable's slots come from timetable.py (UTC, right across
  daylight saving; why not the ``schedule`` library's naive times is said
  there). The loop sleeps until the next slot or heartbeat, at most a second.
* **Exactly once per slot.** Before a run the service claims the job's slot
  (``Job.job_slot_claim``, a primary key in ``Ops.JobSlot``): of two
  orchestrators and SQL Server Agent / pg_cron exactly one runs each slot.
  The job's own database lock still stops two runs at once (a manual run).
* **Every run** is a job procedure call (``run_job``, or the job's Python
  runner): the lock and the ``Ops.JobRun`` row with trigger ``orchestrator``
  and this host. Each job runs in its own thread, off the loop, so a long
  archive never delays the 10-minute purge; a job still running here is not
  started again. A failing job never stops the loop. Errors reaching the
  database (connect refused, a session lost on the way in) are retried with
  exponential backoff and jitter (tenacity); a run that failed inside the
  database is recorded failed and the next slot runs as usual.
* **Missed slots.** At start each job's latest slot is claimed: if nobody ran
  it and it is within the job's grace period it runs now, once; if older, one
  ``missed`` run row records it (``Job.job_run_missed``). Never once per slot.
* **Timetable overrides.** The registry holds each job's default timetable;
  Ops.Setting rows ``EveryMinutes``, ``DailyAt`` and ``Enabled`` of the job
  override it (overrides.py). The service reads them at start and every
  ``REFRESH_SECONDS`` (off the loop, like the heartbeat), logs each change
  once and reschedules; a malformed one is logged once, naming the job and the
  setting, and the job keeps its default.
* **Stopping.** SIGTERM and Ctrl-C (SIGINT) are the same: the service stops
  starting work, asks each running batched job to stop at its next batch
  (``Job.job_stop_request``: the job's TimeLimitSeconds row, which
  ``Job.run_batched`` re-reads before every batch, put back when the run is
  over), waits up to ``stop_wait_seconds``, logs what it waited for and exits
  0. A second Ctrl-C while it waits stops at once (KeyboardInterrupt: exit
  130); the sessions end with the process, their locks with them.
* **Kept sessions.** Each job runs on its own kept database session
  (``run_job(keep_session=True)``, ``Database.connect(keep=...)``): one idle
  session at most per job, kept only after a run that succeeded and left no
  transaction, no job lock and the application_name as it was; closed after
  any error, when idle past ``KEPT_SESSION_MAX_IDLE_SECONDS`` (the loop closes
  them) and at stop. A job every minute then neither opens a session a minute
  nor pays a new session's warm-up in its first batch. Two orchestrators stay
  apart as before: the job lock is taken and released inside each run.
* **Heartbeat** every 30 seconds (``Job.heartbeat_beat``); SQL Server Agent /
  pg_cron stand down while one is younger than FallbackAfterSeconds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from orchestrator import config
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS, Job
from orchestrator.runner import JobResult, run_job
from orchestrator.scheduler import overrides
from orchestrator.scheduler.timetable import Planner, last_slot, local, next_slot

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds: the longest sleep of the loop
HEARTBEAT_INTERVAL = 30  # seconds between Ops.Heartbeat updates
STOP_WAIT_SECONDS = 120  # how long SIGTERM waits for running jobs
# Waiting for an unreachable database at start: exponential backoff with jitter,
# from about a second up to a minute between attempts, for as long as it takes.
CONNECT_RETRY_INITIAL = 1.0
CONNECT_RETRY_MAX = 60.0
# A run that cannot reach the database: retried this often, at most this far apart.
RUN_RETRY_ATTEMPTS = 4
RUN_RETRY_MAX = 30.0


class _OneLinePoolErrors(logging.Filter):
    """SQLAlchemy's pool logs a dead connection it could not reset (after a database restart) as an
    ERROR with a traceback; the service says it in one line, at WARNING: it is expected and handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.pool") and record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {_one_line(record.exc_info[1])}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


POOL_FILTER = _OneLinePoolErrors()


class SystemClock:
    """The wall clock, in UTC. Tests of time pass their own (timetable.Planner takes any)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]


class Orchestrator:
    def __init__(
        self,
        db: Database,
        component: str | None = None,
        host: str | None = None,
        jobs: Mapping[str, Job] | None = None,
        clock: SystemClock | None = None,
        heartbeat_seconds: float = HEARTBEAT_INTERVAL,
        stop_wait_seconds: float = STOP_WAIT_SECONDS,
        refresh_seconds: float = overrides.REFRESH_SECONDS,
    ) -> None:
        self.db = db
        self.host = host or config.host_name()
        self.component = component or f"orchestrator@{self.host}:{os.getpid()}"
        self.defaults = dict(JOBS if jobs is None else jobs)  # the registry's timetables
        self.effective = overrides.apply([], self.defaults)  # with the overrides, once read
        self.jobs = self.effective.enabled_jobs  # what the service schedules
        self.clock = clock or SystemClock()
        self.heartbeat_seconds = heartbeat_seconds
        self.stop_wait_seconds = stop_wait_seconds
        self.refresh_seconds = refresh_seconds
        self.stopping = threading.Event()
        self._override_rows: list[tuple[str, str, str]] | None = None  # the last read, from the reader
        self._applied_rows: list[tuple[str, str, str]] | None = None
        self._reader: threading.Thread | None = None
        self._read_failing = False
        self._reported: set[str] = set()  # problems logged, each once while it lasts
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._connect_errors: tuple[type[BaseException], ...] | None = None
        self._beater: threading.Thread | None = None

    # -- database errors that are worth a retry ------------------------------------------

    def connect_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's errors (Database.connect hands out the driver's connection, unwrapped)."""
        if self._connect_errors is None:
            from sqlalchemy.exc import DBAPIError

            self._connect_errors = (DBAPIError, self.db.engine.dialect.loaded_dbapi.OperationalError)
        return self._connect_errors

    def _call(self, procedure: str, params: dict, outputs: tuple[str, ...] = ()) -> dict:
        with self.db.connect() as conn:
            return self.db.call(conn, procedure, params, outputs)

    def _retrying(self, what: str, job: str | None = None):
        import tenacity

        def log_attempt(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "database error; retrying",
                extra={
                    "what": what,
                    "job": job,
                    "attempt": state.attempt_number,
                    "retry_in_seconds": round(state.upcoming_sleep, 1),
                    "reason": _one_line(error) if error else "",
                },
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(self.connect_errors()),
            wait=tenacity.wait_exponential_jitter(initial=CONNECT_RETRY_INITIAL, max=RUN_RETRY_MAX),
            stop=tenacity.stop_after_attempt(RUN_RETRY_ATTEMPTS) | (lambda _s: self.stopping.is_set()),
            sleep=self.stopping.wait,
            before_sleep=log_attempt,
            reraise=True,
        )

    # -- one job --------------------------------------------------------------------------

    def start_job(self, job: Job, slot: datetime | None = None, grace_check: bool = False) -> bool:
        """Start ``job`` in a thread unless this process is running it already (or is stopping).
        With ``slot`` the run first claims it; ``grace_check``: the slot was missed during
        downtime (run only within the job's grace period, else record it missed)."""
        with self._lock:
            if self.stopping.is_set():
                return False
            running = self._running.get(job.name)
            if running is not None and running.is_alive():
                log.info("job still running here; not started again", extra={"job": job.name})
                return False
            thread = threading.Thread(
                target=self._run, args=(job, slot, grace_check), name=f"job-{job.name}", daemon=True
            )
            self._running[job.name] = thread
            thread.start()
            return True

    def _run(self, job: Job, slot: datetime | None, grace_check: bool) -> None:
        try:
            if slot is not None:
                claim = self._retrying("claim", job.name)(
                    self._call,
                    "Job.job_slot_claim",
                    {
                        "JobName": job.name,
                        "SlotUtc": slot.replace(tzinfo=None),
                        "ClaimedBy": "orchestrator",
                        "Host": self.host,
                        "Fallback": "N",
                        "HeartbeatSeconds": None,
                    },
                    ("Result",),
                )["Result"]
                if claim not in ("claimed", "first"):
                    log.debug("slot taken", extra={"job": job.name, "slot": f"{slot:%H:%M:%S}", "by": claim})
                    return
                age = (self.clock.now() - slot).total_seconds()
                if grace_check and age > job.timetable.grace_seconds:
                    if claim == "first":  # a new database or job: nothing was missed, it just begins
                        log.info("first slot of the job here; not run late", extra={"job": job.name})
                    else:
                        self._record_missed(job, slot, age)
                    return
            self._clear_stop(job)
            self.run_now(job)
            self._clear_stop(job)
        except Exception as exc:  # a lost database must not end the thread's caller, nor the loop
            log.error("job could not be run", extra={"job": job.name, "error": _one_line(exc)})
            log.debug("job could not be run", exc_info=True)

    def run_now(self, job: Job) -> JobResult:
        """One run of ``job`` as the service runs it (after its slot claim): on the job's kept
        session, retried while the database cannot be reached. The engine benchmark calls it too.
        run_job dispatches a job with a Python runner (jobs.Job.runner) itself."""
        retrying = self._retrying("run", job.name)
        return retrying(run_job, self.db, job, triggered_by="orchestrator", host=self.host, keep_session=True)

    def _record_missed(self, job: Job, slot: datetime, age: float) -> None:
        message = (
            f"missed: the slot at {local(slot):%Y-%m-%d %H:%M %Z} passed while no scheduler ran; "
            f"found {round(age / 60)} minutes later, over the grace period of "
            f"{job.timetable.grace_seconds // 60} minutes"
        )
        self._call(
            "Job.job_run_missed",
            {
                "JobName": job.name,
                "SlotUtc": slot.replace(tzinfo=None),
                "TriggeredBy": "orchestrator",
                "Host": self.host,
                "Message": message,
            },
            ("JobRunId",),
        )
        log.warning("slot missed", extra={"job": job.name, "slot": f"{local(slot):%Y-%m-%d %H:%M %Z}"})

    def _clear_stop(self, job: Job) -> None:
        """Put back a stop request left for the job (by this process or a killed one) once its run is over."""
        try:
            self._call("Job.job_stop_request", {"JobName": job.name, "Action": "clear"}, ("Result",))
        except Exception as exc:
            log.warning("could not clear a stop request", extra={"job": job.name, "error": _one_line(exc)})

    # -- timetable overrides --------------------------------------------------------------

    def read_overrides(self) -> None:
        """Read the override rows (Monitor.timetable_overrides); a failure keeps the current timetable."""
        try:
            rows = overrides.read(self.db)
        except Exception as exc:
            if not self._read_failing:  # one line per spell of failures, not one a minute
                log.warning(
                    "timetable overrides could not be read; the current timetable stays",
                    extra={"error": _one_line(exc)},
                )
            self._read_failing = True
            return
        if self._read_failing:
            log.info("timetable overrides read again")
        self._read_failing = False
        self._override_rows = rows

    def read_overrides_in_background(self) -> None:
        if self._reader is not None and self._reader.is_alive():
            return
        self._reader = threading.Thread(target=self.read_overrides, name="overrides", daemon=True)
        self._reader.start()

    def apply_overrides(self, rows: list[tuple[str, str, str]], starting: bool = False) -> bool:
        """Make ``rows`` the effective timetable; log each change (and each new problem) once.
        True when what is scheduled changed."""
        self._applied_rows = rows
        before = self.effective
        after = overrides.apply(rows, self.defaults)
        for problem in after.problems:
            if problem not in self._reported:
                log.error("timetable override ignored", extra={"problem": problem})
        self._reported = set(after.problems)
        changed = False
        for name, new in after.jobs.items():
            old = before.jobs[name]
            if (old.job.timetable, old.enabled) == (new.job.timetable, new.enabled):
                continue
            changed = True
            if starting:
                log.info("timetable overridden", extra={"job": name, "timetable": new.describe()})
            else:
                was = old.job.timetable.describe() if old.enabled else "disabled"
                log.info("timetable changed", extra={"job": name, "timetable": new.describe(), "was": was})
        self.effective = after
        self.jobs = after.enabled_jobs
        return changed

    # -- the service ----------------------------------------------------------------------

    def beat(self) -> None:
        try:
            params = {"Component": self.component, "Host": self.host, "ProcessId": os.getpid()}
            self._call("Job.heartbeat_beat", params)
        except Exception as exc:
            # One line; the next beat tries again.
            log.warning("heartbeat failed", extra={"error": _one_line(exc)})

    def beat_in_background(self) -> None:
        """A beat off the loop, so a database that hangs on connect never delays a job's start."""
        if self._beater is not None and self._beater.is_alive():
            log.warning("heartbeat still waiting for the database; this beat skipped")
            return
        self._beater = threading.Thread(target=self.beat, name="heartbeat", daemon=True)
        self._beater.start()

    def wait_for_database(self) -> bool:
        """Connect once, retrying with exponential backoff and jitter until the database answers
        (one log line per failed attempt). False when stopped (SIGTERM) while waiting."""
        import tenacity

        connect_errors = (*self.connect_errors(), self.db.engine.dialect.loaded_dbapi.Error)

        def connect() -> None:
            with self.db.connect():
                pass

        def log_attempt(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "database unreachable; retrying",
                extra={
                    "attempt": state.attempt_number,
                    "retry_in_seconds": round(state.upcoming_sleep, 1),
                    "reason": _one_line(error) if error else "",
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

    def timetable_line(self, now: datetime) -> str:
        return "; ".join(
            f"{name} {text}" for name, text in next_runs(now, self.defaults, self.effective).items()
        )

    def catch_up(self, now: datetime) -> None:
        """Each job's latest slot before the start: run it within its grace, else record it missed."""
        for job in self.jobs.values():
            self.start_job(job, last_slot(job.timetable, now), grace_check=True)

    def _on_signal(self, signum, _frame) -> None:
        """SIGTERM and Ctrl-C: a clean stop. A second Ctrl-C while stopping: at once (exit 130)."""
        name = signal.Signals(signum).name
        if not self.stopping.is_set():
            log.info("stop requested", extra={"signal": name})
            self.stopping.set()
            return
        if signum == signal.SIGINT:
            # No self._lock here: the handler runs in the main thread, which may hold it.
            running = [n for n, t in list(self._running.items()) if t.is_alive()]
            log.warning("second Ctrl-C; stopping at once", extra={"jobs": ",".join(running)})
            raise KeyboardInterrupt
        log.info("stop already requested; still waiting for running jobs", extra={"signal": name})

    def run_forever(self, before_start: Callable[[], object] | None = None) -> None:
        """Wait for the database, run ``before_start`` (the schema check), then run the
        timetable until SIGTERM or Ctrl-C, and stop cleanly. A second Ctrl-C raises
        KeyboardInterrupt (the CLI's exit code 130)."""
        # The pool logs from child loggers (a filter on "sqlalchemy.pool" misses them): filter the handlers.
        for handler in logging.getLogger().handlers:
            handler.addFilter(POOL_FILTER)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        if not self.wait_for_database():
            log.info("orchestrator stopped before the database answered")
            return
        if before_start is not None:
            before_start()
        self.read_overrides()
        self.apply_overrides(self._override_rows or [], starting=True)
        now = self.clock.now()
        planner = Planner(self.jobs.values(), now)
        log.info(
            "orchestrator started",
            extra={
                "component": self.component,
                "host": self.host,
                "jobs": ",".join(self.jobs),
                "timetable": self.timetable_line(now),
            },
        )
        self.beat()
        next_beat = now + timedelta(seconds=self.heartbeat_seconds)
        next_read = now + timedelta(seconds=self.refresh_seconds)
        self.catch_up(now)
        while not self.stopping.is_set():
            now = self.clock.now()
            for job, slot in planner.due(now):
                self.start_job(job, slot)
            rows = self._override_rows
            if rows is not None and rows != self._applied_rows and self.apply_overrides(rows):
                # Every job's next slot is the first after now, as it was: none runs twice, none is lost.
                planner = Planner(self.jobs.values(), now)
            if now >= next_beat:
                self.beat_in_background()
                next_beat = now + timedelta(seconds=self.heartbeat_seconds)
            if now >= next_read:
                self.read_overrides_in_background()
                next_read = now + timedelta(seconds=self.refresh_seconds)
            self.db.close_idle_sessions()  # a daily job's session is not held all day
            wait = min(
                planner.seconds_to_next(now),
                (next_beat - now).total_seconds(),
                (next_read - now).total_seconds(),
                POLL_INTERVAL,
            )
            self.stopping.wait(max(wait, 0.01))
        self.shutdown()

    def shutdown(self) -> dict[str, bool]:
        """Ask the running jobs to stop at their next batch and wait up to the limit.
        Returns job -> finished in time."""
        self.stopping.set()
        with self._lock:
            running = {name: t for name, t in self._running.items() if t.is_alive()}
        if not running:
            self.db.close_kept_sessions()
            log.info("orchestrator stopped; no job was running")
            return {}
        for name in running:
            try:
                params = {"JobName": name, "Action": "request"}
                asked = self._call("Job.job_stop_request", params, ("Result",))
                log.info("asked a running job to stop", extra={"job": name, "result": asked["Result"]})
            except Exception as exc:
                log.warning("could not ask a job to stop", extra={"job": name, "error": _one_line(exc)})
        log.info(
            "orchestrator stopping; waiting for running jobs",
            extra={"jobs": ",".join(running), "limit_seconds": self.stop_wait_seconds},
        )
        deadline = time.monotonic() + self.stop_wait_seconds
        finished = {}
        for name, thread in running.items():
            started = time.monotonic()
            thread.join(max(0.0, deadline - time.monotonic()))
            finished[name] = not thread.is_alive()
            waited = round(time.monotonic() - started, 1)
            extra = {"job": name, "finished": finished[name], "seconds": waited}
            log.info("waited for a running job", extra=extra)
        # The idle ones; a run still going closes or keeps its own at its end, and the process ends.
        self.db.close_kept_sessions()
        if all(finished.values()):
            log.info("orchestrator stopped; every running job finished")
        else:
            # Its session ends with the process: the lock goes with it, the next run marks the row abandoned.
            log.warning(
                "orchestrator stopped; jobs still running after the limit",
                extra={"jobs": ",".join(n for n, done in finished.items() if not done)},
            )
        return finished

    def stop(self) -> None:
        self.stopping.set()


def next_runs(
    now: datetime | None = None,
    jobs: Mapping[str, Job] | None = None,
    effective: overrides.Overrides | None = None,
) -> dict[str, str]:
    """Each job's timetable and next run in Danish time, for ``flp jobs`` and the start line:
    the effective timetable under ``effective`` (the overrides; default: none), marked when
    overridden; a job switched off has no next run."""
    now = now or datetime.now(UTC)
    effective = effective or overrides.apply([], JOBS if jobs is None else jobs)
    out = {}
    for name, job in effective.jobs.items():
        if not job.enabled:
            out[name] = job.describe()
            continue
        timetable = job.job.timetable
        out[name] = f"{job.describe()}; next {local(next_slot(timetable, now)):%Y-%m-%d %H:%M %Z}"
    return out
