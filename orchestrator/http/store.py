"""The service's calls into the database (Upload.* and Monitor reads): the only SQL it runs.

Each function takes the Database and, optionally, a connection the caller holds
(the service's pool, orchestrator/http/pool.py); without one it opens its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from orchestrator.db.connection import Database

UPLOAD_OUTPUTS = (
    "Result",
    "Documents",
    "RejectedDocuments",
    "Inserted",
    "Updated",
    "Unchanged",
    "Rejected",
    "Errors",
    "UploadId",
)


def upload(
    db: Database,
    sor: str,
    ydernummer: str,
    document: dict[str, Any] | str,
    *,
    now: datetime | None = None,
    execute: bool = True,
    conn: Any = None,
) -> dict[str, Any]:
    """Upload.upload_data: validate and store one upload; the outcome with its errors as a list."""
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    params = {
        "SorCode": sor,
        "Ydernummer": ydernummer,
        "Document": text,
        "NowUtc": now,
        "Execute": "Y" if execute else "N",
    }
    out = _call(db, conn, "Upload.upload_data", params, UPLOAD_OUTPUTS)
    out["errors"] = json.loads(out["errors"] or "[]")
    return out


def checkpoint(db: Database, sor: str, *, conn: Any = None) -> dict[str, Any]:
    """Upload.upload_checkpoint: the clinic's sync token and what it has stored."""
    outputs = ("SyncToken", "LastUploadUtc", "Uploads", "RowsStored")
    out = _call(db, conn, "Upload.upload_checkpoint", {"SorCode": sor}, outputs)
    out["lastUploadUtc"] = _utc(out["lastUploadUtc"])
    return out


def enqueue(
    db: Database,
    sor: str,
    ydernummer: str,
    document: dict[str, Any] | str,
    *,
    full_resync: bool = False,
    conn: Any = None,
) -> dict[str, Any]:
    """Upload.upload_enqueue: stage a bulk upload as a job (one insert); its id, documents and rows."""
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    params = {
        "SorCode": sor,
        "Ydernummer": ydernummer,
        "Document": text,
        "FullResync": "Y" if full_resync else "N",
    }
    return _call(db, conn, "Upload.upload_enqueue", params, ("UploadId", "Documents", "Rows"))


MAX_THROTTLE_COUNT = 999_999_999  # Upload.upload_throttled's largest count an entry (9 digits)

JOB_OUTPUTS = (
    "State",
    "ReceivedUtc",
    "FinishedUtc",
    "DocumentsTotal",
    "Documents",
    "RejectedDocuments",
    "Inserted",
    "Updated",
    "Unchanged",
    "Rejected",
    "Errors",
    "Reason",
)


def job_status(db: Database, sor: str, upload_id: int, *, conn: Any = None) -> dict[str, Any] | None:
    """Upload.upload_job_status: the clinic's bulk upload job, or None (none, or another clinic's)."""
    out = _call(db, conn, "Upload.upload_job_status", {"SorCode": sor, "UploadId": upload_id}, JOB_OUTPUTS)
    if out["state"] is None:
        return None
    errors = json.loads(out["errors"] or "[]")
    errors.sort(key=lambda e: (e.get("document") or 0, -1 if e.get("row") is None else e["row"], e["field"]))
    out["errors"] = errors
    out["receivedUtc"], out["finishedUtc"] = _utc(out["receivedUtc"]), _utc(out["finishedUtc"])
    return out


def throttled(
    db: Database, counts: dict[tuple[str, str], int], *, now: datetime | None = None, conn: Any = None
) -> int:
    """Upload.upload_throttled: add the 429 counts {(sor, UTC day): n} to the day's statistics, one call.
    A count over MAX_THROTTLE_COUNT is sent as that (the procedure takes at most 9 digits, and caps the
    day's total at the largest int anyway)."""
    body = [
        {"sor": sor, "day": day, "count": min(n, MAX_THROTTLE_COUNT)}
        for (sor, day), n in sorted(counts.items())
    ]
    params = {"Counts": json.dumps(body), "NowUtc": now}
    return _call(db, conn, "Upload.upload_throttled", params, ("Rows",))["rows"]


def _call(db: Database, conn: Any, procedure: str, params: dict[str, Any], outputs: tuple[str, ...]) -> dict:
    if conn is None:
        with db.connect() as own:
            out = db.call(own, procedure, params, outputs)
    else:
        out = db.call(conn, procedure, params, outputs)
    return {key[0].lower() + key[1:]: value for key, value in out.items()}


def _utc(value: datetime | None) -> datetime | None:
    """The database's UTC time is naive: say so (RFC 3339 needs the offset)."""
    return None if value is None else value.replace(tzinfo=UTC)
