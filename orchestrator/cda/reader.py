"""The values and diagnoses in a DK-CPD document, ours or any other producer's.

Nothing here depends on our builder's layout: values are the observations with
the outcome-observation template (1.2.208.184.15.1.10.20.4.20) wherever they
sit (in a section, an organizer, an entryRelationship), or observations with a
PQ / IVL_PQ value inside an outcomes section (template 1.2.208.184.15.1.10.20.4
or LOINC 11383-7); diagnoses are the observations with the problem template
(1.2.208.184.15.1.10.20.1.20), or with a CD value inside a health-concerns
section (template 1.2.208.184.15.1.10.20.1 or LOINC 75310-3). Other elements a
producer may add (further templateIds, translations, interpretation codes,
reference ranges, authors, sdtc extensions) are ignored. What could not be read
is listed in ``problems``, each naming the element's path and why; an entry
with a problem is left out rather than guessed, except a time without a zone,
which is read as Danish local time and said so.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from lxml import etree

HL7 = "urn:hl7-org:v3"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
OUTCOME_OBSERVATION = "1.2.208.184.15.1.10.20.4.20"
OUTCOMES_SECTION = ("1.2.208.184.15.1.10.20.4", "11383-7")
PROBLEM_OBSERVATION = "1.2.208.184.15.1.10.20.1.20"
HEALTH_CONCERNS_SECTION = ("1.2.208.184.15.1.10.20.1", "75310-3")
DK_CPD = "1.2.208.184.15.1"
DANISH = zoneinfo.ZoneInfo("Europe/Copenhagen")
TS = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?(?P<tz>[+-]\d{4})?$"
)


@dataclass(frozen=True)
class ReadValue:
    code: str
    code_system: str
    display_name: str | None
    value: Decimal
    unit: str | None
    comparator: str | None  # <, <=, >, >= (an IVL_PQ with one open end), else None
    time_utc: dt.datetime  # naive UTC


@dataclass(frozen=True)
class ReadDiagnosis:
    code: str
    code_system: str
    display_name: str | None
    start: dt.date | None
    end: dt.date | None


@dataclass
class ReadResult:
    values: list[ReadValue] = field(default_factory=list)
    diagnoses: list[ReadDiagnosis] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, each with where and why

    def values_for(self, codes: set[str]) -> list[ReadValue]:
        return [v for v in self.values if v.code in codes]


def _h(tag: str) -> str:
    return f"{{{HL7}}}{tag}"


def _local(e: etree._Element) -> str:
    return etree.QName(e).localname if isinstance(e.tag, str) else ""


def _templates(e: etree._Element) -> set[str]:
    return {t.get("root", "") for t in e.findall(_h("templateId"))}


def _xsi_type(e: etree._Element) -> str:
    return (e.get(XSI_TYPE) or "").rpartition(":")[2]


def _in_section(e: etree._Element, spec: tuple[str, str]) -> bool:
    for ancestor in e.iterancestors(_h("section")):
        code = ancestor.find(_h("code"))
        if spec[0] in _templates(ancestor) or (code is not None and code.get("code") == spec[1]):
            return True
    return False


def parse_ts(text: str | None) -> tuple[dt.datetime | None, str | None]:
    """An HL7 TS as naive UTC, and a note when the zone was missing (read as Danish time)."""
    m = TS.match((text or "").strip())
    if not m:
        return None, f"time {text!r} is not an HL7 TS"
    try:
        fraction = (m["f"] or "0").ljust(6, "0")
        local = dt.datetime(
            int(m["y"]), int(m["mo"] or 1), int(m["d"] or 1),
            int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0), int(fraction),
        )  # fmt: skip
    except ValueError:
        return None, f"time {text!r} is not a real date"
    if m["tz"]:
        sign = 1 if m["tz"][0] == "+" else -1
        offset = dt.timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][3:5])) * sign
        return (local - offset), None
    utc = local.replace(tzinfo=DANISH).astimezone(dt.UTC).replace(tzinfo=None)
    return utc, f"time {text!r} has no time zone: read as Danish local time"


def _time_of(obs: etree._Element) -> tuple[dt.datetime | None, str | None]:
    et = obs.find(_h("effectiveTime"))
    if et is None:
        return None, "no effectiveTime"
    if et.get("value"):
        return parse_ts(et.get("value"))
    for part in ("center", "low", "high"):
        p = et.find(_h(part))
        if p is not None and p.get("value"):
            return parse_ts(p.get("value"))
    return None, "effectiveTime has no value"


def _code_of(obs: etree._Element) -> tuple[etree._Element | None, str | None]:
    code = obs.find(_h("code"))
    if code is None:
        return None, "no code"
    if code.get("code") and code.get("codeSystem"):
        return code, None
    for translation in code.findall(_h("translation")):
        if translation.get("code") and translation.get("codeSystem"):
            return translation, None
    return None, "code has no code and codeSystem (nor a translation with them)"


def _number(text: str | None) -> Decimal | None:
    try:
        number = Decimal((text or "").strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _quantity(value: etree._Element) -> tuple[Decimal | None, str | None, str | None, str | None]:
    """(number, unit, comparator, problem) of a PQ or an IVL_PQ with one open end."""
    kind = _xsi_type(value)
    if value.get("nullFlavor"):
        return None, None, None, f"value is nullFlavor {value.get('nullFlavor')}"
    if kind == "PQ":
        number = _number(value.get("value"))
        if number is None:
            return None, None, None, f"PQ value {value.get('value')!r} is not a number"
        return number, value.get("unit"), None, None
    if kind == "IVL_PQ":
        ends = {p: value.find(_h(p)) for p in ("low", "high")}
        present = {p: e for p, e in ends.items() if e is not None and e.get("value") is not None}
        if len(present) != 1:
            return None, None, None, "IVL_PQ value has not exactly one bound (low or high)"
        ((side, end),) = present.items()
        number = _number(end.get("value"))
        if number is None:
            return None, None, None, f"IVL_PQ {side} {end.get('value')!r} is not a number"
        inclusive = end.get("inclusive", "true") == "true"
        comparator = ("<=" if inclusive else "<") if side == "high" else (">=" if inclusive else ">")
        return number, end.get("unit"), comparator, None
    return None, None, None, f"value type {kind or '(none)'} is not PQ or IVL_PQ"


def _skipped(obs: etree._Element) -> str | None:
    if obs.get("negationInd") == "true":
        return "negationInd is true (the value was not measured)"
    status = obs.find(_h("statusCode"))
    if status is not None and status.get("code") in ("nullified", "cancelled", "aborted"):
        return f"statusCode is {status.get('code')}"
    if obs.get("nullFlavor"):
        return f"observation is nullFlavor {obs.get('nullFlavor')}"
    return None


def read(document: bytes | str | etree._Element) -> ReadResult:
    """The values and diagnoses of a DK-CPD document, with what could not be read."""
    result = ReadResult()
    if isinstance(document, etree._Element):
        root = document
    else:
        try:
            root = etree.fromstring(document.encode("utf-8") if isinstance(document, str) else document)
        except etree.XMLSyntaxError as exc:
            result.problems.append(f"document: not well-formed XML ({exc})")
            return result
    tree = root.getroottree()
    if root.tag != _h("ClinicalDocument"):
        result.problems.append(f"document: the root is {root.tag}, not a CDA ClinicalDocument")
        return result
    if DK_CPD not in _templates(root):
        result.problems.append(f"document: no DK-CPD templateId {DK_CPD}; read by the entry templates anyway")

    for obs in root.iter(_h("observation")):
        where = tree.getpath(obs)
        templates = _templates(obs)
        value = obs.find(_h("value"))
        if OUTCOME_OBSERVATION in templates or (
            value is not None and _xsi_type(value) in ("PQ", "IVL_PQ") and _in_section(obs, OUTCOMES_SECTION)
        ):
            _read_value(obs, value, where, result)
        elif PROBLEM_OBSERVATION in templates or (
            value is not None
            and _xsi_type(value) in ("CD", "CE")
            and _in_section(obs, HEALTH_CONCERNS_SECTION)
        ):
            _read_diagnosis(obs, value, where, result)
    return result


def _read_value(obs, value, where: str, result: ReadResult) -> None:
    reason = _skipped(obs)
    if reason:
        result.problems.append(f"{where}: value left out: {reason}")
        return
    code, problem = _code_of(obs)
    if problem:
        result.problems.append(f"{where}: value left out: {problem}")
        return
    if value is None:
        result.problems.append(f"{where}: value left out: no value element")
        return
    number, unit, comparator, problem = _quantity(value)
    if problem:
        result.problems.append(f"{where}: value {code.get('code')} left out: {problem}")
        return
    time, note = _time_of(obs)
    if time is None:
        result.problems.append(f"{where}: value {code.get('code')} left out: {note}")
        return
    if note:
        result.problems.append(f"{where}: value {code.get('code')}: {note}")
    result.values.append(
        ReadValue(
            code=code.get("code"),
            code_system=code.get("codeSystem"),
            display_name=code.get("displayName"),
            value=number,
            unit=unit,
            comparator=comparator,
            time_utc=time,
        )
    )


def _date(text: str | None) -> dt.date | None:
    m = TS.match((text or "").strip())
    if not m or not m["d"]:
        return None
    try:
        return dt.date(int(m["y"]), int(m["mo"]), int(m["d"]))
    except ValueError:
        return None


def _read_diagnosis(obs, value, where: str, result: ReadResult) -> None:
    reason = _skipped(obs)
    if reason:
        result.problems.append(f"{where}: diagnosis left out: {reason}")
        return
    if value is None or not value.get("code") or not value.get("codeSystem"):
        result.problems.append(f"{where}: diagnosis left out: the value has no code and codeSystem")
        return
    et = obs.find(_h("effectiveTime"))
    start = end = None
    if et is not None:
        low, high = et.find(_h("low")), et.find(_h("high"))
        start = _date(et.get("value") or (low.get("value") if low is not None else None))
        end = _date(high.get("value")) if high is not None else None
    result.diagnoses.append(
        ReadDiagnosis(value.get("code"), value.get("codeSystem"), value.get("displayName"), start, end)
    )
