"""The 23:30 job ``daily_report`` and what ``flp report`` calls.

``make_report``: statistics (one Monitor call), settings, status, chart, HTML and text.
``run_job`` (the registry's runner, like ``run_job``): the job lock and Ops.JobRun row, the
day's mail into the outbox, then every waiting mail delivered. Without FLP_SMTP_URL the mail
stays in the outbox (the embedded default) and the run succeeds; with one that is down the run
fails, saying so, and the mail waits for the next run (or ``flp report send``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

from orchestrator import config
from orchestrator.errors import database_message
from orchestrator.runner import JobResult, describe_error
from reports import chart, mail
from reports.assess import Assessment, assess
from reports.outbox import Delivery, Outbox
from reports.render import Rendered, data_uri, render
from reports.settings import ReportSettings
from reports.settings import load as load_settings
from reports.statistics import DailyStatistics, gather

JOB = "daily_report"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    stats: DailyStatistics
    settings: ReportSettings
    assessment: Assessment
    png: bytes


def today() -> date:
    """The report's day: today in UTC (at 23:30 Danish time it is the same date)."""
    return datetime.now(UTC).date()


def make_report(db, conn, day: date, data_dir: Path | None = None) -> Report:
    """The day's report; matplotlib's cache goes under ``data_dir`` (else the temporary folder)."""
    stats = gather(db, conn, day)
    report_settings = load_settings(db, conn)
    cache = (data_dir or Path(tempfile.gettempdir())) / "matplotlib"
    png = chart.png(stats.trend, cache)
    return Report(stats, report_settings, assess(stats, report_settings), png)


def page(report: Report, host: str) -> Rendered:
    """The report as one self-contained page (the chart as a data: URI): --out, flp serve."""
    return render(report.stats, report.assessment, data_uri(report.png), host)


def message(report: Report, host: str) -> EmailMessage:
    content_id = mail.new_content_id()
    rendered = render(report.stats, report.assessment, f"cid:{content_id[1:-1]}", host)
    return mail.build(
        rendered, report.png, content_id, report.settings.sender, report.settings.recipients, report.stats.day
    )


def queue_and_deliver(db, day: date, settings: config.Settings) -> tuple[Path, Delivery, Report]:
    """Build the day's mail, put it into the outbox, deliver everything waiting."""
    with db.connect() as conn:
        report = make_report(db, conn, day, settings.data_dir)
    outbox = Outbox(settings.data_dir)
    path = outbox.put(message(report, settings.host))
    return path, outbox.deliver(settings.smtp_url), report


def describe_delivery(path: Path, delivery: Delivery) -> str:
    if delivery.error:
        return f"{len(delivery.waiting)} mail(s) wait in {path.parent}: {delivery.error}"
    if delivery.waiting:
        return f"no SMTP configured (FLP_SMTP_URL): the mail is in the outbox, {path}"
    return f"sent {len(delivery.sent)} mail(s); the outbox is empty"


def where_the_mail_went(settings: config.Settings) -> str:
    """A line for ``flp demo``: the newest mail waiting in the outbox, or the newest one sent."""
    outbox = Outbox(settings.data_dir)
    waiting = outbox.waiting()
    if waiting:
        return f"The day's operations mail is in the outbox: {waiting[-1]}"
    sent = sorted(outbox.sent_folder.glob("*.eml")) if outbox.sent_folder.is_dir() else []
    if sent:
        return f"The day's operations mail was sent over SMTP; a copy is in {sent[-1]}"
    return f"No operations mail in {outbox.folder} (the daily_report step says why)"


def run_job(db, triggered_by="manual", execute=True, time_limit_seconds=None, host=None) -> JobResult:
    """One run of the daily report (jobs.Job.runner); a dry run builds the report and sends nothing."""
    settings = config.load()
    started = time.perf_counter()
    with db.connect() as conn:
        start = db.call(
            conn,
            "Job.job_run_start",
            {
                "JobName": JOB,
                "TriggeredBy": triggered_by,
                "Host": host or settings.host,
                "Parameters": f"Execute={'Y' if execute else 'N'}",
            },
            ("JobRunId", "Result"),
        )
        run_id = start["JobRunId"]
        if start["Result"] == "already_running":
            return JobResult(JOB, "already_running", 0, time.perf_counter() - started, run_id)
        try:
            if execute:
                path, delivery, report = queue_and_deliver(db, today(), settings)
                note = f"{report.assessment.status}: " + describe_delivery(path, delivery)
                status, rows = ("failed" if delivery.error else "succeeded"), len(delivery.sent)
            else:
                report = make_report(db, conn, today(), settings.data_dir)
                note = f"dry run: {report.assessment.status}, nothing written or sent"
                status, rows = "succeeded", 0
            db.call(
                conn,
                "Job.job_run_finish",
                {"JobRunId": run_id, "Status": status, "RowsAffected": rows, "Message": note[:4000]},
            )
        except Exception as exc:
            text = describe_error(exc)
            try:
                db.call(conn, "Job.job_run_fail", {"JobName": JOB, "Message": text})
            except Exception:
                log.warning("could not mark the run failed; session lost", extra={"job": JOB})
            log.error("job failed", extra={"job": JOB, "error": database_message(text)})
            return JobResult(JOB, "failed", 0, time.perf_counter() - started, run_id, text)
    seconds = time.perf_counter() - started
    if status == "failed":
        log.error("job failed", extra={"job": JOB, "error": note})
        return JobResult(JOB, "failed", rows, seconds, run_id, note)
    log.info("job finished", extra={"job": JOB, "result": status, "rows": rows, "seconds": round(seconds, 3)})
    return JobResult(JOB, status if execute else "dry_run", rows, seconds, run_id)
