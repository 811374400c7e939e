"""The service's calls into the database (Upload.* and Monitor reads): the only SQL it runs."""

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
    if conn is None:
        with db.connect() as own:
            out = db.call(own, "Upload.upload_data", params, UPLOAD_OUTPUTS)
    else:
        out = db.call(conn, "Upload.upload_data", params, UPLOAD_OUTPUTS)
    out = {key[0].lower() + key[1:]: value for key, value in out.items()}
    out["errors"] = json.loads(out["errors"] or "[]")
    return out


def checkpoint(db: Database, sor: str) -> dict[str, Any]:
    """Upload.upload_checkpoint: the clinic's sync token and what it has stored."""
    with db.connect() as conn:
        out = db.call(
            conn,
            "Upload.upload_checkpoint",
            {"SorCode": sor},
            ("SyncToken", "LastUploadUtc", "Uploads", "RowsStored"),
        )
    out = {key[0].lower() + key[1:]: value for key, value in out.items()}
    if out["lastUploadUtc"] is not None:  # the database's UTC time, naive: say so (RFC 3339 needs the offset)
        out["lastUploadUtc"] = out["lastUploadUtc"].replace(tzinfo=UTC)
    return out
