"""The AIM pipeline's settings, from Ops.Setting through Job.aim_settings_get (checked there)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class AimSettings:
    max_rows: int
    message_size: int
    claim_batch_size: int
    visibility_timeout_seconds: int
    time_limit_seconds: int
    max_attempts: int
    concurrency: int
    queue_visibility_seconds: int
    mongo_database: str
    mongo_collection: str
    mongo_write_concern: str
    mongo_timeout_ms: int


# Output names of Job.aim_settings_get, in field order.
OUTPUTS = (
    "MaxRows",
    "MessageSize",
    "ClaimBatchSize",
    "VisibilityTimeoutSeconds",
    "TimeLimitSeconds",
    "MaxAttempts",
    "Concurrency",
    "QueueVisibilitySeconds",
    "MongoDatabase",
    "MongoCollection",
    "MongoWriteConcern",
    "MongoTimeoutMs",
)


def load(db, conn=None) -> AimSettings:
    """Read the settings (a malformed one raises the procedure's error naming it)."""
    if conn is None:
        with db.connect() as own:
            out = db.call(own, "Job.aim_settings_get", {}, OUTPUTS)
    else:
        out = db.call(conn, "Job.aim_settings_get", {}, OUTPUTS)
    values = [out[name] for name in OUTPUTS]
    return AimSettings(
        **{
            f.name: (v if f.type == "str" else int(v))
            for f, v in zip(fields(AimSettings), values, strict=True)
        }
    )
