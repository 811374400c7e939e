"""Start-up checks: ``Job.startup_check`` (both engines) asked once when the runtime starts.

The procedure checks what the FLP procedures need from the server and the
database (engine version and edition, compatibility level, SET options,
RCSI reported, database owner: see its file) and reports one line per check.
``require`` turns the failed ones into one error a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.db.connection import Database
from orchestrator.errors import FlpError


@dataclass(frozen=True)
class Check:
    status: str  # ok, FAILED or info
    name: str  # EngineVersion, CompatibilityLevel, ...
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"


class StartupCheckFailed(FlpError):
    """A start-up check failed; the message names each failed check and what to set."""

    def __init__(self, failed: list[Check]) -> None:
        super().__init__("start-up checks failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
        self.failed = failed


def parse_report(report: str | None) -> list[Check]:
    """The procedure's report, one '<status> <check>: <detail>' line per check."""
    checks = []
    for line in (report or "").splitlines():
        status, _, rest = line.partition(" ")
        name, _, detail = rest.partition(": ")
        checks.append(Check(status, name, detail))
    return checks


def run_checks(db: Database) -> list[Check]:
    """Every check's result, failed or not (the procedure raises nothing here)."""
    with db.connect() as conn:
        out = db.call(conn, "Job.startup_check", {"RaiseOnFailure": "N"}, ("Failed", "Report"))
    return parse_report(out["Report"])


def require(db: Database) -> list[Check]:
    """Run the checks; raise StartupCheckFailed naming every failed one, else return them all."""
    checks = run_checks(db)
    failed = [c for c in checks if c.failed]
    if failed:
        raise StartupCheckFailed(failed)
    return checks
