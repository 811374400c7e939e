"""One run of a job, on its own connection: ``run_job`` and what it reports.

On PostgreSQL a procedure that COMMITs cannot catch its own errors, so after a
failure the runner calls ``Job.job_run_fail`` (finishes the run row, frees the
lock); on SQL Server the procedure's CATCH block has done it already.

``keep_session`` (the orchestrator service) runs the job on its kept session
(``Database.connect(keep=job)``): kept for the next run only after a run that
succeeded and left nothing behind; a failed run's session is always closed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from orchestrator import config
from orchestrator.db.connection import Database
from orchestrator.errors import database_message
from orchestrator.jobs import Job

log = logging.getLogger(__name__)

JOB_OUTPUTS = ("JobRunId", "Result", "RowsAffected")
MESSAGE_MAX = 4000  # characters, Ops.JobRun.Message


def describe_error(exc: BaseException) -> str:
    """The error and, for a database error, where in the procedure it happened."""
    text = str(exc).strip()
    error: BaseException | None = exc
    while error is not None:  # a driver error may wrap the server's one
        context = getattr(getattr(error, "diag", None), "context", None)
        if context:
            if context.strip() not in text:
                text = f"{text}\nCONTEXT:  {context.strip()}"
            break
        error = error.__context__
    return text[:MESSAGE_MAX]


@dataclass(frozen=True)
class JobResult:
    job: str
    result: str  # succeeded, stopped, already_running, dry_run, failed
    rows: int
    seconds: float
    job_run_id: int | None
    error: str | None = None


def run_job(
    db: Database,
    job: Job,
    triggered_by: str = "manual",
    execute: bool = True,
    time_limit_seconds: int | None = None,
    host: str | None = None,
    keep_session: bool = False,
) -> JobResult:
    """Run one job now, on its own connection (``keep_session``: the job's kept one), and report
    what it did."""
    if job.runner:  # driven from Python around its procedures (jobs.Job.runner)
        import importlib

        module, function = job.runner.split(":")
        return getattr(importlib.import_module(module), function)(
            db, triggered_by=triggered_by, execute=execute, time_limit_seconds=time_limit_seconds, host=host
        )
    params = {
        "Execute": "Y" if execute else "N",
        "TimeLimitSeconds": time_limit_seconds,
        "TriggeredBy": triggered_by,
        "Host": host or config.host_name(),
    }
    started = time.perf_counter()
    with db.connect(keep=job.name if keep_session else None) as conn:
        try:
            out = db.call(conn, job.procedure, params, JOB_OUTPUTS)
        except Exception as exc:
            # Never reused, whatever job_run_fail below leaves: closed at the end of the block.
            db.discard(conn)
            message = describe_error(exc)
            try:
                _roll_back_leftover(db, conn)
                # Finishes the run row and frees the lock if the procedure could not.
                db.call(conn, "Job.job_run_fail", {"JobName": job.name, "Message": message})
            except Exception:
                # The session itself is gone (killed, network): its lock went with
                # it, and the next run marks the row abandoned.
                log.warning("could not mark the run failed; session lost", extra={"job": job.name})
            seconds = time.perf_counter() - started
            # The log line without PL/pgSQL's CONTEXT; the full text at DEBUG and in Ops.JobRun.
            summary = database_message(message)
            log.error("job failed", extra={"job": job.name, "seconds": round(seconds, 3), "error": summary})
            log.debug("job failed in full", extra={"job": job.name, "error": message})
            return JobResult(job.name, "failed", 0, seconds, None, message)
    seconds = time.perf_counter() - started
    result = JobResult(
        job=job.name,
        result=out["Result"],
        rows=int(out["RowsAffected"] or 0),
        seconds=seconds,
        job_run_id=out["JobRunId"],
    )
    log.info(
        "job finished",
        extra={
            "job": job.name,
            "result": result.result,
            "rows": result.rows,
            "seconds": round(seconds, 3),
            "job_run_id": result.job_run_id,
        },
    )
    return result


def _roll_back_leftover(db, conn) -> None:
    """Roll back a transaction a failed procedure left open on SQL Server (XACT_ABORT ends most
    errors' transactions, not every one), for Job.job_run_fail v3 refuses to run inside one.
    On PostgreSQL an autocommit CALL that failed leaves none."""
    if db.kind != "mssql":
        return
    cursor = conn.cursor()
    try:
        cursor.execute("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;")
    finally:
        cursor.close()
