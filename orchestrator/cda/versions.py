"""Document versions: content hash, setId, versionNumber and the RPLC link.

The setId of a care plan's document is ``PLSP.Forloebsplan.SetId`` (stable per
patient and plan). The content hash is SHA-256 over a canonical JSON of what
the document says (patient, clinic, plan, diagnoses, medication, values), not
over the XML, so the version changes only when the content does:
``Api.cda_version_register`` returns the newest version when the hash is the
same, and makes the next one (with the previous document's id, for
``relatedDocument typeCode="RPLC"``) when it is not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestrator.cda.data import CarePlans, Plan
from orchestrator.db.connection import Database

# Changes whenever the builder's output for the same content changes, so such a
# release makes new versions instead of serving a changed document under an old id.
LAYOUT_VERSION = 2


@dataclass(frozen=True)
class DocumentVersion:
    number: int
    document_id: uuid.UUID
    created_utc: dt.datetime  # naive UTC: the document's effectiveTime
    previous_document_id: uuid.UUID | None  # RPLC target; None for the first version
    content_hash: str
    created: bool = False  # made by this call


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def content(plans: CarePlans, plan: Plan) -> dict[str, Any]:
    """What the document of ``plan`` says, as plain data (the hash's input)."""
    p, k = plans.patient, plans.clinic
    return {
        "layout": LAYOUT_VERSION,
        "patient": [p.cpr, p.given_name, p.family_name, _plain(p.birth_date), p.sex],
        "clinic": [k.sor, k.name],
        "plan": [plan.code, plan.title, str(plan.set_id), plan.status],
        "diagnoses": [
            [d.code, d.code_system, d.description, _plain(d.diagnosed), _plain(d.ended)]
            for d in plan.diagnoses
        ],
        "medication": [[m.atc_code, m.drug_name, _plain(m.start), _plain(m.end)] for m in plan.medication],
        "values": [
            [v.value_id, v.code, v.description, _plain(v.value), v.unit, v.comparator, _plain(v.measured_utc)]
            for v in plan.values
        ],
    }


def content_hash(plans: CarePlans, plan: Plan) -> str:
    text = json.dumps(content(plans, plan), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current(db: Database, conn: Any, plans: CarePlans, plan: Plan) -> DocumentVersion:
    """The version of ``plan``'s document for its content now: the newest one read with the
    plan when the hash is the same (no further call), else Api.cda_version_register's."""
    digest = content_hash(plans, plan)
    v = plan.version
    if v is not None and v.content_hash == digest:
        return DocumentVersion(v.number, v.document_id, v.created_utc, v.previous_document_id, digest)
    out = db.call(
        conn,
        "Api.cda_version_register",
        {"ForloebsplanId": plan.forloebsplan_id, "ContentHash": digest},
        ("VersionNumber", "DocumentId", "CreatedUtc", "PreviousDocumentId", "Created"),
    )
    previous = out["PreviousDocumentId"]
    return DocumentVersion(
        number=int(out["VersionNumber"]),
        document_id=uuid.UUID(str(out["DocumentId"]).lower()),
        created_utc=out["CreatedUtc"],
        previous_document_id=None if previous is None else uuid.UUID(str(previous).lower()),
        content_hash=digest,
        created=out["Created"] == "Y",
    )
