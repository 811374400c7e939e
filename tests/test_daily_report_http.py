"""The operations page (issue 12): flp serve's ``GET /operations/daily-report`` on a real loopback
uvicorn, operator token required, for today or a chosen day."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date

import pytest

from orchestrator.http.app import create_app, openapi_text
from reports import job as report_job
from tests.support.http import http_settings, make_keys, serving
from tests.support.reports import busy_day
from tests.test_daily_report import keyed

DAY = date(2026, 8, 3)


def get(url: str, token: str | None = None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture
def served(db, tmp_path):
    keys = make_keys(tmp_path)
    with serving(create_app(http_settings(keys), db)) as url:
        yield url, keys


def test_an_operator_reads_the_report_of_a_chosen_day(db, served):
    url, keys = served
    busy_day(db, DAY)
    status, headers, body = get(
        f"{url}/operations/daily-report?date={DAY.isoformat()}", keys.token("operator")
    )
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = keyed(body)
    assert page.values["jobs/session_purge/runs"] == 3
    assert page.values["conversion/Patientvaerdier/converted"] == 4
    assert page.images[0].startswith("data:image/png;base64,")
    assert f"FLP operations {DAY.isoformat()}" in body and 'id="status">FAIL<' in body


def test_today_is_the_default_day(served):
    url, keys = served
    before = report_job.today()
    status, _, body = get(f"{url}/operations/daily-report", keys.token("operator"))
    days = {before, report_job.today()}  # the UTC day, either side of a midnight during the call
    assert status == 200
    assert any(f"FLP operations {d.isoformat()}" in body for d in days)


@pytest.mark.parametrize(("role", "expected"), [(None, 401), ("lps", 403), ("citizen", 403), ("dds", 403)])
def test_only_an_operator_token_opens_the_page(served, role, expected):
    url, keys = served
    token = keys.token(role, cpr="0101701235") if role == "citizen" else keys.token(role) if role else None
    status, headers, body = get(f"{url}/operations/daily-report", token)
    assert status == expected and headers["content-type"] == "application/problem+json"
    assert "FLP operations" not in body


def test_a_bad_date_is_a_problem_naming_it(served):
    url, keys = served
    status, _, body = get(f"{url}/operations/daily-report?date=2026-13-40", keys.token("operator"))
    assert status == 422 and "date" in json.loads(body)["detail"]


def test_the_page_is_not_part_of_the_json_api():
    assert "/operations/daily-report" not in openapi_text()
