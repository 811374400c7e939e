"""``flp report daily [--date D] [--out FILE.html]`` and ``flp report send [--date D]``.

Light at import (the parser imports ``iso_date``); Jinja2 and matplotlib load when a report is made.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_parsers(sub, common) -> None:
    report = sub.add_parser("report", parents=[common], help="the daily operations report (docs/reports.md)")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    daily = report_sub.add_parser(
        "daily", parents=[common], help="render the day's report without sending: text on stdout, or --out"
    )
    daily.add_argument("--date", type=iso_date, default=None, help="the UTC day, YYYY-MM-DD (default today)")
    daily.add_argument(
        "--out", type=Path, default=None, help="write the HTML page (chart inline) to FILE.html"
    )
    send = report_sub.add_parser(
        "send",
        parents=[common],
        help="mail the day's report now (through the outbox), and whatever waits there",
    )
    send.add_argument("--date", type=iso_date, default=None, help="the UTC day, YYYY-MM-DD (default today)")


def command(args, settings, db) -> int:
    from orchestrator.errors import EXIT_FAILED
    from reports import job

    day = args.date or job.today()
    if args.report_command == "daily":
        with db.connect() as conn:
            report = job.make_report(db, conn, day, settings.data_dir)
        rendered = job.page(report, settings.host)
        if args.out is None:
            sys.stdout.write(rendered.text)
            return 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(rendered.html, encoding="utf-8")
        print(f"{rendered.subject}\nwritten to {args.out}")
        return 0
    path, delivery, report = job.queue_and_deliver(db, day, settings)
    print(f"{report.assessment.status}: {job.describe_delivery(path, delivery)}")
    if delivery.error:
        print(f"flp report send: the mail waits in the outbox: {delivery.error}", file=sys.stderr)
        return EXIT_FAILED
    return 0
