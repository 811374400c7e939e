"""The overall status of a day: OK, WARN or FAIL, and why in a few words."""

from __future__ import annotations

from dataclasses import dataclass

from reports.settings import ReportSettings
from reports.statistics import DailyStatistics

ORDER = {"OK": 0, "WARN": 1, "FAIL": 2}


@dataclass(frozen=True)
class Finding:
    level: str  # WARN or FAIL
    measure: str
    value: int
    text: str  # a few words: "2 failed runs (log_cleanup)"


@dataclass(frozen=True)
class Assessment:
    status: str
    findings: list[Finding]

    @property
    def summary(self) -> str:
        if not self.findings:
            return "all jobs ran, nothing waits"
        return "; ".join(f.text for f in self.findings)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def measures(stats: DailyStatistics) -> dict[str, tuple[int, str]]:
    """Each measure's value for the day and its words."""
    failed_jobs = sorted(j.name for j in stats.jobs if j.failures)
    missed_jobs = sorted(j.name for j in stats.jobs if j.missed)
    failures, missed = stats.failures(), stats.total("missed")
    oldest = stats.current("aim", "FLP_AIM", "oldest_pending_seconds") // 60
    backlog = stats.get("aim", "FLP_AIM", "backlog")
    rejected = stats.get("conversion", "Patientvaerdier", "rejected")
    return {
        "JobFailures": (failures, f"{_plural(failures, 'failed run')} ({', '.join(failed_jobs)})"),
        "MissedRuns": (missed, f"{_plural(missed, 'missed run')} ({', '.join(missed_jobs)})"),
        "DeadLetters": (stats.dead_lettered, f"{_plural(stats.dead_lettered, 'AIM dead letter')}"),
        "AimBacklog": (backlog, f"AIM backlog {backlog:,}"),
        "OldestPendingMinutes": (oldest, f"oldest AIM row waits {oldest:,} min"),
        "RejectedValues": (rejected, f"{_plural(rejected, 'value')} given up"),
    }


def assess(stats: DailyStatistics, settings: ReportSettings) -> Assessment:
    findings = []
    for measure, (value, text) in measures(stats).items():
        level = settings.thresholds[measure].level(value)
        if level != "OK":
            findings.append(Finding(level, measure, value, text))
    findings.sort(key=lambda f: -ORDER[f.level])  # FAIL first, then in the settings' order
    status = max((f.level for f in findings), key=ORDER.get, default="OK")
    return Assessment(status, findings)
