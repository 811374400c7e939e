"""The current DK-CPD documents of a citizen: read once, version, build (what HTTP, demo and bench call)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from orchestrator.cda import builder, data, versions
from orchestrator.cda.data import CarePlans, Plan
from orchestrator.cda.versions import DocumentVersion
from orchestrator.db.connection import Database


@dataclass(frozen=True)
class Document:
    plans: CarePlans
    plan: Plan
    version: DocumentVersion
    element: etree._Element

    def to_bytes(self) -> bytes:
        return builder.to_bytes(self.element)


def build_all(db: Database, conn: Any, plans: CarePlans, codes: set[str] | None = None) -> list[Document]:
    out = []
    for plan in plans.plans:
        if codes is not None and plan.code not in codes:
            continue
        version = versions.current(db, conn, plans, plan)
        out.append(Document(plans, plan, version, builder.build(plans, plan, version)))
    return out


def for_citizen(
    db: Database, conn: Any, cpr: str, now: dt.datetime | None = None
) -> tuple[CarePlans | None, list[Document]]:
    """Every care plan's current document for one CPR (no patient: None, [])."""
    plans = data.read(db, conn, cpr=cpr, now=now)
    return (None, []) if plans is None else (plans, build_all(db, conn, plans))


def for_set_id(db: Database, conn: Any, set_id: uuid.UUID) -> Document | None:
    """The current document of the care plan with this setId (the DDS on-demand entry)."""
    plans = data.read(db, conn, set_id=set_id)
    if plans is None:
        return None
    plan = plans.plan_by_set_id(set_id)
    if plan is None:
        return None
    version = versions.current(db, conn, plans, plan)
    return Document(plans, plan, version, builder.build(plans, plan, version))
