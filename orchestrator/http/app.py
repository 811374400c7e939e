"""The ASGI app factory: ``create_app(http_settings, database)``."""

from __future__ import annotations

import contextlib
import logging

import anyio.to_thread
from fastapi import FastAPI

from orchestrator.db.connection import Database
from orchestrator.http import cda, problems, store, uploads
from orchestrator.http.auth import Verifier
from orchestrator.http.limits import Guard, Limits, ThrottleFlusher
from orchestrator.http.pool import Connections
from orchestrator.http.settings import HttpSettings
from orchestrator.http.validation import Validator
from reports import http as report_pages

log = logging.getLogger("orchestrator.http")

TITLE = "FLP service"
VERSION = "1.0.0"


def create_app(settings: HttpSettings | None, db: Database | None, limits: Limits | None = None) -> FastAPI:
    """The service: uploads now; the app's, DDS's and the operations endpoints as they land."""
    limits = limits or Limits()
    # Interactive uploads, bulk uploads being queued, and a few for the reads and the 429 counts.
    connections = (
        Connections(db, limits.concurrency + limits.bulk_concurrency + 4) if db is not None else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        flusher = None
        validator = None
        if limits.validate_processes > 0:
            # Large bodies' validation process (validation.py): the first large body starts it.
            validator = app.state.validator = Validator(limits.validate_processes)
        if connections is not None:
            # Every pooled connection before the first request (pool.py says why); off the event loop.
            if not await anyio.to_thread.run_sync(connections.open):
                log.warning("database connections not all open at start: the pool goes on opening them")

            def send(counts: dict[tuple[str, str], int]) -> None:
                with connections.connect() as conn:
                    store.throttled(db, counts, conn=conn)

            flusher = ThrottleFlusher(app.state.guard.throttled, send, limits.throttle_flush_seconds)
            flusher.start()
        try:
            yield
        finally:
            if flusher is not None:
                flusher.stop()  # the last counts, before the pool closes
            if connections is not None:
                connections.close()
            if validator is not None:
                app.state.validator = None
                validator.stop()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description="UploadData for the LPS (docs/http.md). Every request carries a bearer token (JWT).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = Verifier(settings) if settings is not None else None  # None: the OpenAPI dump
    app.state.db = db
    app.state.connections = connections
    app.state.guard = Guard(limits)
    app.state.validator = None  # the lifespan starts it
    problems.install(app)
    app.include_router(uploads.router)
    app.include_router(cda.router)  # HentCDA, values, DDS on-demand (docs/cda.md)
    app.include_router(report_pages.router)  # the operations page (reports/http.py; not in openapi.json)

    @app.get("/health", tags=["health"], summary="The service answers (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    default_openapi = app.openapi

    def openapi() -> dict:
        """FastAPI's document, with the upload body declared (the handler validates it off the event loop)."""
        if app.openapi_schema is None:
            app.openapi_schema = uploads.with_declared_body(default_openapi())
        return app.openapi_schema

    app.openapi = openapi
    return app


def openapi_text() -> str:
    """The OpenAPI document as committed in docs/openapi.json (``python -m orchestrator.http.app``)."""
    import json

    return json.dumps(create_app(None, None).openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(openapi_text())
