"""The access log of the care-plan documents: the patient as a keyed hash, never a CPR number.

``patient_hash`` is HMAC-SHA256 of the CPR under a key kept outside the
database (setting ``cda_hash_key_file``, ``FLP_CDA_HASH_KEY_FILE``; by default
``<data_dir>/cda-hash.key``, made once with 32 random bytes, mode 600), so the
log can be read, copied or mailed without holding personal data, while the
same patient is the same hash for as long as the key is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from orchestrator.config import ConfigError, Settings
from orchestrator.db.connection import Database

KEY_FILE_DEFAULT = "cda-hash.key"
KEY_BYTES_MIN = 16


def key_file(settings: Settings) -> Path:
    return (
        Path(settings.cda_hash_key_file).expanduser()
        if settings.cda_hash_key_file
        else (settings.data_dir / KEY_FILE_DEFAULT)
    )


def load_key(settings: Settings) -> bytes:
    """The key of the patient hash; the default file is made when missing (a configured one must exist)."""
    path = key_file(settings)
    if not path.exists():
        if settings.cda_hash_key_file:
            raise ConfigError(
                f"setting cda_hash_key_file (FLP_CDA_HASH_KEY_FILE): no such file {str(path)!r}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) < KEY_BYTES_MIN:
        raise ConfigError(
            f"setting cda_hash_key_file (FLP_CDA_HASH_KEY_FILE): {str(path)!r} holds {len(key)} bytes; "
            f"the key needs at least {KEY_BYTES_MIN}"
        )
    return key


def patient_hash(key: bytes, cpr: str) -> str:
    return hmac.new(key, cpr.encode("ascii"), hashlib.sha256).hexdigest()


def log(
    db: Database,
    conn: Any,
    *,
    requester_kind: str,
    requester: str,
    purpose: str,
    http_status: int,
    latency_ms: int,
    patient: str | None = None,
    plan: str | None = None,
    version: int | None = None,
) -> None:
    """One row of PLSP.CdaAccessLog (Api.cda_access_log); ``patient`` is the keyed hash."""
    db.call(
        conn,
        "Api.cda_access_log",
        {
            "RequesterKind": requester_kind,
            "Requester": requester[:100],
            "Purpose": purpose,
            "HttpStatus": http_status,
            "LatencyMs": max(0, int(latency_ms)),
            "PatientHash": patient,
            "ForloebCode": plan,
            "VersionNumber": version,
        },
    )


def counts(db: Database, conn: Any, day, days: int = 1) -> list[dict[str, Any]]:
    """Monitor.cda_access_counts: requests per UTC day, requester and purpose (the daily e-mail's)."""
    return db.rows(conn, "Monitor.cda_access_counts", {"Day": day, "Days": days})
