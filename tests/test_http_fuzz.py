"""schemathesis against the service's OpenAPI document (in-process ASGI, real PostgreSQL):
no 5xx, no response that breaks the schema, and nothing half-written by any payload."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from orchestrator.http.app import create_app
from orchestrator.http.limits import Limits
from tests.support.http import http_settings, make_keys
from tests.support.sql import scalar
from tests.support.uploads import load_relevant

pytestmark = pytest.mark.slow

TABLES = ["Patient", "Patientvaerdier", "Diagnose", "Medicin", "Ydelser", "Egenskaber"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("fuzz-keys"))


@pytest.fixture
def fuzz_app(db, keys):
    load_relevant(db)
    app = create_app(http_settings(keys), db, Limits(rate_per_second=10_000, burst=10_000, concurrency=8))
    yield app
    app.state.connections.close()  # in-process ASGI runs no lifespan: the pool is closed here


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def counts(db) -> dict[str, int]:
    return {t: scalar(db, f"SELECT count(*) FROM PLSP.{t}") for t in TABLES}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_keeps_its_contract_and_never_half_writes(case, db, keys):
    # The path's clinic is the token's, so uploads get past authorisation and reach the database.
    sor = (case.path_parameters or {}).get("sor", "123456")
    token = keys.token(sor=str(sor)) if isinstance(sor, str) and sor.isdigit() else keys.token()
    before = counts(db)
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response)
    assert response.status_code < 500
    after = counts(db)
    if response.status_code != 200 or case.method.upper() != "POST":
        assert after == before, "a refused request wrote rows"
    else:
        body = response.json()
        written_rows = sum(after[t] - before[t] for t in TABLES if t != "Patient")
        assert written_rows == body["inserted"]
