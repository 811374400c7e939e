"""The operations page: the daily report as HTML at ``GET /operations/daily-report[?date=D]``
(role ``operator``), the same page ``flp report daily --out`` writes (chart inline as data: URI).

A page for people, not part of the JSON API: it is left out of docs/openapi.json.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from orchestrator.http.auth import Principal, require
from orchestrator.http.problems import ProblemError

router = APIRouter(prefix="/operations", include_in_schema=False)


@router.get("/daily-report", response_class=HTMLResponse)
def daily_report(
    request: Request,
    principal: Principal = Depends(require("operator")),  # noqa: B008 (FastAPI's idiom)
    day: str | None = Query(None, alias="date", max_length=10, description="YYYY-MM-DD, UTC; default today"),
) -> HTMLResponse:
    from orchestrator import config
    from reports import job

    try:
        chosen = date.fromisoformat(day) if day else job.today()
    except ValueError:
        raise ProblemError(
            422, "Unprocessable Content", "date: give a day as YYYY-MM-DD", kind="bad-date"
        ) from None
    db = request.app.state.db
    with db.connect() as conn:
        report = job.make_report(db, conn, chosen)
    rendered = job.page(report, config.host_name())
    return HTMLResponse(rendered.html, headers={"Cache-Control": "no-store"})
