"""The service's bearer tokens on a real uvicorn server: 401/403 with problem details, never a trace."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from orchestrator.http.app import create_app, openapi_text
from tests.support.http import SOR, http_settings, make_keys, serving
from tests.support.paths import REPO_ROOT

DOC = {"cpr": "0101701235", "values": [{"code": "NPU27300", "value": "53", "time": "2024-01-02"}]}


def request(
    url: str, token: str | None = None, body: object = DOC, method: str = "POST", raw: bytes | None = None
):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def base_url(keys):
    # No database: every case here is refused before the service would reach it.
    with serving(create_app(http_settings(keys), None)) as url:
        yield url


def uploads(base_url: str, sor: str = SOR) -> str:
    return f"{base_url}/v1/clinics/{sor}/uploads"


def assert_problem(status, headers, body, expected: int) -> None:
    assert status == expected
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == expected and body["title"]
    assert "Traceback" not in json.dumps(body)


def test_no_token_is_401_with_a_bearer_challenge(base_url):
    status, headers, body = request(uploads(base_url))
    assert_problem(status, headers, body, 401)
    assert headers["www-authenticate"].startswith("Bearer")
    assert "bearer token is required" in body["detail"]


def test_an_expired_token_is_401(base_url, keys):
    status, headers, body = request(uploads(base_url), keys.token(expires_in=-60))  # past the 5 s leeway
    assert_problem(status, headers, body, 401)
    assert "expired" in body["detail"]


def test_a_token_just_expired_within_the_leeway_is_accepted_as_far_as_auth_goes(base_url, keys):
    # Auth passes; the 403 then proves the token was read (another clinic's path).
    status, headers, body = request(uploads(base_url, "999"), keys.token(expires_in=-2))
    assert_problem(status, headers, body, 403)


def test_a_token_for_another_audience_is_401(base_url, keys):
    status, headers, body = request(uploads(base_url), keys.token(audience="another-service"))
    assert_problem(status, headers, body, 401)
    assert "aud" in body["detail"]


def test_a_token_from_another_issuer_is_401(base_url, keys):
    status, headers, body = request(uploads(base_url), keys.token(issuer="https://evil.example"))
    assert_problem(status, headers, body, 401)


def test_a_token_signed_by_another_key_is_401(base_url, tmp_path):
    other = make_keys(tmp_path)
    status, headers, body = request(uploads(base_url), other.token())
    assert_problem(status, headers, body, 401)


def test_an_unsigned_token_is_401(base_url):
    import jwt

    token = jwt.encode(
        {"iss": "x", "aud": "flp-service", "exp": 9999999999, "role": "lps"}, None, algorithm="none"
    )
    status, headers, body = request(uploads(base_url), token)
    assert_problem(status, headers, body, 401)


def test_an_lps_uploading_for_another_clinic_is_403(base_url, keys):
    status, headers, body = request(uploads(base_url, "777777"), keys.token(sor=SOR))
    assert_problem(status, headers, body, 403)
    assert body["type"].endswith("other-clinic")


@pytest.mark.parametrize("role", ["citizen", "dds", "operator"])
def test_other_roles_may_not_upload(base_url, keys, role):
    status, headers, body = request(uploads(base_url), keys.token(role, cpr="0101701235"))
    assert_problem(status, headers, body, 403)
    assert "0101701235" not in json.dumps(body)


def test_malformed_json_is_400_problem(base_url, keys):
    status, headers, body = request(uploads(base_url), keys.token(), raw=b'{"cpr": ')
    assert_problem(status, headers, body, 400)


def test_a_schema_violation_is_422_naming_the_field_without_echoing_input(base_url, keys):
    status, headers, body = request(uploads(base_url), keys.token(), body={"patients": [{"cpr": 101701235}]})
    assert_problem(status, headers, body, 422)
    assert any("cpr" in e["field"] for e in body["errors"])
    assert "101701235" not in json.dumps(body)


def test_health_needs_no_token(base_url):
    status, _, body = request(f"{base_url}/health", method="GET", body=None)
    assert status == 200 and body == {"status": "ok"}


def test_the_committed_openapi_document_is_what_the_app_generates():
    committed = (REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), "run: python -m orchestrator.http.app > docs/openapi.json"
