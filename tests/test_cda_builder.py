"""The DK-CPD builder (issue 13 step 2): every document of a seeded population validates
against the HL7 CDA R2 SDTC schema, and each narrative says what its entries say."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from orchestrator.cda import builder, documents, schema
from tests.support.cda import cprs, seeded_database

PATIENTS = 300
NS = {"h": builder.HL7, "xsi": builder.XSI}
XSI_TYPE = f"{{{builder.XSI}}}type"
SIGN = {("high", "false"): "<", ("high", "true"): "≤", ("low", "false"): ">", ("low", "true"): "≥"}


@pytest.fixture(scope="module")
def seeded(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, PATIENTS, 21, dt.datetime.now(dt.UTC).date())


@pytest.fixture(scope="module")
def built(seeded):
    out = []
    with seeded.connect() as conn:
        for cpr in cprs(seeded):
            _, docs = documents.for_citizen(seeded, conn, cpr)
            out += docs
    return out


def test_every_document_of_the_population_validates_against_the_sdtc_schema(built):
    assert len(built) >= PATIENTS
    failures = {str(d.plan.set_id): schema.problems(d.to_bytes())[:3] for d in built}
    assert {k: v for k, v in failures.items() if v} == {}
    assert sum(len(d.plan.values) for d in built) > 5000


def test_the_schema_rejects_a_document_that_breaks_it(built):
    doc = etree.fromstring(built[0].to_bytes())
    doc.insert(0, etree.Element(f"{{{builder.HL7}}}notInCda"))
    assert schema.problems(doc)
    doc = etree.fromstring(built[0].to_bytes())
    doc.remove(doc.find("h:typeId", NS))
    assert schema.problems(doc)


def test_the_header_is_dk_cpd(built):
    for d in built[:50]:
        doc = d.element
        assert doc.find("h:realmCode", NS).get("code") == "DK"
        assert doc.find("h:typeId", NS).attrib == {
            "root": "2.16.840.1.113883.1.3",
            "extension": "POCD_HD000040",
        }
        assert doc.find("h:templateId", NS).get("root") == "1.2.208.184.15.1"
        assert doc.find("h:code", NS).get("code") == "81215-6"
        assert doc.find("h:code", NS).get("codeSystem") == builder.LOINC
        assert doc.find("h:languageCode", NS).get("code") == "da-DK"
        assert doc.find("h:confidentialityCode", NS).get("code") == "N"
        assert doc.find("h:setId", NS).get("root") == str(d.plan.set_id).upper()
        assert doc.find("h:versionNumber", NS).get("value") == str(d.version.number)
        patient_id = doc.find("h:recordTarget/h:patientRole/h:id", NS)
        assert patient_id.attrib == {"root": builder.CPR_ROOT, "extension": d.plans.patient.cpr}
        for path in (
            "h:author/h:assignedAuthor/h:id",
            "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id",
        ):
            assert doc.find(path, NS).attrib == {"root": builder.SOR_ROOT, "extension": d.plans.clinic.sor}


def _rows(section) -> dict[str, list[str]]:
    return {
        tr.get("ID"): [td.text or "" for td in tr.findall("h:td", NS)]
        for tr in section.iterfind(".//h:tbody/h:tr", NS)
    }


def _section(doc, template: str):
    for section in doc.iterfind(".//h:section", NS):
        if section.find("h:templateId", NS).get("root") == template:
            return section
    return None


def test_each_narrative_row_says_what_its_entry_says(built):
    checked = 0
    for d in built:
        outcomes = _section(d.element, builder.OUTCOMES[0])
        rows = _rows(outcomes)
        entries = outcomes.findall("h:entry/h:observation", NS)
        assert len(entries) == len(rows) == len(d.plan.values)
        for obs in entries:
            assert obs.find("h:templateId", NS).get("root") == builder.OUTCOME_OBSERVATION
            cells = rows[obs.find("h:text/h:reference", NS).get("value").lstrip("#")]
            code = obs.find("h:code", NS)
            assert code.get("codeSystem") == builder.NPU
            assert cells[0] == code.get("displayName") and cells[1] == code.get("code")
            when = dt.datetime.strptime(obs.find("h:effectiveTime", NS).get("value")[:14], "%Y%m%d%H%M%S")
            assert cells[2] == when.strftime("%Y-%m-%d %H:%M UTC")
            value = obs.find("h:value", NS)
            if value.get(XSI_TYPE) == "PQ":
                assert cells[3] == value.get("value") and cells[4] == (value.get("unit") or "")
            else:
                assert value.get(XSI_TYPE) == "IVL_PQ"
                (end,) = list(value)
                assert cells[3] == SIGN[(etree.QName(end).localname, end.get("inclusive"))] + end.get("value")
            checked += 1
        concerns = _section(d.element, builder.HEALTH_CONCERNS[0])
        rows = _rows(concerns)
        for obs in concerns.iterfind(".//h:observation", NS):
            cells = rows[obs.find("h:text/h:reference", NS).get("value").lstrip("#")]
            assert cells[1].startswith(obs.find("h:value", NS).get("code") + " (")
    assert checked > 5000


def test_interventions_appear_only_where_the_plan_has_medication(built):
    with_medication = [d for d in built if d.plan.medication]
    assert with_medication and len(with_medication) < len(built)
    for d in built:
        section = _section(d.element, builder.INTERVENTIONS[0])
        assert (section is not None) == bool(d.plan.medication)
        if section is not None:
            atc = [
                m.find("h:code", NS).get("code") for m in section.iterfind(".//h:manufacturedMaterial", NS)
            ]
            assert atc == [m.atc_code for m in d.plan.medication]
    assert all(_section(d.element, builder.GOALS[0]) is None for d in built)  # the data holds no goals
