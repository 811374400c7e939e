"""UploadData over HTTP: an LPS uploads patient documents for its own clinic (docs/http.md)."""

from __future__ import annotations

import email.message
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrator.http import store, validation
from orchestrator.http.auth import Principal, require
from orchestrator.http.problems import FieldError, ProblemError, responses

router = APIRouter(prefix="/v1", tags=["uploads"])

NO_NUL = r"^[^\x00]*$"  # the database's text holds no NUL character


def _storable(value: str) -> str:
    """Text the database can store: no NUL, no lone UTF-16 surrogate (C-speed checks: it runs per string)."""
    if "\x00" in value or not (value.isascii() or _encodes(value)):
        raise ValueError("the text holds a NUL character or a lone surrogate")
    return value


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


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


class UploadJob(BaseModel):
    """A bulk upload accepted as a job (202), and its state as it is drained."""

    jobId: int
    state: str = Field(description="queued, running (the drain has begun), done or failed")
    statusUrl: str = Field(description="where to read this state (GET, the same token)")
    receivedUtc: datetime | None = None
    finishedUtc: datetime | None = None
    documentsTotal: int = Field(description="patient documents in the upload")
    documents: int = Field(description="documents done so far (applied or rejected)")
    rejectedDocuments: int
    inserted: int
    updated: int
    unchanged: int = Field(description="rows already held with the same content: not written")
    rejected: int = Field(description="rows of rejected documents")
    errors: list[FieldError] = Field(description="every error so far, documents numbered as in the upload")
    reason: str | None = Field(
        default=None,
        description="failed: the document (numbered as in the upload) and the error that failed it; "
        "its later documents were not applied",
    )


SorPath = Annotated[
    str, Path(pattern=r"^[0-9]{1,20}$", description="the clinic's SOR code (the token's sor)")
]


def _job(sor: str, out: dict) -> UploadJob:
    job_id = out.pop("uploadId")
    return UploadJob(jobId=job_id, statusUrl=f"/v1/clinics/{sor}/uploads/jobs/{job_id}", **out)


POST_UPLOAD: dict[str, Any] = {
    "path": "/clinics/{sor}/uploads",
    "response_model": UploadResult,
    "summary": "Upload patient documents (one, or a batch) for the caller's clinic",
    "responses": {
        202: {
            "model": UploadJob,
            "description": "a bulk upload (over the size threshold, or fullResync) accepted as a job: "
            "its state is at Location",
            "headers": {"Location": {"description": "the job's status URL", "schema": {"type": "string"}}},
        },
        **responses(400, 401, 403, 413, 422, 429, 503),
    },
}
FullResync = Annotated[
    bool, Query(description="the LPS sends everything it holds: always queued as a job (202)")
]
BODY = TypeAdapter(UploadBatch | PatientDocument)  # as FastAPI would validate the declared body


RATE_HEADERS = {
    "RateLimit-Policy": {
        "description": "the clinic's token bucket (IETF draft RateLimit fields): '\"clinic\";q=20;w=4' is a "
        "burst of 20 uploads, full again 4 seconds after it was emptied (docs/http.md)",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "'\"clinic\";r=13;t=2': 13 uploads left now, the bucket full again in 2 seconds; "
        "a client that paces waits w/q seconds before its next upload when r is 0",
        "schema": {"type": "string"},
    },
}
POST_UPLOAD["responses"][202]["headers"].update(RATE_HEADERS)
POST_UPLOAD["responses"][200] = {"description": "Successful Response", "headers": RATE_HEADERS}
POST_UPLOAD["responses"][429] = {
    **POST_UPLOAD["responses"][429],
    "headers": {
        "Retry-After": {"description": "whole seconds to wait", "schema": {"type": "integer"}},
        **RATE_HEADERS,
    },
}


@router.post(**POST_UPLOAD)
async def post_upload(
    request: Request,
    response: Response,
    sor: SorPath,
    principal: Annotated[Principal, Depends(require("lps"))],
    fullResync: FullResync = False,
) -> UploadResult | JSONResponse:
    # The body is read here and validated off the event loop, with the upload itself: a 4,000-row
    # bulk body takes tens of milliseconds to validate, and in the event loop (where FastAPI
    # validates a declared body) every small upload arriving meanwhile would wait for it. A large
    # body goes to the validation process (validation.py: pydantic-core holds the interpreter while
    # it validates, a worker thread would not let the event loop in), a small one to the worker
    # thread that then does the upload. The contract (docs/openapi.json) is the declared body's:
    # with_declared_body puts post_upload_contract's in. (No docstring: it would be the
    # operation's description.)
    raw = await bounded_body(request, request.app.state.guard.limits.max_body_bytes)
    content_type = request.headers.get("content-type")
    checked = None
    validator = getattr(request.app.state, "validator", None)
    if validator is not None and len(raw) >= validation.PROCESS_BYTES:
        checked = await validator.check(raw, content_type)  # None: the process is away, a thread does it
    work = partial(
        _post_upload, request.app, sor, principal, fullResync, raw, content_type, checked, response.headers
    )
    return await anyio.to_thread.run_sync(work)


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request's body, or 413 as soon as it is known to exceed ``limit`` bytes (a declared
    Content-Length before anything is read; else while it streams in)."""
    too_large = ProblemError(
        413,
        "request body too large",
        f"an upload body may hold at most {limit:,} bytes: send the patients in smaller batches",
        kind="too-large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _post_upload(
    app: Any,
    sor: str,
    principal: Principal,
    full_resync: bool,
    raw: bytes,
    content_type: str | None,
    checked: tuple[str, int] | None,
    out_headers: Any,
) -> UploadResult | JSONResponse:
    document, rows = checked if checked is not None else checked_body(raw, content_type)
    principal.ensure_clinic(sor)
    guard = app.state.guard
    bulk = guard.is_bulk(rows, full_resync)
    # 429 with Retry-After beyond the clinic's rate or the (bulk) concurrency; else the RateLimit fields.
    fields = guard.admit(sor, bulk)
    try:
        with app.state.connections.connect() as conn:
            if not bulk:
                out = store.upload(app.state.db, sor, principal.ydernummer or "", document, conn=conn)
                out_headers.update(fields)
                return UploadResult(**out)
            queued = store.enqueue(
                app.state.db, sor, principal.ydernummer or "", document, full_resync=full_resync, conn=conn
            )
            out = store.job_status(app.state.db, sor, queued["uploadId"], conn=conn)
    finally:
        guard.release(bulk)
    job = _job(sor, {"uploadId": queued["uploadId"], **out})
    return JSONResponse(jsonable_encoder(job), status_code=202, headers={"Location": job.statusUrl, **fields})


def checked_body(raw: bytes, content_type: str | None) -> tuple[str, int]:
    """The body validated (``_validated``) as the text the database gets, and its rows."""
    batch = _validated(raw, content_type)
    rows = sum(
        len(p.values) + len(p.diagnoses) + len(p.medication) + len(p.services) + len(p.properties)
        for p in batch.patients
    )
    return batch.model_dump_json(), rows  # pydantic-core's serialiser: the same text for the same upload


def _validated(raw: bytes, content_type: str | None) -> UploadBatch:
    """The body as FastAPI validates a declared JSON body (the same errors), straight from the bytes."""
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    message = email.message.Message()
    message["content-type"] = content_type or ""
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        raise RequestValidationError(
            [
                {
                    "type": "model_type",
                    "loc": ("body",),
                    "msg": "the body must be JSON (application/json)",
                    "input": None,
                }
            ]
        )
    try:
        body = BODY.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    return body if isinstance(body, UploadBatch) else UploadBatch(patients=[body])


contract = APIRouter(prefix="/v1", tags=["uploads"])


@contract.post(**POST_UPLOAD, name="post_upload")
def post_upload_contract(
    sor: SorPath,
    body: Annotated[UploadBatch | PatientDocument, Body()],
    principal: Annotated[Principal, Depends(require("lps"))],
    fullResync: FullResync = False,
) -> UploadResult | JSONResponse:
    # post_upload as the OpenAPI document shows it, its body declared; never served.
    raise NotImplementedError


def with_declared_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The app's OpenAPI document with post_upload's body as FastAPI documents a declared one."""
    declared = get_openapi(title="contract", version="0", routes=contract.routes)
    path = "/v1" + POST_UPLOAD["path"]
    schema["paths"][path]["post"]["requestBody"] = declared["paths"][path]["post"]["requestBody"]
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, body in declared["components"]["schemas"].items():
        components.setdefault(name, body)
    return schema


@router.get(
    "/clinics/{sor}/uploads/jobs/{jobId}",
    response_model=UploadJob,
    summary="The state of a bulk upload job of the caller's clinic",
    responses=responses(401, 403, 404, 422, 503),
)
def get_upload_job(
    request: Request,
    sor: SorPath,
    jobId: Annotated[int, Path(ge=1, le=2**63 - 1, description="the job's id (from the 202's Location)")],
    principal: Annotated[Principal, Depends(require("lps"))],
) -> UploadJob:
    principal.ensure_clinic(sor)
    app = request.app
    with app.state.connections.connect() as conn:
        out = store.job_status(app.state.db, sor, jobId, conn=conn)
    if out is None:  # none, or another clinic's: the same answer
        raise ProblemError(404, "Not found", "this clinic has no upload job with that id", kind="not-found")
    return _job(sor, {"uploadId": jobId, **out})


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
    sor: SorPath,
    principal: Annotated[Principal, Depends(require("lps"))],
) -> SyncCheckpoint:
    principal.ensure_clinic(sor)
    with request.app.state.connections.connect() as conn:
        return SyncCheckpoint(**store.checkpoint(request.app.state.db, sor, conn=conn))
