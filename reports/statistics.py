"""The report's numbers: one call of Monitor.daily_statistics for the day and the 13 before it,
one of Monitor.upload_statistics and one of Monitor.cda_access_counts for the day.

The procedures return key/value rows (day, section, subject, metric, value), or rows folded into
them here (section ``uploads`` per SOR code, section ``cda`` per requester and purpose); a
missing row is 0.
``DailyStatistics`` keeps them as they came and offers the views the templates and the chart
use. Sections a later capability adds appear in ``sections`` without a change here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

TREND_DAYS = 14
JOB_METRICS = (
    "runs",
    "succeeded",
    "failed",
    "abandoned",
    "stopped",
    "skipped",
    "missed",
    "rows",
    "duration_p50_ms",
    "duration_max_ms",
)
Key = tuple[str, str, str]  # section, subject, metric


@dataclass(frozen=True)
class JobLine:
    name: str
    values: dict[str, int]

    def __getattr__(self, metric: str) -> int:  # job.runs, job.failed ... in templates
        if metric.startswith("__"):
            raise AttributeError(metric)
        return self.values.get(metric, 0)

    @property
    def failures(self) -> int:
        return self.values.get("failed", 0) + self.values.get("abandoned", 0)


@dataclass(frozen=True)
class TrendPoint:
    day: date
    runs: int
    failures: int
    backlog: int


@dataclass
class DailyStatistics:
    day: date
    by_day: dict[date, dict[Key, int]] = field(default_factory=dict)
    now: dict[Key, int] = field(default_factory=dict)  # values of the moment (as of the day's end)

    def get(self, section: str, subject: str, metric: str, day: date | None = None) -> int:
        return self.by_day.get(day or self.day, {}).get((section, subject, metric), 0)

    def current(self, section: str, subject: str, metric: str) -> int:
        return self.now.get((section, subject, metric), 0)

    def _subjects(self, section: str, day: date | None = None) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for (sec, subject, metric), value in self.by_day.get(day or self.day, {}).items():
            if sec == section:
                out[subject][metric] = value
        return dict(sorted(out.items()))

    @property
    def jobs(self) -> list[JobLine]:
        return [JobLine(name, values) for name, values in self._subjects("jobs").items()]

    def total(self, metric: str, day: date | None = None) -> int:
        return sum(v.get(metric, 0) for v in self._subjects("jobs", day).values())

    def failures(self, day: date | None = None) -> int:
        return self.total("failed", day) + self.total("abandoned", day)

    @property
    def inclusion(self) -> dict[str, dict[str, int]]:
        return self._subjects("inclusion")

    @property
    def uploads(self) -> dict[str, dict[str, int]]:
        """The day's uploads per SOR code."""
        return self._subjects("uploads")

    @property
    def cda(self) -> dict[str, dict[str, int]]:
        """The day's CDA and DDS requests per 'kind requester purpose'."""
        return self._subjects("cda")

    @property
    def dead_lettered(self) -> int:
        return sum(v.get("dead_lettered", 0) for v in self._subjects("aim").values())

    @property
    def dead_letters_total(self) -> int:
        return sum(v for (s, _, m), v in self.now.items() if s == "aim" and m == "dead_letters")

    @property
    def sections(self) -> list[str]:
        """Every section of the day and of the moment, in the order first seen."""
        seen: dict[str, None] = {}
        for key in (*self.by_day.get(self.day, {}), *self.now):
            seen.setdefault(key[0], None)
        return list(seen)

    @property
    def trend(self) -> list[TrendPoint]:
        days = [self.day - timedelta(days=k) for k in range(TREND_DAYS - 1, -1, -1)]
        return [
            TrendPoint(d, self.total("runs", d), self.failures(d), self.get("aim", "FLP_AIM", "backlog", d))
            for d in days
        ]


def from_rows(day: date, rows: list[dict]) -> DailyStatistics:
    stats = DailyStatistics(day)
    for row in rows:
        key = (row["section"], row["subject"], row["metric"])
        value = int(row["value"])
        if row["day"] is None:
            stats.now[key] = value
        else:
            stats.by_day.setdefault(row["day"], {})[key] = value
    return stats


UPLOAD_METRICS = {  # Monitor.upload_statistics column -> metric
    "uploads": "uploads",
    "documents": "documents",
    "rejecteddocuments": "rejected_documents",
    "rowsinserted": "rows_inserted",
    "rowsupdated": "rows_updated",
    "rowsunchanged": "rows_unchanged",
    "rowsrejected": "rows_rejected",
    "throttled": "throttled",
}
CDA_METRICS = {  # Monitor.cda_access_counts column -> metric
    "requests": "requests",
    "patients": "patients",
    "notmodified": "not_modified",
    "failures": "failures",
    "maxlatencyms": "max_latency_ms",
}


def upload_rows(day: date, rows: list[dict]) -> list[dict]:
    """Monitor.upload_statistics rows as key/value rows of section ``uploads``, subject the SOR code."""
    return [
        {"day": day, "section": "uploads", "subject": r["sorcode"], "metric": metric, "value": r[column] or 0}
        for r in rows
        for column, metric in UPLOAD_METRICS.items()
    ]


def cda_rows(day: date, rows: list[dict]) -> list[dict]:
    """Monitor.cda_access_counts rows as key/value rows of section ``cda``, subject
    ``kind requester purpose`` (the app's requester is 'citizen'; DDS's is the organisation)."""
    out = []
    for r in rows:
        subject = f"{r['requesterkind']} {r['requester']} {r['purpose']}"
        out.extend(
            {"day": day, "section": "cda", "subject": subject, "metric": metric, "value": r[column] or 0}
            for column, metric in CDA_METRICS.items()
        )
    return out


def gather(db, conn, day: date) -> DailyStatistics:
    """The day's statistics and the trend of the 13 days before it; the day's uploads per LPS
    and its CDA and DDS requests."""
    rows = db.rows(
        conn,
        "Monitor.daily_statistics",
        {"FromDate": day - timedelta(days=TREND_DAYS - 1), "ToDate": day},
    )
    rows += upload_rows(day, db.rows(conn, "Monitor.upload_statistics", {"FromDay": day, "ToDay": day}))
    rows += cda_rows(day, db.rows(conn, "Monitor.cda_access_counts", {"Day": day, "Days": 1}))
    return from_rows(day, rows)
