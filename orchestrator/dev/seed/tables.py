"""Row generators for every seeded table, and the load plan (order, ids, chunking).

A generator gets the population, its own random generator, the patient range
lo..hi-1 and the first id to use; it returns ``Rows``. Per-patient tables are
generated in chunks of patients so that a large load streams; the others in
one piece. Each table has its own random stream, so changing one table's
generator leaves the other tables' rows as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from orchestrator.dev.seed import codes as c
from orchestrator.dev.seed import dates
from orchestrator.dev.seed import values as seed_values
from orchestrator.dev.seed.population import DAYS_PER_YEAR, Population, categorical, uniform_times
from orchestrator.dev.seed.rows import Nullable, Rows
from orchestrator.dev.seed.text import (
    DAY,
    SECOND,
    TEXT,
    choose,
    constant,
    join,
    letters,
    text,
    uuids,
    where,
    zero_padded,
)

CHUNK_PATIENTS = 5_000  # patients per generated chunk: about 175,000 values, 10 MB of COPY text
USER_REF_LETTERS = 12  # pseudonymous session user: 'app-' or 'staff-' and random letters
Generator = Callable[[Population, np.random.Generator, int, int, int], Rows]


@dataclass(frozen=True)
class Table:
    name: str  # schema-qualified, as in the schema files
    generate: Generator
    stream: int  # random stream number; never reuse or renumber (it would change the data)
    id_column: str | None = None  # identity column the seed fills (the sequence is advanced after)
    per_patient: bool = False  # generated in chunks of CHUNK_PATIENTS patients
    keys: tuple[str, ...] = ()  # reference table: rows whose key exists are left alone


def _klinik(pop: Population, rng, lo, hi, first_id) -> Rows:
    n = len(pop.clinic_ids)
    patterns = rng.integers(0, len(c.CLINIC_NAME_PATTERNS), n)
    towns = rng.integers(0, len(c.TOWNS), n)
    names = [c.CLINIC_NAME_PATTERNS[p].format(c.TOWNS[t]) for p, t in zip(patterns, towns, strict=True)]
    ydernummer = 100_000 + rng.choice(900_000, n, replace=False)  # six digits, unique
    age = ((c.PLAN_HISTORY_YEARS + rng.random(n) * 15) * DAYS_PER_YEAR * 86_400).astype(np.int64)
    return Rows(
        {
            "KlinikId": pop.clinic_ids,
            "SorCode": join(c.SOR_PREFIX, zero_padded(pop.clinic_ids, 6), c.SOR_NAMESPACE),
            "Ydernummer": text(ydernummer),
            "Name": np.array(names, dtype=TEXT),
            "CreatedUtc": pop.now - age * SECOND,
        },
        n,
    )


def _patient(pop: Population, rng, lo, hi, first_id) -> Rows:
    return Rows(
        {
            "PatientId": pop.patient_ids[lo:hi],
            "Cpr": text(pop.cpr[lo:hi]),
            "KlinikId": pop.clinic_ids[pop.patient_clinic[lo:hi]],
            "GivenName": pop.given_name[lo:hi],
            "FamilyName": pop.family_name[lo:hi],
            "BirthDate": pop.birth[lo:hi],
            "Sex": where(pop.male[lo:hi], "M", "F"),
            "CreatedUtc": pop.created[lo:hi],
            "UpdatedUtc": pop.updated[lo:hi],
        },
        hi - lo,
    )


def _forloebsplan(pop: Population, rng, lo, hi, first_id) -> Rows:
    p0, p1 = pop.plan_range(lo, hi)
    return Rows(
        {
            "ForloebsplanId": pop.plan_ids[p0:p1],
            "PatientId": pop.patient_ids[pop.plan_patient[p0:p1]],
            "ForloebCode": choose(c.FORLOEB_CODES, pop.plan_condition[p0:p1]),
            "SetId": uuids(rng, p1 - p0),
            "VersionNumber": pop.plan_version[p0:p1],
            "Status": np.where(pop.plan_closed[p0:p1], 2, 1),
            "CreatedUtc": pop.plan_created[p0:p1],
            "UpdatedUtc": pop.plan_updated[p0:p1],
        },
        p1 - p0,
    )


def _by_condition(
    rng, condition: np.ndarray, options: tuple[tuple[tuple[str, float], ...], ...]
) -> np.ndarray:
    """One code per row from the condition's (code, share) list."""
    width = max(len(o) for o in options)
    codes = [[code for code, _ in o] + [""] * (width - len(o)) for o in options]
    shares = np.array([[share for _, share in o] + [0.0] * (width - len(o)) for o in options])
    pick = categorical(rng, shares[condition])
    return np.asarray(codes, dtype=TEXT)[condition, pick]


def _diagnose(pop: Population, rng, lo, hi, first_id) -> Rows:
    p0, p1 = pop.plan_range(lo, hi)
    plans = np.arange(p0, p1)
    condition = pop.plan_condition[plans]
    diagnosed = pop.plan_diagnosed[plans]
    end_day = pop.history_end[pop.plan_patient[plans]].astype("datetime64[D]")
    # The diagnosis that started the care plan arrived just before the plan was made.
    received = pop.plan_created[plans] - rng.integers(1, 3600, len(plans)) * SECOND
    icpc = rng.random(len(plans)) < c.ICPC_SHARE
    sks = rng.random(len(plans)) < c.SKS_SHARE
    sks_date = np.minimum(diagnosed + rng.integers(0, 60, len(plans)) * DAY, end_day)

    patients = np.arange(lo, hi)
    other = np.repeat(patients, rng.poisson(c.OTHER_DIAGNOSES_MEAN, hi - lo))
    other_end = pop.history_end[other]
    other_time = uniform_times(rng, other_end - 10 * 365 * DAY, other_end)
    other_day = other_time.astype("datetime64[D]")

    patient = np.concatenate([pop.plan_patient[plans][icpc], pop.plan_patient[plans][sks], other])
    code = np.concatenate(
        [
            _by_condition(rng, condition[icpc], c.ICPC_BY_CONDITION),
            _by_condition(rng, condition[sks], c.SKS_BY_CONDITION),
            choose(c.OTHER_DIAGNOSES, rng.integers(0, len(c.OTHER_DIAGNOSES), len(other))),
        ]
    )
    system = np.concatenate(
        [constant("ICPC2", icpc.sum()), constant("SKS", sks.sum()), constant("ICPC2", len(other))]
    )
    day = np.concatenate([diagnosed[icpc], sks_date[sks], other_day])
    arrived = np.concatenate(
        [received[icpc], received[sks], other_time + rng.integers(60, 86_400, len(other)) * SECOND]
    )
    arrived = np.minimum(arrived, pop.now - SECOND)
    ended = rng.random(len(patient)) < c.DIAGNOSIS_ENDED_SHARE
    end_limit = pop.history_end[patient].astype("datetime64[D]")
    ended_day = (
        day + (rng.random(len(patient)) * np.maximum((end_limit - day) // DAY, 1)).astype(np.int64) * DAY
    )
    order = np.argsort(patient, kind="stable")
    count = len(order)
    return Rows(
        {
            "DiagnoseId": first_id + np.arange(count, dtype=np.int64),
            "PatientId": pop.patient_ids[patient[order]],
            "Code": code[order],
            "CodeSystem": system[order],
            "DiagnosedDate": day[order],
            "EndedDate": np.where(ended, ended_day, np.datetime64("NaT"))[order],
            "ReceivedUtc": arrived[order],
        },
        count,
    )


_DRUG_CODES = list(c.DRUG_NAMES)


def _medicin(pop: Population, rng, lo, hi, first_id) -> Rows:
    p0, p1 = pop.plan_range(lo, hi)
    plan_patient = pop.plan_patient[p0:p1]
    plan_condition = pop.plan_condition[p0:p1]
    patient_parts, drug_parts, start_parts = [], [], []
    for condition, drugs in enumerate(c.DRUGS_BY_CONDITION):
        for atc, share in drugs:
            takes = (plan_condition == condition) & (rng.random(p1 - p0) < share)
            patient_parts.append(plan_patient[takes])
            drug_parts.append(np.full(takes.sum(), _DRUG_CODES.index(atc)))
            start_parts.append(pop.plan_diagnosed[p0:p1][takes].astype("datetime64[s]"))
    patients = np.arange(lo, hi)
    for atc, share in c.OTHER_DRUGS:
        takes = rng.random(hi - lo) < share
        patient_parts.append(patients[takes])
        drug_parts.append(np.full(takes.sum(), _DRUG_CODES.index(atc)))
        start_parts.append(pop.history_end[patients[takes]] - 10 * 365 * DAY)
    patient = np.concatenate(patient_parts)
    drug = np.concatenate(drug_parts)
    end = pop.history_end[patient]
    start = uniform_times(rng, np.minimum(np.concatenate(start_parts), end - DAY), end)
    ended = rng.random(len(patient)) < c.DRUG_ENDED_SHARE
    end_day = uniform_times(rng, start, end).astype("datetime64[D]")
    received = np.minimum(start + rng.integers(60, 2 * 86_400, len(patient)) * SECOND, pop.now - SECOND)
    order = np.argsort(patient, kind="stable")
    count = len(order)
    return Rows(
        {
            "MedicinId": first_id + np.arange(count, dtype=np.int64),
            "PatientId": pop.patient_ids[patient[order]],
            "AtcCode": choose(_DRUG_CODES, drug[order]),
            "DrugName": choose(list(c.DRUG_NAMES.values()), drug[order]),
            "StartDate": start.astype("datetime64[D]")[order],
            "EndDate": np.where(ended, end_day, np.datetime64("NaT"))[order],
            "ReceivedUtc": received[order],
        },
        count,
    )


def _ydelser(pop: Population, rng, lo, hi, first_id) -> Rows:
    p0, p1 = pop.plan_range(lo, hi)
    n = hi - lo
    start = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(start, pop.plan_patient[p0:p1] - lo, pop.history_start[p0:p1].astype(np.int64))
    end = pop.history_end[lo:hi].astype(np.int64)
    years = np.maximum(end - start, 0) / (DAYS_PER_YEAR * 86_400)
    patient_parts, code_parts = [], []
    for code, rate, _ in c.SERVICE_RATES:
        patient = np.repeat(np.arange(n), rng.poisson(rate * years))
        patient_parts.append(patient)
        code_parts.append(constant(code, len(patient)))
    patient = np.concatenate(patient_parts)
    first_day = start[patient] // 86_400
    days = np.maximum(end[patient] // 86_400 - first_day, 1)
    day = first_day + (rng.random(len(patient)) * days).astype(np.int64)
    # The chronic-care fee ends when a patient's care plan is closed.
    closed = np.zeros(n, dtype=bool)
    np.logical_or.at(closed, pop.plan_patient[p0:p1] - lo, pop.plan_closed[p0:p1])
    ending = np.flatnonzero(closed)
    patient = np.concatenate([patient, ending])
    code = np.concatenate([*code_parts, constant(c.SERVICE_CHRONIC_END, len(ending))])
    day = np.concatenate([day, end[ending] // 86_400 - rng.integers(0, 30, len(ending))])
    order = np.lexsort((day, patient))
    patient, code, day = patient[order], code[order], day[order]
    count = len(order)
    service_day = day.astype("datetime64[D]")
    received = service_day.astype("datetime64[s]") + rng.integers(8 * 3600, 2 * 86_400, count) * SECOND
    return Rows(
        {
            "YdelseId": first_id + np.arange(count, dtype=np.int64),
            "PatientId": pop.patient_ids[lo:hi][patient],
            "KlinikId": pop.clinic_ids[pop.patient_clinic[lo:hi][patient]],
            "ServiceCode": code,
            "ServiceDate": service_day,
            "ReceivedUtc": np.minimum(received, pop.now - SECOND),
        },
        count,
    )


def _egenskaber(pop: Population, rng, lo, hi, first_id) -> Rows:
    patients = np.arange(lo, hi)
    dead = patients[~np.isnat(pop.died[lo:hi])]
    opted = patients[~np.isnat(pop.opted_out[lo:hi])]
    revoked = patients[pop.opt_out_revoked[lo:hi]]
    patient = np.concatenate([dead, opted, revoked])
    code = np.concatenate(
        [
            constant(c.EGENSKAB_DECEASED, len(dead)),
            constant(c.EGENSKAB_OPTED_OUT, len(opted)),
            constant(c.EGENSKAB_OPTED_OUT, len(revoked)),
        ]
    )
    value = np.concatenate(
        [text(pop.died[dead].astype("datetime64[D]")), constant("", len(opted) + len(revoked))]
    )
    valid_from = np.concatenate([pop.died[dead], pop.opt_out_from[opted], pop.opt_out_from[revoked]])
    valid_to = np.concatenate([pop.opt_out_to[dead], pop.opt_out_to[opted], pop.opt_out_to[revoked]])
    order = np.argsort(patient, kind="stable")
    count = len(order)
    return Rows(
        {
            "EgenskabId": first_id + np.arange(count, dtype=np.int64),
            "PatientId": pop.patient_ids[patient[order]],
            "Code": code[order],
            "Value": Nullable(value[order], (np.arange(count) >= len(dead))[order]),
            "ValidFromUtc": valid_from[order],
            "ValidToUtc": valid_to[order],
        },
        count,
    )


def _patient_inkluderet(pop: Population, rng, lo, hi, first_id) -> Rows:
    p0, p1 = pop.plan_range(lo, hi)
    patient = pop.plan_patient[p0:p1]
    dead = ~np.isnat(pop.died[patient])
    opted = ~np.isnat(pop.opted_out[patient])
    closed = pop.plan_closed[p0:p1]
    created = pop.plan_created[p0:p1]
    reason = constant("included: active care plan", p1 - p0)
    reason = where(closed, "excluded: care plan closed", reason)
    reason = where(opted, "excluded: opted out", reason)
    reason = where(dead, "excluded: deceased", reason)
    changed = np.where(closed, pop.plan_updated[p0:p1], created)
    changed = np.where(opted, np.maximum(pop.opted_out[patient], created), changed)
    changed = np.where(dead, np.maximum(pop.died[patient], created), changed)
    return Rows(
        {
            "PatientId": pop.patient_ids[patient],
            "ForloebCode": choose(c.FORLOEB_CODES, pop.plan_condition[p0:p1]),
            "IsIncluded": ~(dead | opted | closed),
            "Reason": reason,
            "ChangedUtc": changed,
        },
        p1 - p0,
    )


def _relevant_from(pop: Population) -> np.datetime64:
    return np.datetime64(f"{pop.today.year - c.RELEVANT_FROM_YEARS}-01-01T00:00:00")


def _relevant_vaerdi(pop: Population, rng, lo, hi, first_id) -> Rows:
    specs = [
        (s.code, s.forloeb, s.unit, s.relevant_min, s.relevant_max, s.description) for s in c.VALUE_SPECS
    ]
    unit, low, high, description = c.HBA1C_PERCENT_RELEVANT
    specs.append((c.HBA1C_PERCENT_CODE, "ALAL22", unit, low, high, description))
    n = len(specs)
    forloeb = [s[1] or "" for s in specs]
    return Rows(
        {
            "Code": np.array([s[0] for s in specs], dtype=TEXT),
            "ActiveFromUtc": _relevant_from(pop),
            "ActiveToUtc": None,
            "ForloebCode": Nullable(np.array(forloeb, dtype=TEXT), np.array([s[1] is None for s in specs])),
            "Unit": np.array([s[2] for s in specs], dtype=TEXT),
            "DataType": "numeric",
            "MinValue": np.array([s[3] for s in specs], dtype=np.float64),
            "MaxValue": np.array([s[4] for s in specs], dtype=np.float64),
            "Description": np.array([s[5] for s in specs], dtype=TEXT),
        },
        n,
    )


def _relevant_diagnose(pop: Population, rng, lo, hi, first_id) -> Rows:
    rows = c.RELEVANT_DIAGNOSES
    return Rows(
        {
            "CodeSystem": np.array([r[0] for r in rows], dtype=TEXT),
            "Code": np.array([r[1] for r in rows], dtype=TEXT),
            "ActiveFromUtc": _relevant_from(pop),
            "ActiveToUtc": None,
            "ForloebCode": np.array([r[2] for r in rows], dtype=TEXT),
            "Description": np.array([r[3] for r in rows], dtype=TEXT),
        },
        len(rows),
    )


def _relevant_medicin(pop: Population, rng, lo, hi, first_id) -> Rows:
    rows = c.RELEVANT_MEDICATION
    return Rows(
        {
            "AtcPrefix": np.array([r[0] for r in rows], dtype=TEXT),
            "ActiveFromUtc": _relevant_from(pop),
            "ActiveToUtc": None,
            "ForloebCode": np.array([r[1] for r in rows], dtype=TEXT),
            "Description": np.array([r[2] for r in rows], dtype=TEXT),
        },
        len(rows),
    )


def _relevant_ydelse(pop: Population, rng, lo, hi, first_id) -> Rows:
    rows = [(code, description) for code, _, description in c.SERVICE_RATES]
    rows.append((c.SERVICE_CHRONIC_END, c.SERVICE_CHRONIC_END_DESCRIPTION))
    return Rows(
        {
            "ServiceCode": np.array([r[0] for r in rows], dtype=TEXT),
            "ActiveFromUtc": _relevant_from(pop),
            "ActiveToUtc": None,
            "Description": np.array([r[1] for r in rows], dtype=TEXT),
        },
        len(rows),
    )


def _session(pop: Population, rng, lo, hi, first_id) -> Rows:
    n = max(1, round((hi - lo) * c.SESSIONS_PER_PATIENT))
    live = rng.random(n) < c.SESSION_LIVE_SHARE
    clinic = rng.random(n) < c.SESSION_CLINIC_SHARE
    # Live sessions expire after the end of today, so they are live whenever today's seed runs.
    expires = np.where(
        live,
        pop.now + DAY + rng.integers(0, 12 * 3600, n) * SECOND,
        pop.now - rng.integers(1, c.SESSION_EXPIRED_WINDOW, n) * SECOND,
    )
    created = np.where(
        live,
        pop.now - rng.integers(1, 3600, n) * SECOND,
        expires - rng.integers(*c.SESSION_LIFETIME, n) * SECOND,
    )
    reference = join(where(clinic, "staff-", "app-"), letters(rng, n, USER_REF_LETTERS))
    return Rows(
        {
            "SessionId": uuids(rng, n),
            "KlinikId": Nullable(pop.clinic_ids[rng.integers(0, len(pop.clinic_ids), n)], ~clinic),
            "UserRef": reference,
            "CreatedUtc": created,
            "ExpiresUtc": expires,
        },
        n,
    )


def _log(pop: Population, rng, lo, hi, first_id) -> Rows:
    n = max(round((hi - lo) * c.LOG_ROWS_PER_PATIENT), c.LOG_MONTHS_BACK + 1)  # a row in every month
    logged = dates.log_times(rng, n, pop.today)
    levels = [name for name, _ in c.LOG_LEVELS]
    level = choose(levels, rng.choice(len(levels), n, p=[share for _, share in c.LOG_LEVELS]))
    kind = rng.integers(0, len(c.LOG_MESSAGES), n)
    number = np.where(
        np.isin(kind, [2, 9]),
        rng.integers(pop.plan_ids[0], pop.plan_ids[-1] + 1, n),
        rng.integers(0, 2000, n),
    )
    return Rows(
        {
            "LogId": first_id + np.arange(n, dtype=np.int64),
            "LoggedUtc": logged,
            "Level": level,
            "Source": choose([s for s, _ in c.LOG_MESSAGES], kind),
            "Message": join(choose([m for _, m in c.LOG_MESSAGES], kind), text(number)),
            "CorrelationId": Nullable(uuids(rng, n), rng.random(n) >= c.LOG_CORRELATED_SHARE),
        },
        n,
    )


def _flp_aim(pop: Population, rng, lo, hi, first_id) -> Rows:
    plans = len(pop.plan_ids)
    per_plan = 1 + np.minimum(rng.poisson(c.AIM_EXTRA_ROWS_MEAN, plans), c.AIM_EXTRA_ROWS_MAX)
    plan = np.repeat(np.arange(plans), per_plan)
    end = pop.history_end[pop.plan_patient[plan]]
    created = uniform_times(rng, pop.plan_created[plan], end)
    order = np.lexsort((created, plan))
    plan, created = plan[order], created[order]
    last = np.r_[plan[1:] != plan[:-1], True]
    status = np.full(len(plan), 2)
    # Only an open plan's latest report can still be waiting.
    waiting = last & ~pop.plan_closed[plan]
    status[waiting] = categorical(rng, np.tile(c.AIM_LAST_STATUS_SHARE, (waiting.sum(), 1)))
    recent = status < 2
    created[recent] = pop.now - rng.integers(c.AIM_QUEUE_DELAY_MAX + 1, c.AIM_RECENT, recent.sum()) * SECOND
    queued = created + rng.integers(1, c.AIM_QUEUE_DELAY_MAX, len(plan)) * SECOND
    delivered = queued + rng.integers(1, c.AIM_DELIVERY_DELAY_MAX, len(plan)) * SECOND
    nat = np.datetime64("NaT")
    by_time = np.argsort(created, kind="stable")  # ids grow with CreatedUtc, as identity values do
    count = len(plan)
    return Rows(
        {
            "Id": first_id + np.arange(count, dtype=np.int64),
            "ForloebsplanId": pop.plan_ids[plan][by_time],
            "Status": status[by_time],
            "CreatedUtc": created[by_time],
            "QueuedUtc": np.where(status >= 1, queued, nat)[by_time],
            "DeliveredUtc": np.where(status == 2, delivered, nat)[by_time],
        },
        count,
    )


# Load order: parents before children. Stream numbers are fixed forever.
TABLES: tuple[Table, ...] = (
    Table("PLSP.Klinik", _klinik, 1, id_column="KlinikId"),
    Table("PLSP.Patient", _patient, 2, id_column="PatientId", per_patient=True),
    Table("PLSP.Forloebsplan", _forloebsplan, 3, id_column="ForloebsplanId", per_patient=True),
    Table("PLSP.Patientvaerdier", seed_values.generate, 4, id_column="PatientvaerdiId", per_patient=True),
    Table("PLSP.Diagnose", _diagnose, 5, id_column="DiagnoseId", per_patient=True),
    Table("PLSP.Medicin", _medicin, 6, id_column="MedicinId", per_patient=True),
    Table("PLSP.Ydelser", _ydelser, 7, id_column="YdelseId", per_patient=True),
    Table("PLSP.Egenskaber", _egenskaber, 8, id_column="EgenskabId", per_patient=True),
    Table("PLSP.PatientInkluderet", _patient_inkluderet, 9, per_patient=True),
    Table("PLSP.RelevantVaerdi", _relevant_vaerdi, 10, keys=("Code", "ActiveFromUtc")),
    Table("PLSP.RelevantDiagnose", _relevant_diagnose, 11, keys=("CodeSystem", "Code", "ActiveFromUtc")),
    Table("PLSP.RelevantMedicin", _relevant_medicin, 12, keys=("AtcPrefix", "ActiveFromUtc")),
    Table("PLSP.RelevantYdelse", _relevant_ydelse, 13, keys=("ServiceCode", "ActiveFromUtc")),
    Table("PLSP.Session", _session, 14),
    Table("PLSP.Log", _log, 15, id_column="LogId"),
    Table("PLSP.FLP_AIM", _flp_aim, 16, id_column="Id"),
)
POPULATION_STREAM = 0


def chunks(table: Table, pop: Population, seed: int, first_id: int):
    """The table's rows, chunk by chunk; ids continue from first_id."""
    patients = len(pop.patient_ids)
    step = CHUNK_PATIENTS if table.per_patient else max(patients, 1)
    next_id = first_id
    for number, lo in enumerate(range(0, patients, step)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(table.stream, number)))
        rows = table.generate(pop, rng, lo, min(lo + step, patients), next_id)
        next_id += rows.count
        yield rows
