"""UploadData over HTTP: an LPS uploads patient documents for its own clinic (docs/http.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator.http import store
from orchestrator.http.auth import Principal, require
from orchestrator.http.problems import FieldError, responses

router = APIRouter(prefix="/v1", tags=["uploads"])

NO_NUL = r"^[^\x00]*$"  # the database's text holds no NUL character


def _storable(value: str) -> str:
    """Text the database can store: no NUL, no lone UTF-16 surrogate."""
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("the text holds a NUL character or a lone surrogate")
    return value


def text(max_length: int, min_length: int = 0, **extra):
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length, pattern=NO_NUL, **extra),
        AfterValidator(_storable),
    ]


Code = text(20, 1)
Day = text(10, description="YYYY-MM-DD", examples=["2024-05-01"])


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Value(Strict):
    code: Code = Field(description="analysis code (NPU, DNK, MCS), e.g. NPU27300")
    value: text(100, description="the raw text as entered: '7,5', '<5', '53 mmol/mol'") | None = None
    unit: text(20) | None = None
    time: text(40, description="'2018-08-24', '24-08-2018' or '20180824121545+0200'")


class Diagnosis(Strict):
    codeSystem: text(10, description="ICPC2 or SKS")
    code: text(10, 1)
    diagnosedDate: Day
    endedDate: Day | None = None


class Medication(Strict):
    atcCode: text(10, 1)
    drugName: text(200) | None = None
    startDate: Day
    endDate: Day | None = None


class Service(Strict):
    serviceCode: text(4, 1)
    serviceDate: Day


class Property(Strict):
    code: Code
    value: text(100) | None = None
    validFrom: Day
    validTo: Day | None = None


class PatientDocument(Strict):
    cpr: text(10, description="ten digits, no hyphen (personal data: never logged)")
    givenName: text(100) | None = None
    familyName: text(100) | None = None
    values: list[Value] = Field(default_factory=list, max_length=5000)
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=1000)
    medication: list[Medication] = Field(default_factory=list, max_length=1000)
    services: list[Service] = Field(default_factory=list, max_length=5000)
    properties: list[Property] = Field(default_factory=list, max_length=100)


class UploadBatch(Strict):
    patients: list[PatientDocument] = Field(min_length=1, max_length=1000)


class UploadResult(BaseModel):
    uploadId: int | None = None
    result: str = Field(description="accepted, partly_accepted or rejected")
    documents: int
    rejectedDocuments: int
    inserted: int
    updated: int
    unchanged: int = Field(description="rows already held with the same content: not written")
    rejected: int = Field(description="rows of rejected documents")
    errors: list[FieldError]


@router.post(
    "/clinics/{sor}/uploads",
    response_model=UploadResult,
    summary="Upload patient documents (one, or a batch) for the caller's clinic",
    responses=responses(400, 401, 403, 413, 422, 429, 503),
)
def post_upload(
    request: Request,
    sor: Annotated[
        str, Path(pattern=r"^[0-9]{1,20}$", description="the clinic's SOR code (the token's sor)")
    ],
    body: Annotated[UploadBatch | PatientDocument, Body()],
    principal: Annotated[Principal, Depends(require("lps"))],
) -> UploadResult:
    principal.ensure_clinic(sor)
    batch = body if isinstance(body, UploadBatch) else UploadBatch(patients=[body])
    rows = sum(
        len(p.values) + len(p.diagnoses) + len(p.medication) + len(p.services) + len(p.properties)
        for p in batch.patients
    )
    guard = request.app.state.guard
    bulk = guard.admit(sor, rows)  # 429 with Retry-After beyond the clinic's rate or the concurrency
    try:
        document = batch.model_dump_json()  # pydantic-core's serialiser: the same text for the same upload
        out = store.upload(request.app.state.db, sor, principal.ydernummer or "", document)
    finally:
        guard.release(bulk)
    return UploadResult(**out)


class SyncCheckpoint(BaseModel):
    syncToken: str | None = Field(description="the clinic's last applied upload; null when none")
    lastUploadUtc: datetime | None = None
    uploads: int
    rowsStored: int = Field(description="rows inserted or updated by the clinic's uploads")


@router.get(
    "/clinics/{sor}/sync",
    response_model=SyncCheckpoint,
    summary="The clinic's sync checkpoint: what the service already holds from it",
    responses=responses(401, 403, 422, 503),
)
def get_sync(
    request: Request,
    sor: Annotated[
        str, Path(pattern=r"^[0-9]{1,20}$", description="the clinic's SOR code (the token's sor)")
    ],
    principal: Annotated[Principal, Depends(require("lps"))],
) -> SyncCheckpoint:
    principal.ensure_clinic(sor)
    return SyncCheckpoint(**store.checkpoint(request.app.state.db, sor))
