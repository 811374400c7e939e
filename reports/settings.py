"""The report's settings: Ops.Setting rows of job ``daily_report`` (Monitor.daily_report_settings).

A DBA changes them with an UPDATE; every report reads them afresh. A malformed value stops the
report with a message naming the setting. A threshold of 0 is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.errors import FlpError

ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
# (measure, what it counts) in the order the reasons are listed.
MEASURES = {
    "JobFailures": "failed or abandoned job runs",
    "MissedRuns": "missed job slots",
    "DeadLetters": "AIM messages dead-lettered",
    "AimBacklog": "FLP_AIM rows not delivered",
    "OldestPendingMinutes": "minutes the oldest pending FLP_AIM row waits",
    "RejectedValues": "patient values given up",
}


class ReportSettingError(FlpError):
    """A daily_report row of Ops.Setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Threshold:
    warn: int  # 0: off
    fail: int  # 0: off

    def level(self, value: int) -> str:
        if self.fail and value >= self.fail:
            return "FAIL"
        if self.warn and value >= self.warn:
            return "WARN"
        return "OK"


@dataclass(frozen=True)
class ReportSettings:
    recipients: tuple[str, ...]
    sender: str
    thresholds: dict[str, Threshold]


def _where(name: str) -> str:
    return f"setting {name} of daily_report in Ops.Setting"


def parse(values: dict[str, str]) -> ReportSettings:
    def text(name: str) -> str:
        if name not in values:
            raise ReportSettingError(f"{_where(name)} is missing (migration 0012 adds it)")
        return values[name].strip()

    recipients = tuple(a.strip() for a in text("Recipients").split(",") if a.strip())
    for address in recipients:
        if not ADDRESS.match(address):
            raise ReportSettingError(f"{_where('Recipients')}: {address!r} is no e-mail address")
    sender = text("Sender")
    if not ADDRESS.match(sender):
        raise ReportSettingError(f"{_where('Sender')}: {sender!r} is no e-mail address")
    thresholds = {}
    for measure in MEASURES:
        limits = []
        for level in ("Warn", "Fail"):
            name = f"{level}{measure}"
            raw = text(name)
            if not raw.isdigit():
                raise ReportSettingError(f"{_where(name)}: {raw!r} is not a whole number (0 is off)")
            limits.append(int(raw))
        warn, fail = limits
        if warn and fail and fail < warn:
            raise ReportSettingError(f"{_where('Fail' + measure)}: {fail} is below Warn{measure} ({warn})")
        thresholds[measure] = Threshold(warn, fail)
    return ReportSettings(recipients, sender, thresholds)


def load(db, conn) -> ReportSettings:
    rows = db.rows(conn, "Monitor.daily_report_settings")
    return parse({r["name"]: r["value"] for r in rows})
