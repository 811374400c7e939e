"""HentCDA, Hent værdier i CDA and the DDS on-demand retrieve over HTTP (docs/cda.md).

The app's token (role citizen) names the citizen by its cpr claim: a citizen
reads only their own care plans, and the path never carries a CPR number. DDS's
token (role dds) names the requesting organisation (sor claim, else sub); it
retrieves an on-demand document by the care plan's setId (the entry's uniqueId
registered with ITI-61), built at request time. Every document answer carries
an ETag (the document version's id): If-None-Match with it gives 304 without
building the XML. Every request that reaches a patient lookup is written to
the access log with the patient as a keyed hash, never the CPR.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field

from orchestrator import config
from orchestrator.cda import access, builder, data, reader, versions
from orchestrator.cda.data import CarePlans, Plan
from orchestrator.http.auth import Principal, require
from orchestrator.http.problems import ProblemError, responses

router = APIRouter(prefix="/v1", tags=["cda"])

XML = "application/xml"
PlanCode = Annotated[str, Path(pattern=r"^[A-Z0-9]{1,10}$", description="care-plan type, e.g. ALAL22")]
ON_DEMAND_OBJECT_TYPE = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
SNOMED = "2.16.840.1.113883.6.96"
NOT_MODIFIED = {304: {"description": "not modified: If-None-Match names the current version"}}
NOT_FOUND = {
    404: {"description": "no such care plan for the caller", "content": {"application/problem+json": {}}}
}


class PlanEntry(BaseModel):
    plan: str = Field(description="care-plan type (SKS forløb label), e.g. ALAL22")
    title: str | None
    setId: str
    versionNumber: int
    documentId: str
    href: str


class ValueOut(BaseModel):
    code: str
    codeSystem: str
    displayName: str | None
    value: str = Field(description="decimal number as text")
    unit: str | None
    comparator: str | None = Field(description="<, <=, > or >= when the value is a bound")
    timeUtc: str


class ValuesOut(BaseModel):
    plan: str
    setId: str
    versionNumber: int
    values: list[ValueOut]
    problems: list[str] = Field(description="what the reader could not read (empty for our own documents)")


class OnDemandOut(BaseModel):
    metadata: dict[str, Any]
    document: str = Field(description="the DK-CPD document (XML text)")


def _key(request: Request) -> bytes:
    key = getattr(request.app.state, "cda_hash_key", None)
    if key is None:
        key = request.app.state.cda_hash_key = access.load_key(config.load())
    return key


def _etag(version: versions.DocumentVersion, extra: str = "") -> str:
    return f'"{version.document_id}{extra}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class _Access:
    """Times one request and writes its access-log row at the end."""

    def __init__(self, request: Request, kind: str, requester: str, purpose: str) -> None:
        self.db = request.app.state.db
        self.key = _key(request)
        self.kind, self.requester, self.purpose = kind, requester, purpose
        self.started = time.perf_counter()
        self.patient: str | None = None
        self.plan: str | None = None
        self.version: int | None = None

    def see(self, plans: CarePlans | None, plan: Plan | None = None, version: int | None = None) -> None:
        if plans is not None:
            self.patient = access.patient_hash(self.key, plans.patient.cpr)
        if plan is not None:
            self.plan = plan.code
        self.version = version

    def write(self, conn, status: int) -> None:
        access.log(
            self.db,
            conn,
            requester_kind=self.kind,
            requester=self.requester,
            purpose=self.purpose,
            http_status=status,
            latency_ms=round((time.perf_counter() - self.started) * 1000),
            patient=self.patient,
            plan=self.plan,
            version=self.version,
        )


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", what, kind="not-found")


def _citizen_plan(request: Request, principal: Principal, plan_code: str, purpose: str):
    log = _Access(request, "citizen", "citizen", purpose)
    db = request.app.state.db
    conn_cm = db.connect()
    conn = conn_cm.__enter__()
    try:
        plans = data.read(db, conn, cpr=principal.cpr)
        log.see(plans)
        plan = None if plans is None else plans.plan(plan_code)
        if plan is None:
            log.write(conn, 404)
            raise _not_found("the citizen has no care plan of this type")
        version = versions.current(db, conn, plans, plan)
        log.see(plans, plan, version.number)
        return log, conn_cm, conn, plans, plan, version
    except BaseException:
        conn_cm.__exit__(None, None, None)
        raise


@router.get(
    "/citizen/care-plans",
    response_model=list[PlanEntry],
    summary="The citizen's care plans and their current document versions (the token's cpr)",
    responses=responses(401, 403),
)
def citizen_plans(request: Request, principal: Annotated[Principal, Depends(require("citizen"))]):
    log = _Access(request, "citizen", "citizen", "citizen-list")
    db = request.app.state.db
    with db.connect() as conn:
        plans = data.read(db, conn, cpr=principal.cpr)
        log.see(plans)
        out = []
        for plan in [] if plans is None else plans.plans:
            v = versions.current(db, conn, plans, plan)
            out.append(
                PlanEntry(
                    plan=plan.code,
                    title=plan.title,
                    setId=str(plan.set_id),
                    versionNumber=v.number,
                    documentId=str(v.document_id),
                    href=f"/v1/citizen/care-plans/{plan.code}/cda",
                )
            )
        log.write(conn, 200)
    return out


@router.get(
    "/citizen/care-plans/{plan}/cda",
    summary="HentCDA: the current DK-CPD document of one of the citizen's care plans",
    response_class=Response,
    responses={
        200: {"content": {XML: {}}, "description": "the DK-CPD document; ETag is its version"},
        **NOT_MODIFIED,
        **NOT_FOUND,
        **responses(401, 403, 422),
    },
)
def citizen_cda(
    request: Request,
    plan: PlanCode,
    principal: Annotated[Principal, Depends(require("citizen"))],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    log, conn_cm, conn, plans, p, version = _citizen_plan(request, principal, plan, "citizen-view")
    try:
        etag = _etag(version)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _matches(if_none_match, etag):
            log.write(conn, 304)
            return Response(status_code=304, headers=headers)
        body = builder.to_bytes(builder.build(plans, p, version))
        log.write(conn, 200)
        return Response(body, media_type=XML, headers=headers)
    finally:
        conn_cm.__exit__(None, None, None)


@router.get(
    "/citizen/care-plans/{plan}/values",
    response_model=ValuesOut,
    summary="Hent værdier i CDA: selected values of a care plan of the citizen, from its current document",
    responses={**NOT_MODIFIED, **NOT_FOUND, **responses(401, 403, 422)},
)
def citizen_values(
    request: Request,
    plan: PlanCode,
    principal: Annotated[Principal, Depends(require("citizen"))],
    code: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}$")]],
        Query(min_length=1, max_length=50, description="analysis codes, e.g. code=NPU27300&code=DNK05472"),
    ],
    if_none_match: Annotated[str | None, Header()] = None,
):
    log, conn_cm, conn, plans, p, version = _citizen_plan(request, principal, plan, "citizen-values")
    try:
        codes = sorted(set(code))
        etag = _etag(version, "-" + hashlib.sha256(",".join(codes).encode()).hexdigest()[:12])
        if _matches(if_none_match, etag):
            log.write(conn, 304)
            return Response(status_code=304, headers={"ETag": etag})
        result = reader.read(builder.build(plans, p, version))
        out = ValuesOut(
            plan=p.code,
            setId=str(p.set_id),
            versionNumber=version.number,
            values=[
                ValueOut(
                    code=v.code,
                    codeSystem=v.code_system,
                    displayName=v.display_name,
                    value=builder.decimal_text(v.value),
                    unit=v.unit,
                    comparator=v.comparator,
                    timeUtc=v.time_utc.isoformat(timespec="milliseconds") + "Z",
                )
                for v in result.values_for(set(codes))
            ],
            problems=result.problems,
        )
        log.write(conn, 200)
        return Response(out.model_dump_json(), media_type="application/json", headers={"ETag": etag})
    finally:
        conn_cm.__exit__(None, None, None)


def on_demand_metadata(plans: CarePlans, plan: Plan, version: versions.DocumentVersion, body: bytes) -> dict:
    """The metadata of the on-demand document entry (domain.md), for the document served now."""
    times = [v.measured_utc for v in plan.values]
    clinic = plans.clinic

    def coded(code: str, scheme: str, name: str) -> dict[str, str]:
        return {"code": code, "codingScheme": scheme, "displayName": name}

    return {
        "objectType": ON_DEMAND_OBJECT_TYPE,
        "entryUniqueId": str(plan.set_id),
        "newDocumentUniqueId": str(version.document_id),
        "versionNumber": version.number,
        "patientId": f"{plans.patient.cpr}^^^&{builder.CPR_ROOT}&ISO",
        "classCode": coded("001", "1.2.208.184.100.9", "Klinisk rapport"),
        "typeCode": coded(builder.CARE_PLAN_CODE, builder.LOINC, "Care plan"),
        "formatCode": coded("urn:ad:dk:medcom:cpd-v2.0:full", "1.2.208.184.100.10", "DK CPD schema"),
        "healthcareFacilityTypeCode": coded("394761003", SNOMED, "almen lægepraksis"),
        "practiceSettingCode": coded("408443003", SNOMED, "almen medicin"),
        "languageCode": "da-DK",
        "confidentialityCode": coded("N", "2.16.840.1.113883.5.25", "normal"),
        "authorInstitution": f"{clinic.name}^^^^^&{builder.SOR_ROOT}&ISO^^^^{clinic.sor}",
        "title": f"Forløbsplan: {plan.title or plan.code}",
        "mimeType": "text/xml",
        "creationTime": version.created_utc.strftime("%Y%m%d%H%M%S"),
        "serviceStartTime": min(times).strftime("%Y%m%d%H%M%S") if times else None,
        "serviceStopTime": max(times).strftime("%Y%m%d%H%M%S") if times else None,
        "hash": hashlib.sha1(body).hexdigest(),  # XDS's document hash is SHA-1 by definition
        "size": len(body),
    }


@router.get(
    "/dds/on-demand/{set_id}",
    response_model=OnDemandOut,
    summary="DDS retrieve (ITI-43) of an on-demand care-plan document, built now, with its entry's metadata",
    responses={**NOT_MODIFIED, **NOT_FOUND, **responses(401, 403, 422)},
)
def dds_retrieve(
    request: Request,
    set_id: Annotated[uuid.UUID, Path(description="the care plan's setId: the on-demand entry's uniqueId")],
    principal: Annotated[Principal, Depends(require("dds"))],
    x_purpose_of_use: Annotated[
        str | None, Header(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="why DDS asks (logged)")
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
):
    log = _Access(request, "dds", principal.sor or principal.subject, x_purpose_of_use or "dds-retrieve")
    db = request.app.state.db
    with db.connect() as conn:
        plans = data.read(db, conn, set_id=set_id)
        log.see(plans)
        plan = None if plans is None else plans.plan_by_set_id(set_id)
        if plan is None:
            log.write(conn, 404)
            raise _not_found("no on-demand care-plan document has this id")
        version = versions.current(db, conn, plans, plan)
        log.see(plans, plan, version.number)
        etag = _etag(version)
        if _matches(if_none_match, etag):
            log.write(conn, 304)
            return Response(status_code=304, headers={"ETag": etag})
        body = builder.to_bytes(builder.build(plans, plan, version))
        out = OnDemandOut(
            metadata=on_demand_metadata(plans, plan, version, body), document=body.decode("utf-8")
        )
        log.write(conn, 200)
        return Response(out.model_dump_json(), media_type="application/json", headers={"ETag": etag})
