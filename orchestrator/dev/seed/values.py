"""PLSP.Patientvaerdier: years of measurements per patient, as the LPS send them.

Each code is measured at a yearly rate while the patient has a care plan that
measures it (the highest rate of the patient's plans applies). A patient has
a level per code and each measurement scatters around it. The raw text then
takes the habits of the clinic's practice system (LPS): decimal comma or
point, unit inside the text, date format; plus a few per cent of padded,
blank and invalid values. Nothing is converted: that is the jobs' work.
"""

from __future__ import annotations

import numpy as np

from orchestrator.dev.seed import codes as c
from orchestrator.dev.seed.population import DAYS_PER_YEAR, Population
from orchestrator.dev.seed.rows import Nullable, Rows
from orchestrator.dev.seed.text import (
    SECOND,
    TEXT,
    choose,
    constant,
    danish_utc_offset_hours,
    decimal,
    join,
    where,
    zero_padded,
)

SURGERY_OPENS = 7 * 3600 + 1800  # seconds after local midnight: 07:30
SURGERY_HOURS = 8 * 3600  # seconds
RECEIVE_DELAY = (60, 36 * 3600)  # seconds between measurement and upload
BLANK_KINDS = ("", " ", "")  # the last one is sent as NULL
INVALID_KINDS = 4  # '7,5..', a word, '53 53', '7,,5'

_LPS_COMMA = np.array([p.decimal_comma for p in c.LPS_PROFILES])
_LPS_UNIT_IN_TEXT = np.array([p.unit_in_text for p in c.LPS_PROFILES])
_LPS_UNIT_MISSING = np.array([p.unit_missing for p in c.LPS_PROFILES])
_LPS_TIME_FORMATS = np.array([p.time_format_weights for p in c.LPS_PROFILES])


def generate(pop: Population, rng: np.random.Generator, lo: int, hi: int, first_id: int) -> Rows:
    """Values of patients lo..hi-1, ids from first_id, ordered by patient and time."""
    n = hi - lo
    p0, p1 = pop.plan_range(lo, hi)
    plan_patient = pop.plan_patient[p0:p1] - lo
    plan_condition = pop.plan_condition[p0:p1]
    plan_start = pop.history_start[p0:p1].astype(np.int64)  # seconds since 1970
    end = pop.history_end[lo:hi].astype("datetime64[s]").astype(np.int64)
    patient_lps = pop.clinic_lps[pop.patient_clinic[lo:hi]]
    first = pop.first_condition[lo:hi]

    blocks: list[dict[str, np.ndarray]] = []
    times: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # code -> (patient, local time)
    for spec in c.VALUE_SPECS:
        if spec.paired_with:
            patient, local = times[spec.paired_with]
            keep = rng.random(len(patient)) < spec.paired_share
            patient, local = patient[keep], local[keep]
        else:
            patient, local = _measurement_times(rng, spec, plan_patient, plan_condition, plan_start, end, n)
            times[spec.code] = (patient, local)
        level = rng.normal(np.array(spec.mean)[first], spec.sd)[patient]
        value = level + rng.normal(0.0, spec.noise, len(patient))
        if spec.log_scale:
            value = np.exp(value)
        value = np.clip(value, spec.low, spec.high)
        lps = patient_lps[patient]
        if spec.code == c.HBA1C_CODE:
            percent = rng.random(len(patient)) < c.HBA1C_PERCENT_SHARE
            unit = c.HBA1C_PERCENT_RELEVANT[0]
            in_percent = c.HBA1C_PERCENT_INTERCEPT + c.HBA1C_PERCENT_SLOPE * value[percent]
            blocks.append(
                _raw_block(rng, c.HBA1C_PERCENT_CODE, unit, 1, in_percent, None, None, lps[percent])
                | {"patient": patient[percent], "local": local[percent]}
            )
            patient, local, value, lps = patient[~percent], local[~percent], value[~percent], lps[~percent]
        blocks.append(
            _raw_block(rng, spec.code, spec.unit, spec.decimals, value, spec.below, spec.above, lps)
            | {"patient": patient, "local": local}
        )

    block = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    utc = block["local"] - danish_utc_offset_hours(block["local"]) * 3600 * SECOND
    order = np.lexsort((utc, block["patient"]))
    block = {key: values[order] for key, values in block.items()}
    utc = utc[order]
    count = len(order)
    raw_time = _raw_time(rng, block["local"], patient_lps[block["patient"]])
    received = utc + rng.integers(*RECEIVE_DELAY, count) * SECOND
    return Rows(
        {
            "PatientvaerdiId": first_id + np.arange(count, dtype=np.int64),
            "PatientId": pop.patient_ids[lo:hi][block["patient"]],
            "Code": block["code"],
            "RawValue": Nullable(block["raw"], block["raw_null"]),
            "RawTime": raw_time,
            "Unit": Nullable(block["unit"], block["unit_null"]),
            "ConversionStatus": 0,
            "ConversionAttempts": 0,
            "ReceivedUtc": received,
        },
        count,
    )


def _measurement_times(rng, spec, plan_patient, plan_condition, plan_start, end, n):
    """Patients (chunk index) and local times of one code's measurements."""
    plan_rate = np.array(spec.rate)[plan_condition]
    rate = np.zeros(n)
    np.maximum.at(rate, plan_patient, plan_rate)
    start = end.copy()
    measured = plan_rate > 0
    np.minimum.at(start, plan_patient[measured], plan_start[measured])
    years = np.maximum(end - start, 0) / (DAYS_PER_YEAR * 86_400)
    patient = np.repeat(np.arange(n), rng.poisson(rate * years))
    first_day = start[patient] // 86_400
    days = np.maximum(end[patient] // 86_400 - first_day, 1)
    day = first_day + (rng.random(len(patient)) * days).astype(np.int64)
    seconds = day * 86_400 + SURGERY_OPENS + rng.integers(0, SURGERY_HOURS, len(patient))
    return patient, seconds.astype("datetime64[s]")


def _raw_block(rng, code, unit, decimals, value, below, above, lps) -> dict[str, np.ndarray]:
    """Raw value text, Unit and their NULL masks for one code."""
    m = len(value)
    factor = 10**decimals
    scaled = np.round(value * factor).astype(np.int64)
    separator = where(rng.random(m) < _LPS_COMMA[lps], ",", ".")
    number = decimal(scaled, decimals, separator)
    if decimals == 0:
        extra = np.flatnonzero(rng.random(m) < c.RAW_INTEGER_WITH_DECIMAL)
        number[extra] = join(number[extra], separator[extra], "0")
    # Results beyond the lab's reporting limits arrive as '<5' or '>300'.
    if below is not None:
        limit = round(below * factor)
        hit = np.flatnonzero(scaled < limit)
        number[hit] = join("<", decimal(np.full(len(hit), limit), decimals, separator[hit]))
    if above is not None:
        limit = round(above * factor)
        hit = np.flatnonzero(scaled > limit)
        number[hit] = join(">", decimal(np.full(len(hit), limit), decimals, separator[hit]))

    raw = number.copy()
    unit_null = rng.random(m) < _LPS_UNIT_MISSING[lps]
    in_text = np.flatnonzero(rng.random(m) < _LPS_UNIT_IN_TEXT[lps])
    raw[in_text] = join(number[in_text], " ", unit)
    unit_null[in_text] = True

    kind = rng.random(m)
    padded = np.flatnonzero(kind < c.RAW_PADDED)
    raw[padded] = join(" ", number[padded])
    invalid = np.flatnonzero((kind >= c.RAW_PADDED) & (kind < c.RAW_PADDED + c.RAW_INVALID))
    raw[invalid] = _invalid(rng, number[invalid], separator[invalid])
    blank = np.flatnonzero(kind >= 1.0 - c.RAW_BLANK)
    blank_kind = rng.integers(0, len(BLANK_KINDS), len(blank))
    raw[blank] = choose(BLANK_KINDS, blank_kind)
    raw_null = np.zeros(m, dtype=bool)
    raw_null[blank[blank_kind == len(BLANK_KINDS) - 1]] = True
    unit_null[blank] = True
    return {
        "code": constant(code, m),
        "raw": raw,
        "raw_null": raw_null,
        "unit": constant(unit, m),
        "unit_null": unit_null,
    }


def _invalid(rng, number: np.ndarray, separator: np.ndarray) -> np.ndarray:
    """Values no converter may accept: typos and words."""
    k = len(number)
    kind = rng.integers(0, INVALID_KINDS, k)
    doubled = np.strings.replace(np.strings.replace(number, ",", ",,"), ".", "..")
    doubled = where(doubled == number, join(number, separator, separator), doubled)
    out = join(number, "..")
    out = where(kind == 1, choose(c.INVALID_WORDS, rng.integers(0, len(c.INVALID_WORDS), k)), out)
    out = where(kind == 2, join(number, " ", number), out)
    return where(kind == 3, doubled, out)


def _raw_time(rng, local: np.ndarray, lps: np.ndarray) -> Nullable:
    """Local time as the LPS writes it: '24-08-2018', '2018-08-24' or '20180824121545+0200'.

    A chunk spans a few thousand distinct days: each day's text is built once
    per format and looked up, instead of formatting every row.
    """
    m = len(local)
    cumulative = np.cumsum(_LPS_TIME_FORMATS, axis=1)[lps]
    style = (rng.random(m)[:, None] >= cumulative).sum(axis=1)
    day = local.astype("datetime64[D]")
    if m == 0:
        return Nullable(constant("", 0), np.zeros(0, dtype=bool))
    first = day.min()
    days = first + np.arange((day.max() - first).astype(np.int64) + 1)
    iso = days.astype(str).tolist()  # 'YYYY-MM-DD'; a few thousand days, so plain Python is fine
    danish = [f"{d[8:10]}-{d[5:7]}-{d[0:4]}" for d in iso]
    compact = [d.replace("-", "") for d in iso]
    formats = np.array(danish + iso + compact, dtype=TEXT)
    offset = where(danish_utc_offset_hours(days) == 2, "+0200", "+0100")
    day_index = (day - first).astype(np.int64)
    out = formats[np.minimum(style, 2) * len(days) + day_index]
    with_clock = np.flatnonzero(style >= 2)
    seconds = (local[with_clock] - day[with_clock]).astype(np.int64)
    clock = seconds // 3600 * 10_000 + seconds // 60 % 60 * 100 + seconds % 60
    out[with_clock] = join(out[with_clock], zero_padded(clock, 6), offset[day_index[with_clock]])
    return Nullable(out, rng.random(m) < c.RAW_TIME_MISSING)
