"""RFC 9457 problem details: every error the service returns, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("orchestrator.http")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://flp.example/problems/"  # documented in docs/http.md


class FieldError(BaseModel):
    """One thing wrong with a request or an uploaded row."""

    document: int | None = Field(None, description="0-based index of the patient document in the upload")
    field: str = Field(description="the field, e.g. values[2].unit")
    row: int | None = Field(None, description="0-based index of the row within its list")
    reason: str = Field(description="a reason code (docs/http.md)")
    message: str = ""


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raised by a route: becomes a problem-details response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.kind, self.headers, self.errors = kind, headers or {}, errors


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind if kind else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    titles = {
        400: "malformed request (not JSON)",
        401: "no valid bearer token",
        403: "the token does not allow this",
        404: "no such resource for this caller",
        413: "request body too large",
        422: "the request does not match the schema",
        429: "too many requests: retry after Retry-After seconds",
        503: "the database is unavailable or busy: retry after Retry-After seconds",
    }
    return {
        code: {"model": Problem, "description": titles[code], "content": {MEDIA_TYPE: {}}} for code in codes
    }


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status, exc.title, exc.detail, kind=exc.kind, headers=exc.headers, errors=exc.errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        malformed = False
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            if err.get("type") == "json_invalid":
                malformed = True
            # Never echo the input back: it may hold a CPR number.
            errors.append(
                {
                    "field": ".".join(loc) or "body",
                    "reason": str(err.get("type")),
                    "message": err.get("msg", ""),
                }
            )
        if malformed:
            return problem_response(400, "Malformed JSON", "the body is not valid JSON", kind="malformed")
        return problem_response(
            422,
            "Invalid request",
            "the request does not match the schema",
            kind="invalid",
            errors=errors[:100],
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if type(exc).__name__ in ("OperationalError", "InterfaceError") and "FL001" not in str(
            getattr(exc, "sqlstate", "")
        ):
            log.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
            return problem_response(
                503,
                "Service unavailable",
                "the database is unavailable",
                kind="unavailable",
                headers={"Retry-After": "5"},
            )
        # The class and SQLSTATE only: a database message may quote the document (a CPR number).
        log.error(
            "unexpected error",
            extra={
                "path": request.url.path,
                "error": type(exc).__name__,
                "sqlstate": getattr(exc, "sqlstate", None),
            },
        )
        return problem_response(500, "Internal error", "the error is logged; nothing was half-written")
