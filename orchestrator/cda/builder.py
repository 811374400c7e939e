"""The DK-CPD document (MedCom's care-plan profile of HL7 CDA R2) of one care plan, with lxml.

Header as ``shared/domain.md`` gives it: realmCode DK, typeId POCD_HD000040,
templateId 1.2.208.184.15.1, LOINC 81215-6, da-DK, confidentiality N, setId and
versionNumber, the patient by CPR (root 1.2.208.176.1.2), the clinic by SOR
(root 1.2.208.176.1.1) as author and custodian, relatedDocument RPLC to the
version it replaces. Sections (templates 1.2.208.184.15.1.10.20.x; the
numbering of sections and of entries other than the outcome observation is our
interpretation, docs/cda.md): health concerns (the plan's diagnoses),
interventions (the plan's medication, ATC), outcomes (the values: one outcome
observation 1.2.208.184.15.1.10.20.4.20 each, NPU code, effectiveTime in UTC,
PQ value and unit; a comparator makes the value an IVL_PQ with an open end).
Goals: the FLP data holds none, so no goals section is written. Each section's
narrative block is a table saying what its entries say, each entry pointing at
its row (``text/reference``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from orchestrator.cda.data import CarePlans, Diagnosis, Medication, Plan, Value
from orchestrator.cda.versions import DocumentVersion

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SDTC = "urn:hl7-org:sdtc"
NSMAP = {None: HL7, "xsi": XSI, "sdtc": SDTC}

TYPE_ID_ROOT = "2.16.840.1.113883.1.3"
DK_CPD = "1.2.208.184.15.1"
CPR_ROOT = "1.2.208.176.1.2"
SOR_ROOT = "1.2.208.176.1.1"
LOINC = "2.16.840.1.113883.6.1"
NPU = "1.2.208.176.2.1"
SKS = "1.2.208.176.2.4"
ICPC2 = "1.2.208.176.2.31"
ATC = "2.16.840.1.113883.6.73"
GENDER = "2.16.840.1.113883.5.1"
CARE_PLAN_CODE = "81215-6"

# Sections and entries (templates under 1.2.208.184.15.1.10.20; LOINC section codes).
HEALTH_CONCERNS = ("1.2.208.184.15.1.10.20.1", "75310-3", "Helbredsbekymringer")
GOALS = ("1.2.208.184.15.1.10.20.2", "61146-7", "Mål")
INTERVENTIONS = ("1.2.208.184.15.1.10.20.3", "62387-6", "Indsatser")
OUTCOMES = ("1.2.208.184.15.1.10.20.4", "11383-7", "Resultater")
HEALTH_CONCERN_ACT = "1.2.208.184.15.1.10.20.1.10"
PROBLEM_OBSERVATION = "1.2.208.184.15.1.10.20.1.20"
MEDICATION_INTERVENTION = "1.2.208.184.15.1.10.20.3.20"
OUTCOME_OBSERVATION = "1.2.208.184.15.1.10.20.4.20"

CODE_SYSTEMS = {"SKS": SKS, "ICPC2": ICPC2}
CODE_SYSTEM_NAMES = {SKS: "SKS", ICPC2: "ICPC-2", NPU: "NPU", ATC: "ATC", LOINC: "LOINC"}
# NPU, the Danish DNK codes and MedCom's MCS codes are all in the NPU terminology (our interpretation).
VALUE_CODE_SYSTEM = NPU
COMPARATOR_TEXT = {None: "", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def _el(parent, tag: str, text: str | None = None, **attrs) -> etree._Element:
    e = etree.SubElement(parent, f"{{{HL7}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        e.text = text
    return e


def ts(value: dt.datetime | dt.date) -> str:
    """An HL7 TS: dates as YYYYMMDD, times in UTC as YYYYMMDDHHMMSS[.fff]+0000."""
    if not isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d")
    text = value.strftime("%Y%m%d%H%M%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "+0000"


def decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _code(parent, tag: str, code: str, system: str, display: str | None = None, xsi_type: str | None = None):
    attrs = {"code": code, "codeSystem": system, "codeSystemName": CODE_SYSTEM_NAMES.get(system)}
    if display:
        attrs["displayName"] = display
    e = _el(parent, tag, **attrs)
    if xsi_type:
        e.set(f"{{{XSI}}}type", xsi_type)
    return e


def _table(section, headers: list[str], rows: list[tuple[str, list[str]]]) -> None:
    text = _el(section, "text")
    if not rows:  # an empty tbody does not validate
        _el(text, "paragraph", "Ingen registreringer.")
        return
    table = _el(text, "table", border="1")
    tr = _el(_el(table, "thead"), "tr")
    for h in headers:
        _el(tr, "th", h)
    body = _el(table, "tbody")
    for row_id, cells in rows:
        tr = _el(body, "tr", ID=row_id)
        for c in cells:
            _el(tr, "td", c)


def _section(body, spec: tuple[str, str, str]) -> etree._Element:
    section = _el(_el(body, "component"), "section")
    _el(section, "templateId", root=spec[0])
    _code(section, "code", spec[1], LOINC, spec[2])
    _el(section, "title", spec[2])
    return section


def value_cells(v: Value) -> list[str]:
    """The narrative row of a value: what, code, time (UTC), value with comparator, unit."""
    return [
        v.description or v.code,
        v.code,
        v.measured_utc.strftime("%Y-%m-%d %H:%M UTC"),
        COMPARATOR_TEXT[v.comparator] + decimal_text(v.value),
        v.unit or "",
    ]


def diagnosis_cells(d: Diagnosis) -> list[str]:
    return [
        d.description or d.code,
        f"{d.code} ({'ICPC-2' if d.code_system == 'ICPC2' else d.code_system})",
        d.diagnosed.isoformat(),
        d.ended.isoformat() if d.ended else "",
    ]


def medication_cells(m: Medication) -> list[str]:
    return [m.drug_name or m.atc_code, m.atc_code, m.start.isoformat(), m.end.isoformat() if m.end else ""]


def _health_concerns(body, plan: Plan, set_id: str) -> None:
    section = _section(body, HEALTH_CONCERNS)
    rows = [(f"d{i}", diagnosis_cells(d)) for i, d in enumerate(plan.diagnoses, 1)]
    _table(section, ["Diagnose", "Kode", "Stillet", "Afsluttet"], rows)
    for i, d in enumerate(plan.diagnoses, 1):
        act = _el(_el(section, "entry", typeCode="DRIV"), "act", classCode="ACT", moodCode="EVN")
        _el(act, "templateId", root=HEALTH_CONCERN_ACT)
        _el(act, "id", root=set_id, extension=f"concern-{i}")
        _code(act, "code", "75310-3", LOINC, "Helbredsbekymring")
        _el(act, "statusCode", code="completed" if d.ended else "active")
        relationship = _el(act, "entryRelationship", typeCode="SUBJ")
        obs = _el(relationship, "observation", classCode="OBS", moodCode="EVN")
        _el(obs, "templateId", root=PROBLEM_OBSERVATION)
        _code(obs, "code", "29308-4", LOINC, "Diagnose")
        _el(_el(obs, "text"), "reference", value=f"#d{i}")
        _el(obs, "statusCode", code="completed")
        period = _el(obs, "effectiveTime")
        _el(period, "low", value=ts(d.diagnosed))
        if d.ended:
            _el(period, "high", value=ts(d.ended))
        _code(obs, "value", d.code, CODE_SYSTEMS[d.code_system], d.description, xsi_type="CD")


def _interventions(body, plan: Plan, set_id: str) -> None:
    section = _section(body, INTERVENTIONS)
    rows = [(f"m{i}", medication_cells(m)) for i, m in enumerate(plan.medication, 1)]
    _table(section, ["Lægemiddel", "ATC", "Start", "Slut"], rows)
    for i, m in enumerate(plan.medication, 1):
        entry = _el(section, "entry", typeCode="DRIV")
        sa = _el(entry, "substanceAdministration", classCode="SBADM", moodCode="EVN")
        _el(sa, "templateId", root=MEDICATION_INTERVENTION)
        _el(sa, "id", root=set_id, extension=f"medication-{i}")
        _el(_el(sa, "text"), "reference", value=f"#m{i}")
        _el(sa, "statusCode", code="completed" if m.end else "active")
        period = _el(sa, "effectiveTime")
        period.set(f"{{{XSI}}}type", "IVL_TS")
        _el(period, "low", value=ts(m.start))
        if m.end:
            _el(period, "high", value=ts(m.end))
        material = _el(_el(_el(sa, "consumable"), "manufacturedProduct"), "manufacturedMaterial")
        _code(material, "code", m.atc_code, ATC, m.drug_name)


def _a(value: str) -> str:
    return quoteattr(value)


def _outcomes(body, plan: Plan, set_id: str) -> None:
    """The outcomes section as one XML text parsed once: the bulk of a document (about 16
    elements per value), where building element by element costs most."""
    template, code, title = OUTCOMES
    parts = [
        f'<section xmlns="{HL7}" xmlns:xsi="{XSI}"><templateId root="{template}"/>'
        f'<code code="{code}" codeSystem="{LOINC}" codeSystemName="LOINC" displayName={_a(title)}/>'
        f"<title>{escape(title)}</title><text>"
    ]
    if not plan.values:
        parts.append("<paragraph>Ingen registreringer.</paragraph>")
    else:
        parts.append('<table border="1"><thead><tr>')
        parts += [f"<th>{h}</th>" for h in ("Måling", "Kode", "Tidspunkt", "Værdi", "Enhed")]
        parts.append("</tr></thead><tbody>")
        for v in plan.values:
            cells = "".join(f"<td>{escape(c)}</td>" if c else "<td/>" for c in value_cells(v))
            parts.append(f'<tr ID="v{v.value_id}">{cells}</tr>')
        parts.append("</tbody></table>")
    parts.append("</text>")
    system = f'codeSystem="{VALUE_CODE_SYSTEM}" codeSystemName="{CODE_SYSTEM_NAMES[VALUE_CODE_SYSTEM]}"'
    for v in plan.values:
        display = f" displayName={_a(v.description)}" if v.description else ""
        unit = f" unit={_a(v.unit)}" if v.unit is not None else ""
        number = decimal_text(v.value)
        if v.comparator is None:
            value = f'<value xsi:type="PQ" value="{number}"{unit}/>'
        else:
            end = "high" if v.comparator.startswith("<") else "low"
            inclusive = "true" if v.comparator.endswith("=") else "false"
            value = (
                f'<value xsi:type="IVL_PQ"><{end} value="{number}"{unit} inclusive="{inclusive}"/></value>'
            )
        parts.append(
            f'<entry typeCode="DRIV"><observation classCode="OBS" moodCode="EVN">'
            f'<templateId root="{OUTCOME_OBSERVATION}"/><id root="{set_id}" extension="value-{v.value_id}"/>'
            f"<code code={_a(v.code)} {system}{display}/>"
            f'<text><reference value="#v{v.value_id}"/></text><statusCode code="completed"/>'
            f'<effectiveTime value="{ts(v.measured_utc)}"/>{value}</observation></entry>'
        )
    parts.append("</section>")
    _el(body, "component").append(etree.fromstring("".join(parts)))


def build(plans: CarePlans, plan: Plan, version: DocumentVersion) -> etree._Element:
    """The document of ``plan`` at ``version`` (same content and version: the same bytes)."""
    patient, clinic = plans.patient, plans.clinic
    set_id = str(plan.set_id).upper()
    doc = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap=NSMAP)
    _el(doc, "realmCode", code="DK")
    _el(doc, "typeId", root=TYPE_ID_ROOT, extension="POCD_HD000040")
    _el(doc, "templateId", root=DK_CPD)
    _el(doc, "id", root=str(version.document_id).upper())
    _code(doc, "code", CARE_PLAN_CODE, LOINC, "Care plan")
    _el(doc, "title", f"Forløbsplan: {plan.title or plan.code}")
    _el(doc, "effectiveTime", value=ts(version.created_utc))
    _el(doc, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    _el(doc, "languageCode", code="da-DK")
    _el(doc, "setId", root=set_id)
    _el(doc, "versionNumber", value=str(version.number))

    role = _el(_el(doc, "recordTarget"), "patientRole")
    _el(role, "id", root=CPR_ROOT, extension=patient.cpr)
    person = _el(role, "patient")
    name = _el(person, "name")
    _el(name, "given", patient.given_name)
    _el(name, "family", patient.family_name)
    _el(person, "administrativeGenderCode", code=patient.sex, codeSystem=GENDER)
    _el(person, "birthTime", value=ts(patient.birth_date))

    author = _el(doc, "author")
    _el(author, "time", value=ts(version.created_utc))
    assigned = _el(author, "assignedAuthor")
    _el(assigned, "id", root=SOR_ROOT, extension=clinic.sor)
    org = _el(assigned, "representedOrganization")
    _el(org, "id", root=SOR_ROOT, extension=clinic.sor)
    _el(org, "name", clinic.name)

    custodian = _el(_el(_el(doc, "custodian"), "assignedCustodian"), "representedCustodianOrganization")
    _el(custodian, "id", root=SOR_ROOT, extension=clinic.sor)
    _el(custodian, "name", clinic.name)

    if version.previous_document_id is not None:
        parent = _el(_el(doc, "relatedDocument", typeCode="RPLC"), "parentDocument")
        _el(parent, "id", root=str(version.previous_document_id).upper())
        _el(parent, "setId", root=set_id)
        _el(parent, "versionNumber", value=str(version.number - 1))

    body = _el(_el(doc, "component"), "structuredBody")
    _health_concerns(body, plan, set_id)
    if plan.medication:
        _interventions(body, plan, set_id)
    _outcomes(body, plan, set_id)
    return doc


def to_bytes(doc: etree._Element) -> bytes:
    etree.cleanup_namespaces(doc)  # the parsed outcomes section repeats the root's declarations
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
