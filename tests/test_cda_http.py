"""HentCDA, Hent værdier i CDA and DDS on-demand over HTTP (issue 13 step 5), on a real uvicorn
on loopback and a seeded PostgreSQL: ETag / If-None-Match, who may read what, the access log."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request

import pytest
from lxml import etree

from orchestrator.cda import access, schema
from orchestrator.http.app import create_app
from tests.support.cda import cprs, seeded_database
from tests.support.http import http_settings, make_keys, serving
from tests.support.sql import execute, fetch_all

KEY = b"k" * 32


@pytest.fixture(scope="module")
def seeded(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, 30, 9, dt.datetime.now(dt.UTC).date())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def base_url(seeded, keys):
    app = create_app(http_settings(keys), seeded)
    app.state.cda_hash_key = KEY
    with serving(app) as url:
        yield url


def get(url: str, token: str | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def citizen(keys, cpr: str) -> str:
    return keys.token("citizen", cpr=cpr)


def patients_with_values(db) -> list[str]:
    rows = fetch_all(
        db,
        "SELECT DISTINCT p.Cpr FROM PLSP.Patient AS p "
        "JOIN PLSP.Patientvaerdier AS v ON v.PatientId = p.PatientId "
        "JOIN PLSP.Forloebsplan AS f ON f.PatientId = p.PatientId "
        "WHERE v.ConversionStatus = 1 ORDER BY p.Cpr",
    )
    return [r[0] for r in rows]


def plans_of(base_url, keys, cpr):
    status, _, body = get(f"{base_url}/v1/citizen/care-plans", citizen(keys, cpr))
    assert status == 200
    return json.loads(body)


def test_a_citizen_gets_their_current_cda_with_an_etag_and_304_when_unchanged(base_url, keys, seeded):
    cpr = patients_with_values(seeded)[0]
    plan = plans_of(base_url, keys, cpr)[0]
    url = f"{base_url}{plan['href']}"
    status, headers, body = get(url, citizen(keys, cpr))
    assert status == 200 and headers["content-type"] == "application/xml"
    assert schema.problems(body) == []
    doc = etree.fromstring(body)
    ns = {"h": "urn:hl7-org:v3"}
    assert doc.find("h:recordTarget/h:patientRole/h:id", ns).get("extension") == cpr
    assert headers["etag"] == f'"{plan["documentId"]}"'
    status, headers2, body2 = get(url, citizen(keys, cpr), {"If-None-Match": headers["etag"]})
    assert status == 304 and body2 == b"" and headers2["etag"] == headers["etag"]
    # A changed value: a new version, a new ETag, the old one no longer matches.
    execute(
        seeded,
        "UPDATE PLSP.Patientvaerdier SET ValueNumeric = ValueNumeric + 1 WHERE PatientId = "
        "(SELECT PatientId FROM PLSP.Patient WHERE Cpr = ?) AND ConversionStatus = 1",
        (cpr,),
    )
    status, headers3, body3 = get(url, citizen(keys, cpr), {"If-None-Match": headers["etag"]})
    assert status == 200 and headers3["etag"] != headers["etag"]
    new = etree.fromstring(body3)
    assert (
        int(new.find("h:versionNumber", ns).get("value"))
        == int(doc.find("h:versionNumber", ns).get("value")) + 1
    )
    assert new.find("h:relatedDocument", ns).get("typeCode") == "RPLC"


def test_a_citizen_reads_only_their_own_plans(base_url, keys, seeded):
    a, b = cprs(seeded)[:2]
    plans_a, plans_b = plans_of(base_url, keys, a), plans_of(base_url, keys, b)
    assert {p["setId"] for p in plans_a}.isdisjoint({p["setId"] for p in plans_b})
    # The path names a plan type, never a person: A's token gives A's document whatever B has.
    for p in plans_b:
        status, _, body = get(f"{base_url}{p['href']}", citizen(keys, a))
        if status == 200:
            root = etree.fromstring(body)
            assert (
                root.find("{urn:hl7-org:v3}recordTarget/{urn:hl7-org:v3}patientRole/{urn:hl7-org:v3}id").get(
                    "extension"
                )
                == a
            )
        else:
            assert status == 404
    # A citizen cannot use the DDS retrieve, even with a real setId.
    status, _, _ = get(f"{base_url}/v1/dds/on-demand/{plans_b[0]['setId']}", citizen(keys, a))
    assert status == 403
    assert get(f"{base_url}/v1/citizen/care-plans/ALAL99/cda", citizen(keys, a))[0] == 404


def test_values_with_a_list_of_codes_come_from_the_current_document(base_url, keys, seeded):
    cpr = patients_with_values(seeded)[1]
    plan = plans_of(base_url, keys, cpr)[0]
    rows = fetch_all(
        seeded,
        "SELECT v.Code, v.ValueNumeric, v.Unit, v.MeasuredUtc FROM PLSP.Patientvaerdier AS v "
        "JOIN PLSP.Patient AS p ON p.PatientId = v.PatientId WHERE p.Cpr = ? AND v.ConversionStatus = 1 "
        "ORDER BY v.Code, v.MeasuredUtc, v.PatientvaerdiId",
        (cpr,),
    )
    codes = sorted({r[0] for r in rows})[:2]
    query = "&".join(f"code={c}" for c in codes)
    status, headers, body = get(
        f"{base_url}/v1/citizen/care-plans/{plan['plan']}/values?{query}", citizen(keys, cpr)
    )
    assert status == 200, body
    out = json.loads(body)
    assert out["problems"] == [] and out["versionNumber"] == plan["versionNumber"]
    assert {v["code"] for v in out["values"]} <= set(codes)
    from decimal import Decimal

    wanted = [(c, Decimal(v), u) for c, v, u, _ in rows if c in {v["code"] for v in out["values"]}]
    assert [(v["code"], Decimal(v["value"]), v["unit"]) for v in out["values"]] == wanted
    assert (
        get(
            f"{base_url}/v1/citizen/care-plans/{plan['plan']}/values?{query}",
            citizen(keys, cpr),
            {"If-None-Match": headers["etag"]},
        )[0]
        == 304
    )
    assert get(f"{base_url}/v1/citizen/care-plans/{plan['plan']}/values", citizen(keys, cpr))[0] == 422


def test_dds_retrieves_the_on_demand_document_with_its_metadata_only_with_its_token(base_url, keys, seeded):
    cpr = patients_with_values(seeded)[2]
    plan = plans_of(base_url, keys, cpr)[0]
    url = f"{base_url}/v1/dds/on-demand/{plan['setId']}"
    dds = keys.token("dds", sub="987654")
    status, headers, body = get(url, dds, {"X-Purpose-Of-Use": "treatment"})
    assert status == 200, body
    out = json.loads(body)
    document = out["document"].encode("utf-8")
    assert schema.problems(document) == []
    meta = out["metadata"]
    assert meta["objectType"] == "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
    assert meta["patientId"] == f"{cpr}^^^&1.2.208.176.1.2&ISO"
    assert meta["classCode"]["code"] == "001" and meta["classCode"]["codingScheme"] == "1.2.208.184.100.9"
    assert meta["typeCode"]["code"] == "81215-6"
    assert meta["formatCode"]["code"] == "urn:ad:dk:medcom:cpd-v2.0:full"
    assert meta["healthcareFacilityTypeCode"]["code"] == "394761003"
    assert meta["practiceSettingCode"]["code"] == "408443003"
    assert meta["languageCode"] == "da-DK" and meta["confidentialityCode"]["code"] == "N"
    assert "&1.2.208.176.1.1&ISO" in meta["authorInstitution"]
    assert meta["hash"] == hashlib.sha1(document).hexdigest() and meta["size"] == len(document)
    assert meta["entryUniqueId"] == plan["setId"] and meta["newDocumentUniqueId"] == plan["documentId"]
    assert get(url, dds, {"If-None-Match": headers["etag"]})[0] == 304
    for token in (None, citizen(keys, cpr), keys.token("lps"), keys.token("operator")):
        assert get(url, token)[0] in (401, 403)
    assert get(f"{base_url}/v1/dds/on-demand/00000000-0000-0000-0000-000000000000", dds)[0] == 404
    assert get(url, dds, {"X-Purpose-Of-Use": "Not A Purpose"})[0] == 422


def test_the_access_log_has_requester_purpose_keyed_hash_version_latency_and_never_a_cpr(
    base_url, keys, seeded
):
    cpr = cprs(seeded)[5]
    plan = plans_of(base_url, keys, cpr)[0]
    get(f"{base_url}{plan['href']}", citizen(keys, cpr))
    get(
        f"{base_url}/v1/dds/on-demand/{plan['setId']}",
        keys.token("dds", sub="555555"),
        {"X-Purpose-Of-Use": "care"},
    )
    rows = fetch_all(
        seeded,
        "SELECT RequesterKind, Requester, Purpose, PatientHash, ForloebCode, VersionNumber, HttpStatus, "
        "LatencyMs FROM PLSP.CdaAccessLog ORDER BY AccessId",
    )
    expected_hash = hmac.new(KEY, cpr.encode(), hashlib.sha256).hexdigest()
    assert expected_hash == access.patient_hash(KEY, cpr)
    mine = [r for r in rows if r[3] == expected_hash]
    assert (
        "citizen",
        "citizen",
        "citizen-view",
        expected_hash,
        plan["plan"],
        plan["versionNumber"],
        200,
    ) in [r[:7] for r in mine]
    assert ("dds", "555555", "care", expected_hash, plan["plan"], plan["versionNumber"], 200) in [
        r[:7] for r in mine
    ]
    assert all(r[7] >= 0 for r in rows)
    text = json.dumps([list(map(str, r)) for r in fetch_all(seeded, "SELECT * FROM PLSP.CdaAccessLog")])
    population = set(cprs(seeded))
    assert not population & set(re.findall(r"\d{10}", text))
    # Counts per requester per day, as the daily e-mail reads them.
    with seeded.connect() as conn:
        counts = access.counts(seeded, conn, dt.datetime.now(dt.UTC).date())
    by = {(c["requesterkind"], c["requester"], c["purpose"]): c for c in counts}
    assert by[("dds", "555555", "care")]["requests"] == 1 and by[("dds", "555555", "care")]["patients"] == 1
    assert sum(c["requests"] for c in counts) == len(rows)
    assert sum(c["notmodified"] for c in counts) >= 1  # the 304s of the tests before
