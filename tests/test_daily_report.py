"""The daily report (issue 12): the mail read back from a real SMTP server (aiosmtpd with
STARTTLS and a login), the outbox when SMTP is down or unset (delivered exactly once), the job
and ``flp report``. Rows are put in at times relative to a chosen UTC day."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest

from orchestrator import cli, config
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from reports import job as report_job
from reports.outbox import Outbox
from tests.support.reports import add_dead_letter, add_run, at, busy_day
from tests.support.smtp import SmtpServer
from tests.support.sql import execute, fetch_one

DAY = date(2026, 6, 15)
CARD_SECTIONS = ("aim", "conversion", "maintenance", "inclusion", "uploads", "cda")


class Keyed(HTMLParser):
    """The numbers of the HTML by their data-key, and every img src."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, int] = {}
        self.images: list[str] = []
        self._key = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        self._key = attrs.get("data-key")

    def handle_data(self, data):
        if self._key and data.strip():
            self.values[self._key] = int(data.strip().replace(",", ""))
            self._key = None


def keyed(html: str) -> Keyed:
    parser = Keyed()
    parser.feed(html)
    return parser


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path)
    server.start()
    yield server
    server.stop()


def settings_for(tmp_path, smtp_url: str | None):
    env = {"FLP_DATA_DIR": str(tmp_path / "data")}
    if smtp_url:
        env["FLP_SMTP_URL"] = smtp_url
    return config.load(env)


def test_the_mail_read_back_holds_subject_both_parts_the_inline_chart_and_the_databases_numbers(
    db, tmp_path, smtp
):
    expected = busy_day(db, DAY)
    path, delivery, _ = report_job.queue_and_deliver(db, DAY, settings_for(tmp_path, smtp.url))
    assert delivery.error is None and len(delivery.sent) == 1 and delivery.waiting == []
    assert len(smtp.mailbox.messages) == 1
    mail = smtp.mailbox.messages[0]
    assert smtp.mailbox.envelopes[0] == ("flp@localhost", ["drift@localhost"])
    # The oldest pending row waited 16 h at the end of the day (FAIL at 720 min); one failed run,
    # one missed slot and one dead letter are each a WARN.
    assert mail["Subject"].startswith(
        f"FLP operations {DAY.isoformat()}: FAIL - oldest AIM row waits 960 min"
    )
    for words in ("1 failed run (convert_values)", "1 missed run (aim_import)", "1 AIM dead letter"):
        assert words in mail["Subject"]
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html_part = mail.get_body(("related",))
    html = mail.get_body(("html",)).get_content()
    images = [p for p in html_part.iter_parts() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    png = images[0].get_content()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    content_id = images[0]["Content-ID"].strip("<>")
    assert images[0]["Content-Disposition"].startswith("inline")
    page = keyed(html)
    assert page.images == [f"cid:{content_id}"]
    # Every number the HTML shows is the database's.
    for (section, subject, metric), value in expected.items():
        if section == "jobs" and metric in ("runs", "rows", "skipped", "missed"):
            assert page.values[f"jobs/{subject}/{metric}"] == value, (subject, metric)
        elif (
            section in ("aim", "conversion", "maintenance", "inclusion", "uploads", "cda")
            and subject != "aim"
        ):
            assert page.values[f"{section}/{subject}/{metric}"] == value, (section, subject, metric)
    assert page.values["jobs/convert_values/failures"] == 1
    assert page.values["aim/*/dead_lettered"] == 1
    assert page.values["now:aim/FLP_AIM/pending"] == 3
    size = fetch_one(db, "SELECT pg_database_size(current_database())")[0]
    assert abs(page.values["now:database/size/bytes"] - size) < size * 0.05
    # The text part says the same.
    assert re.search(r"^session_purge\s+3\s+0\s+1/0\s+2\.0 s / 4\.0 s\s+60$", text, re.M)
    assert re.search(r"^values converted\s+4$", text, re.M)
    assert "FAIL: oldest AIM row waits 960 min" in text
    assert re.search(r"^SOR 990000011000016: rows unchanged \(no-op\)\s+850$", text, re.M)
    assert re.search(r"^SOR 990000011000016: requests throttled \(429\)\s+2$", text, re.M)
    assert re.search(r"^dds DDS dds-retrieve: failed \(4xx/5xx\)\s+1$", text, re.M)
    assert "database growth" in text  # named as not there yet, not faked
    assert path.name.endswith(".eml") and not path.exists()


def test_a_day_with_no_activity_reads_ok(db, tmp_path, smtp):
    report_job.queue_and_deliver(db, date(2026, 2, 2), settings_for(tmp_path, smtp.url))
    mail = smtp.mailbox.messages[0]
    assert mail["Subject"] == "FLP operations 2026-02-02: OK - all jobs ran, nothing waits"
    html = mail.get_body(("html",)).get_content()
    assert 'id="no-runs"' in html and "No job ran on this day." in mail.get_body(("plain",)).get_content()
    assert keyed(html).values["aim/FLP_AIM/backlog"] == 0


def test_a_day_with_failures_reads_fail_when_the_threshold_says_so(db, tmp_path, smtp):
    day = date(2026, 9, 30)
    for hour in range(5):
        add_run(db, "log_cleanup", "failed", at(day, hour), 1, message="boom")
    add_run(db, "session_purge", "abandoned", at(day, 6), None)
    report_job.queue_and_deliver(db, day, settings_for(tmp_path, smtp.url))
    subject = smtp.mailbox.messages[0]["Subject"]
    assert subject == "FLP operations 2026-09-30: FAIL - 6 failed runs (log_cleanup, session_purge)"
    execute(
        db, "UPDATE Ops.Setting SET Value = '10' WHERE JobName = 'daily_report' AND Name = 'FailJobFailures'"
    )
    report_job.queue_and_deliver(db, day, settings_for(tmp_path, smtp.url))
    assert smtp.mailbox.messages[1]["Subject"].startswith("FLP operations 2026-09-30: WARN - 6 failed runs")


def test_a_day_with_a_dead_lettered_aim_message_reads_warn(db, tmp_path, smtp):
    day = date(2027, 3, 28)
    add_dead_letter(db, at(day, 3))
    add_dead_letter(db, at(day, -2))  # the day before: counted in the total, not the day
    report_job.queue_and_deliver(db, day, settings_for(tmp_path, smtp.url))
    mail = smtp.mailbox.messages[0]
    assert mail["Subject"] == "FLP operations 2027-03-28: WARN - 1 AIM dead letter"
    page = keyed(mail.get_body(("html",)).get_content())
    assert page.values["aim/*/dead_lettered"] == 1
    assert page.values["now:aim/aim/dead_letters"] == 2


def test_smtp_down_then_up_delivers_the_waiting_mail_exactly_once(db, tmp_path, smtp):
    settings = settings_for(tmp_path, smtp.url)
    outbox = Outbox(settings.data_dir)
    smtp.stop()
    path, delivery, _ = report_job.queue_and_deliver(db, DAY, settings)
    assert delivery.sent == [] and delivery.waiting == [path] and "Connection refused" in delivery.error
    assert path.exists() and outbox.waiting() == [path]
    assert outbox.deliver(settings.smtp_url).error  # still down
    smtp.start()
    again = outbox.deliver(settings.smtp_url)
    assert again.error is None and [p.name for p in again.sent] == [path.name]
    assert outbox.waiting() == [] and outbox.deliver(settings.smtp_url).sent == []
    assert len(smtp.mailbox.messages) == 1
    # A crash after the server accepted and before the move: the id is recorded, so the file
    # found in the outbox again is moved, not sent a second time.
    shutil.copy(again.sent[0], outbox.folder / path.name)
    assert [p.name for p in outbox.deliver(settings.smtp_url).sent] == [path.name]
    assert len(smtp.mailbox.messages) == 1


def test_without_smtp_the_mail_goes_to_the_outbox_and_a_later_run_with_smtp_sends_it(db, tmp_path, smtp):
    settings = settings_for(tmp_path, None)
    path, delivery, _ = report_job.queue_and_deliver(db, DAY, settings)
    assert delivery.error is None and delivery.waiting == [path] and path.is_file()
    assert "no SMTP configured" in report_job.describe_delivery(path, delivery)
    later = Outbox(settings.data_dir).deliver(smtp.url)
    assert [p.name for p in later.sent] == [path.name] and len(smtp.mailbox.messages) == 1


def test_a_wrong_password_keeps_the_mail(db, tmp_path, smtp):
    url = smtp.url.replace("s3cret%3Apw", "wrong")
    _, delivery, _ = report_job.queue_and_deliver(db, DAY, settings_for(tmp_path, url))
    assert "Authentication" in delivery.error or "535" in delivery.error
    assert len(delivery.waiting) == 1 and smtp.mailbox.messages == []


def test_the_job_runs_at_2330_and_fails_while_smtp_is_down_then_sends_both_mails(
    db, tmp_path, smtp, monkeypatch
):
    assert JOBS["daily_report"].timetable.daily_at == "23:30"
    monkeypatch.setenv("FLP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLP_SMTP_URL", smtp.url)
    smtp.stop()
    first = run_job(db, JOBS["daily_report"], "test")
    assert first.result == "failed" and "wait in" in first.error
    status, message = fetch_one(
        db, "SELECT Status, Message FROM Ops.JobRun WHERE JobRunId = ?", (first.job_run_id,)
    )
    assert status == "failed" and "Connection refused" in message
    smtp.start()
    second = run_job(db, JOBS["daily_report"], "test")
    assert second.result == "succeeded" and second.rows == 2
    assert len(smtp.mailbox.messages) == 2
    assert len({m["Message-ID"] for m in smtp.mailbox.messages}) == 2
    dry = run_job(db, JOBS["daily_report"], "test", execute=False)
    assert dry.result == "dry_run" and len(smtp.mailbox.messages) == 2


def test_flp_report_daily_renders_without_sending_and_send_sends(db, tmp_path, smtp, monkeypatch, capsys):
    busy_day(db, DAY, failures=False, dead_letter=False)
    monkeypatch.setenv("FLP_DATABASE_URL", db.url)
    monkeypatch.setenv("FLP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLP_SMTP_URL", smtp.url)
    out = tmp_path / "page" / "report.html"
    assert cli.main(["report", "daily", "--date", DAY.isoformat(), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert keyed(html).images[0].startswith("data:image/png;base64,")
    assert keyed(html).values["jobs/session_purge/runs"] == 3
    assert cli.main(["report", "daily", "--date", DAY.isoformat()]) == 0
    assert "session_purge" in capsys.readouterr().out
    assert smtp.mailbox.messages == [] and Outbox(tmp_path / "data").waiting() == []
    assert cli.main(["report", "send", "--date", (DAY + timedelta(days=1)).isoformat()]) == 0
    assert len(smtp.mailbox.messages) == 1
    assert cli.main(["report", "daily", "--date", "2026-13-01"]) == 2
    assert "not a date" in capsys.readouterr().err


@pytest.fixture
def login_url(db, pg_server_url):
    """URL factory: the test's database as a new login holding only ``role``."""
    import uuid

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from orchestrator.db.urls import libpq_url

    logins = []

    def make(role: str) -> str:
        login = f"flp_rep_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(role))
            )
        logins.append(login)
        return make_url(db.url).set(username=login, password=None).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        for login in logins:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def test_the_orchestrators_role_runs_the_job_and_the_operators_role_reads_the_report(
    db, tmp_path, monkeypatch, login_url
):
    from orchestrator.db.connection import Database

    busy_day(db, DAY)
    monkeypatch.setenv("FLP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FLP_SMTP_URL", raising=False)
    orchestrator = Database(login_url("flp_orchestrator"))
    operator = Database(login_url("flp_operator"))
    try:
        assert run_job(orchestrator, JOBS["daily_report"], "test").result == "succeeded"
        with operator.connect() as conn:
            report = report_job.make_report(operator, conn, DAY, tmp_path / "data")
        assert report.stats.get("jobs", "session_purge", "runs") == 3
    finally:
        orchestrator.engine.dispose()
        operator.engine.dispose()
    assert len(Outbox(tmp_path / "data").waiting()) == 1
