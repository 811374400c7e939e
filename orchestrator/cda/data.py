"""The care-plan data of one citizen: one call of ``Api.care_plan_read`` (JSON) as dataclasses."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orchestrator.db.connection import Database


@dataclass(frozen=True)
class Patient:
    patient_id: int
    cpr: str  # personal data: never logged
    given_name: str
    family_name: str
    birth_date: dt.date
    sex: str  # M or F


@dataclass(frozen=True)
class Clinic:
    sor: str
    name: str
    ydernummer: str


@dataclass(frozen=True)
class Diagnosis:
    code: str
    code_system: str  # ICPC2 or SKS
    description: str | None
    diagnosed: dt.date
    ended: dt.date | None


@dataclass(frozen=True)
class Medication:
    atc_code: str
    drug_name: str | None
    start: dt.date
    end: dt.date | None


@dataclass(frozen=True)
class Value:
    value_id: int
    code: str
    description: str | None
    value: Decimal
    unit: str | None
    comparator: str | None
    measured_utc: dt.datetime  # naive UTC


@dataclass(frozen=True)
class Version:
    number: int
    document_id: uuid.UUID
    content_hash: str
    created_utc: dt.datetime
    previous_document_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Plan:
    forloebsplan_id: int
    code: str  # ALAL22, ALAL21, ALAL02
    title: str | None
    set_id: uuid.UUID
    status: int  # 1 active, 2 closed
    created_utc: dt.datetime
    plan_version_number: int
    version: Version | None  # newest registered document version
    diagnoses: tuple[Diagnosis, ...] = ()
    medication: tuple[Medication, ...] = ()
    values: tuple[Value, ...] = ()


@dataclass(frozen=True)
class CarePlans:
    now_utc: dt.datetime
    patient: Patient
    clinic: Clinic
    plans: tuple[Plan, ...] = field(default_factory=tuple)

    def plan(self, code: str) -> Plan | None:
        return next((p for p in self.plans if p.code == code), None)

    def plan_by_set_id(self, set_id: uuid.UUID) -> Plan | None:
        return next((p for p in self.plans if p.set_id == set_id), None)


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text[:10])


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text.lower())


def parse(document: str) -> CarePlans:
    """The procedure's JSON (either engine's) as CarePlans."""
    d: dict[str, Any] = json.loads(document, parse_float=Decimal)
    p, k = d["patient"], d["clinic"]
    plans = []
    for f in d.get("plans") or []:
        v = f.get("version")
        plans.append(
            Plan(
                forloebsplan_id=int(f["forloebsplanId"]),
                code=f["forloebCode"],
                title=f.get("title"),
                set_id=_uuid(f["setId"]),
                status=int(f["status"]),
                created_utc=_time(f["createdUtc"]),
                plan_version_number=int(f["planVersionNumber"]),
                version=None
                if not v
                else Version(
                    number=int(v["versionNumber"]),
                    document_id=_uuid(v["documentId"]),
                    content_hash=v["contentHash"].strip(),
                    created_utc=_time(v["createdUtc"]),
                    previous_document_id=None
                    if v.get("previousDocumentId") is None
                    else _uuid(v["previousDocumentId"]),
                ),
                diagnoses=tuple(
                    Diagnosis(
                        x["code"].strip(),
                        x["codeSystem"].strip(),
                        x.get("description"),
                        _date(x["diagnosedDate"]),
                        _date(x.get("endedDate")),
                    )
                    for x in f.get("diagnoses") or []
                ),
                medication=tuple(
                    Medication(
                        x["atcCode"].strip(),
                        x.get("drugName"),
                        _date(x["startDate"]),
                        _date(x.get("endDate")),
                    )
                    for x in f.get("medication") or []
                ),
                values=tuple(
                    Value(
                        value_id=int(x["valueId"]),
                        code=x["code"],
                        description=x.get("description"),
                        value=Decimal(str(x["value"])),
                        unit=x.get("unit"),
                        comparator=x.get("comparator"),
                        measured_utc=_time(x["measuredUtc"]),
                    )
                    for x in f.get("values") or []
                ),
            )
        )
    return CarePlans(
        now_utc=_time(d["nowUtc"]),
        patient=Patient(
            int(p["patientId"]), p["cpr"], p["givenName"], p["familyName"], _date(p["birthDate"]), p["sex"]
        ),
        clinic=Clinic(k["sor"], k["name"], k["ydernummer"]),
        plans=tuple(plans),
    )


def read(
    db: Database,
    conn: Any,
    *,
    cpr: str | None = None,
    set_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> CarePlans | None:
    """One call of Api.care_plan_read, by CPR or by a plan's setId; None when no such patient."""
    params: dict[str, Any] = {"Cpr": cpr, "SetId": None if set_id is None else str(set_id)}
    if now is not None:
        params["NowUtc"] = now
    out = db.call(conn, "Api.care_plan_read", params, ("Document",))
    return None if out["Document"] is None else parse(out["Document"])
