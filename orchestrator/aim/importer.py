"""FlpAimImport (job ``aim_import``): pending FLP_AIM ids onto the queue, marked queued once confirmed.

A Python-driven job around procedures (publishing happens here, not in the
database), with the same outer behaviour as the others: the job lock and
Ops.JobRun row (Job.job_run_start / job_run_finish, Job.job_run_fail after a
failure), a time limit, a dry run. Each step is one short call:

1. ``Job.aim_import_claim``: the next ClaimBatchSize due rows after the last
   position, oldest first (UPDLOCK/READPAST, SKIP LOCKED), stamped with the
   run; Status is left alone.
2. ``queue.publish``: messages of MessageSize ids, confirmed by the queue.
3. ``Job.aim_import_mark_queued``: the claimed range marked queued.

A crash anywhere leaves the rows due (pending, or queued past the visibility
timeout) for the next run; a crash after 2 and before 3 only means the ids are
published twice, which the consumer absorbs (MongoDB ``_id``, idempotent marks).
"""

from __future__ import annotations

import json
import logging
import time

from orchestrator.aim import IMPORT_JOB
from orchestrator.aim import settings as aim_settings
from orchestrator.config import host_name
from orchestrator.errors import database_message
from orchestrator.queue import Queue
from orchestrator.runner import JobResult, describe_error

log = logging.getLogger(__name__)


def message_bodies(ids: list[int], size: int) -> list[str]:
    """The message bodies for ``ids``: ``{"ids": [...]}`` with at most ``size`` ids each."""
    return [json.dumps({"ids": ids[i : i + size]}, separators=(",", ":")) for i in range(0, len(ids), size)]


def run_import(
    db,
    queue: Queue,
    triggered_by: str = "manual",
    execute: bool = True,
    time_limit_seconds: int | None = None,
    host: str | None = None,
) -> JobResult:
    """One run of FlpAimImport on its own connection; the queue confirms what it publishes."""
    started = time.perf_counter()
    with db.connect() as conn:
        try:
            settings = aim_settings.load(db, conn)
        except Exception as exc:
            message = describe_error(exc)
            log.error("job failed", extra={"job": IMPORT_JOB, "error": database_message(message)})
            return JobResult(IMPORT_JOB, "failed", 0, time.perf_counter() - started, None, message)
        limit = time_limit_seconds or settings.time_limit_seconds
        start = db.call(
            conn,
            "Job.job_run_start",
            {
                "JobName": IMPORT_JOB,
                "TriggeredBy": triggered_by,
                "Host": host or host_name(),
                "Parameters": f"Execute={'Y' if execute else 'N'}; TimeLimitSeconds={limit}; "
                f"MaxRows={settings.max_rows}; MessageSize={settings.message_size}",
            },
            ("JobRunId", "Result"),
        )
        run_id = start["JobRunId"]
        if start["Result"] == "already_running":
            seconds = time.perf_counter() - started
            log.info("job finished", extra={"job": IMPORT_JOB, "result": "already_running"})
            return JobResult(IMPORT_JOB, "already_running", 0, seconds, run_id)
        try:
            rows, messages, stopped = _claim_publish_mark(
                db, conn, queue, settings, run_id, execute, limit, started
            )
            status = "stopped" if stopped else "succeeded"
            note = (
                f"published {rows} rows in {messages} messages"
                if execute
                else f"dry run: {rows} rows due (nothing claimed or published)"
            )
            if stopped:
                note += f"; time limit {limit} s reached, the rest is left for the next run"
            db.call(
                conn,
                "Job.job_run_finish",
                {"JobRunId": run_id, "Status": status, "RowsAffected": rows, "Message": note},
            )
        except Exception as exc:
            message = describe_error(exc)
            try:
                db.call(conn, "Job.job_run_fail", {"JobName": IMPORT_JOB, "Message": message})
            except Exception:
                log.warning("could not mark the run failed; session lost", extra={"job": IMPORT_JOB})
            seconds = time.perf_counter() - started
            log.error(
                "job failed",
                extra={"job": IMPORT_JOB, "seconds": round(seconds, 3), "error": database_message(message)},
            )
            return JobResult(IMPORT_JOB, "failed", 0, seconds, run_id, message)
    seconds = time.perf_counter() - started
    result = JobResult(IMPORT_JOB, status if execute else "dry_run", rows, seconds, run_id)
    log.info(
        "job finished",
        extra={
            "job": IMPORT_JOB,
            "result": result.result,
            "rows": rows,
            "messages": messages,
            "seconds": round(seconds, 3),
            "job_run_id": run_id,
        },
    )
    return result


def _claim_publish_mark(db, conn, queue, settings, run_id, execute, limit, started) -> tuple[int, int, bool]:
    position, rows, messages = 0, 0, 0
    while rows < settings.max_rows:
        if time.perf_counter() - started > limit:
            return rows, messages, True
        batch = min(settings.claim_batch_size, settings.max_rows - rows)
        claim = db.call(
            conn,
            "Job.aim_import_claim",
            {
                "JobRunId": run_id,
                "BatchSize": batch,
                "VisibilityTimeoutSeconds": settings.visibility_timeout_seconds,
                "Execute": "Y" if execute else "N",
                "AfterId": position,
            },
            ("LastId", "Rows", "Ids"),
        )
        claimed = int(claim["Rows"] or 0)
        if claimed == 0:
            break
        if execute:
            ids = [int(i) for i in claim["Ids"].split(",")]
            bodies = message_bodies(ids, settings.message_size)
            queue.publish(bodies)  # returns only when the queue confirmed every body
            db.call(
                conn,
                "Job.aim_import_mark_queued",
                {"JobRunId": run_id, "FromId": position, "ToId": int(claim["LastId"])},
                ("Rows",),
            )
            messages += len(bodies)
        rows += claimed
        position = int(claim["LastId"])
        if claimed < batch:
            break
    return rows, messages, False


def run_job(
    db,
    triggered_by: str = "manual",
    execute: bool = True,
    time_limit_seconds: int | None = None,
    host: str | None = None,
) -> JobResult:
    """The registry's entry (jobs.Job.runner): the queue of FLP_QUEUE_URL, else the database queue."""
    from orchestrator import config
    from orchestrator.aim import QUEUE_NAME
    from orchestrator.queue import open_queue

    queue = open_queue(QUEUE_NAME, config.load().queue_url, database=db)
    try:
        return run_import(db, queue, triggered_by, execute, time_limit_seconds, host)
    finally:
        queue.close()
