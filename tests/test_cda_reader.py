"""The values reader (issue 13 step 4): by template and code, tolerant of other producers'
optional elements, saying what it could not read; round trip over a seeded population."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from orchestrator.cda import builder, documents, reader
from tests.support.cda import cprs, seeded_database

ROUND_TRIP_PATIENTS = 1000

# Another producer's document: prefixed namespace, values in an organizer and an
# entryRelationship, extra templateIds, translations, interpretation codes, reference
# ranges, authors, sdtc attributes, local time zones; and entries it cannot read.
FOREIGN = """<?xml version="1.0" encoding="UTF-8"?>
<v3:ClinicalDocument xmlns:v3="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:sdtc="urn:hl7-org:sdtc">
  <v3:templateId root="1.2.208.184.15.1"/>
  <v3:templateId root="1.2.208.184.15.1" extension="2.0"/>
  <v3:component><v3:structuredBody>
    <v3:component><v3:section>
      <v3:code code="75310-3" codeSystem="2.16.840.1.113883.6.1"/>
      <v3:entry><v3:act classCode="ACT" moodCode="EVN"><v3:entryRelationship typeCode="SUBJ">
        <v3:observation classCode="OBS" moodCode="EVN">
          <v3:effectiveTime><v3:low value="20190312"/></v3:effectiveTime>
          <v3:value xsi:type="v3:CD" code="DE11" codeSystem="1.2.208.176.2.4" displayName="Type 2-diabetes"/>
        </v3:observation>
      </v3:entryRelationship></v3:act></v3:entry>
    </v3:section></v3:component>
    <v3:component><v3:section>
      <v3:templateId root="1.2.208.184.15.1.10.20.4"/>
      <v3:text><v3:paragraph>Målinger</v3:paragraph></v3:text>
      <v3:entry><v3:organizer classCode="CLUSTER" moodCode="EVN"><v3:statusCode code="completed"/>
        <v3:component>
          <v3:observation classCode="OBS" moodCode="EVN">
            <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
            <v3:templateId root="2.16.840.1.113883.10.20.22.4.2"/>
            <v3:id root="1.2.3" extension="x"/>
            <v3:code nullFlavor="OTH"><v3:translation code="NPU27300" codeSystem="1.2.208.176.2.1"
              displayName="HbA1c"/></v3:code>
            <v3:statusCode code="completed"/>
            <v3:effectiveTime value="20240501103000+0200"/>
            <v3:value xsi:type="PQ" value="53" unit="mmol/mol"/>
            <v3:interpretationCode code="H" codeSystem="2.16.840.1.113883.5.83"/>
            <v3:author><v3:time value="20240501"/><v3:assignedAuthor><v3:id root="1.2.208.176.1.1"
              extension="123"/></v3:assignedAuthor></v3:author>
            <v3:referenceRange><v3:observationRange><v3:value xsi:type="IVL_PQ"><v3:low value="20"
              unit="mmol/mol"/><v3:high value="42" unit="mmol/mol"/></v3:value></v3:observationRange>
            </v3:referenceRange>
          </v3:observation>
        </v3:component>
      </v3:organizer></v3:entry>
      <v3:entry><v3:observation classCode="OBS" moodCode="EVN" sdtc:valueSet="1.2.3">
        <v3:code code="NPU01568" codeSystem="1.2.208.176.2.1"/>
        <v3:effectiveTime><v3:center value="20240502"/></v3:effectiveTime>
        <v3:value xsi:type="IVL_PQ"><v3:low value="9.5" unit="mmol/L" inclusive="false"/></v3:value>
        <v3:entryRelationship typeCode="COMP"><v3:observation classCode="OBS" moodCode="EVN">
          <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
          <v3:code code="DNK05472" codeSystem="1.2.208.176.2.1"/>
          <v3:effectiveTime value="20240502080000.5-0100"/>
          <v3:value xsi:type="PQ" value="135.0" unit="mm[Hg]"/>
        </v3:observation></v3:entryRelationship>
      </v3:observation></v3:entry>
      <v3:entry><v3:observation classCode="OBS" moodCode="EVN">
        <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
        <v3:code code="NPU03804" codeSystem="1.2.208.176.2.1"/>
        <v3:effectiveTime value="20240503"/>
        <v3:value xsi:type="PQ" value="ikke målt" unit="kg"/>
      </v3:observation></v3:entry>
      <v3:entry><v3:observation classCode="OBS" moodCode="EVN" negationInd="true">
        <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
        <v3:code code="NPU21692" codeSystem="1.2.208.176.2.1"/>
        <v3:effectiveTime value="20240503"/>
        <v3:value xsi:type="PQ" value="60" unit="/min"/>
      </v3:observation></v3:entry>
      <v3:entry><v3:observation classCode="OBS" moodCode="EVN">
        <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
        <v3:code code="NPU19661" codeSystem="1.2.208.176.2.1"/>
        <v3:value xsi:type="PQ" value="30" unit="mg/g"/>
      </v3:observation></v3:entry>
      <v3:entry><v3:observation classCode="OBS" moodCode="EVN">
        <v3:templateId root="1.2.208.184.15.1.10.20.4.20"/>
        <v3:code code="MCS88015" codeSystem="1.2.208.176.2.1"/>
        <v3:effectiveTime value="20240503"/>
        <v3:value xsi:type="ST">2,1 L</v3:value>
      </v3:observation></v3:entry>
    </v3:section></v3:component>
  </v3:structuredBody></v3:component>
</v3:ClinicalDocument>
"""


def test_another_producers_layout_and_optional_elements_are_read():
    result = reader.read(FOREIGN)
    assert result.values == [
        reader.ReadValue("NPU27300", "1.2.208.176.2.1", "HbA1c", Decimal("53"), "mmol/mol", None,
                         dt.datetime(2024, 5, 1, 8, 30)),
        reader.ReadValue("NPU01568", "1.2.208.176.2.1", None, Decimal("9.5"), "mmol/L", ">",
                         dt.datetime(2024, 5, 1, 22, 0)),
        reader.ReadValue("DNK05472", "1.2.208.176.2.1", None, Decimal("135.0"), "mm[Hg]", None,
                         dt.datetime(2024, 5, 2, 9, 0, 0, 500000)),
    ]  # fmt: skip
    assert result.diagnoses == [
        reader.ReadDiagnosis("DE11", "1.2.208.176.2.4", "Type 2-diabetes", dt.date(2019, 3, 12), None)
    ]


def test_what_could_not_be_read_is_said_with_where_and_why():
    problems = reader.read(FOREIGN).problems
    text = "\n".join(problems)
    assert "NPU01568: time '20240502' has no time zone: read as Danish local time" in text
    assert "value NPU03804 left out: PQ value 'ikke målt' is not a number" in text
    assert "value left out: negationInd is true" in text
    assert "value NPU19661 left out: no effectiveTime" in text
    assert "value MCS88015 left out: value type ST is not PQ or IVL_PQ" in text
    assert all(p.startswith("/") for p in problems)  # each names the element's path
    assert len(problems) == 5


def test_a_document_that_is_not_cda_says_so():
    assert reader.read(b"<not-xml").problems[0].startswith("document: not well-formed XML")
    assert "not a CDA ClinicalDocument" in reader.read(b"<html/>").problems[0]
    bare = b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    assert reader.read(bare).values == [] and "no DK-CPD templateId" in reader.read(bare).problems[0]


@pytest.fixture(scope="module")
def population(pg_server_url, template_db_url):
    yield from seeded_database(pg_server_url, ROUND_TRIP_PATIENTS, 1000, dt.datetime.now(dt.UTC).date())


def expected_values(plan) -> list[reader.ReadValue]:
    return [
        reader.ReadValue(v.code, builder.NPU, v.description, v.value, v.unit, v.comparator, v.measured_utc)
        for v in plan.values
    ]


def expected_diagnoses(plan) -> list[reader.ReadDiagnosis]:
    systems = {"SKS": builder.SKS, "ICPC2": builder.ICPC2}
    return [
        reader.ReadDiagnosis(d.code, systems[d.code_system], d.description, d.diagnosed, d.ended)
        for d in plan.diagnoses
    ]


@pytest.mark.slow
def test_round_trip_the_reader_returns_exactly_what_the_builder_put_in_for_every_patient(population):
    started, documents_read, values = time.perf_counter(), 0, 0
    with population.connect() as conn:
        patients = cprs(population)
        assert len(patients) == ROUND_TRIP_PATIENTS
        for cpr in patients:
            _, docs = documents.for_citizen(population, conn, cpr)
            for d in docs:
                result = reader.read(d.to_bytes())
                assert result.problems == [], cpr
                assert result.values == expected_values(d.plan)
                assert result.diagnoses == expected_diagnoses(d.plan)
                documents_read += 1
                values += len(result.values)
    assert documents_read >= ROUND_TRIP_PATIENTS and values > 20_000
    print(f"round trip: {documents_read} documents, {values} values, {time.perf_counter() - started:.1f} s")
