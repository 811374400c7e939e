"""The synthetic population: clinics, patients and their care plans, as numpy arrays.

Everything per patient that more than one table needs (conditions, dates,
death, opt-out) is decided here once, so the tables agree with each other:
a deceased patient's plans are closed, has no values after death, and so on.
Row-level detail (each value, service, report) is drawn later, per table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from orchestrator.dev.seed import codes as c
from orchestrator.dev.seed import dates
from orchestrator.dev.seed.text import DAY, SECOND, TEXT, choose, date_parts, join, where

DAYS_PER_YEAR = 365.2425
RECENT_GAP = 2 * DAY  # data stops this long before today, so every ReceivedUtc is in the past


@dataclass(frozen=True)
class Population:
    today: dt.date
    now: np.datetime64  # today 00:00 UTC, datetime64[s]: the moment the data describes
    clinic_ids: np.ndarray
    clinic_lps: np.ndarray  # index into LPS_PROFILES
    patient_ids: np.ndarray
    patient_clinic: np.ndarray  # index into the clinic arrays
    birth: np.ndarray  # datetime64[D]
    male: np.ndarray
    cpr: np.ndarray  # int64, always ten digits (day of month + 60 >= 61)
    given_name: np.ndarray
    family_name: np.ndarray
    first_condition: np.ndarray
    created: np.ndarray  # datetime64[s]
    updated: np.ndarray
    died: np.ndarray  # datetime64[s], NaT when alive
    opted_out: np.ndarray  # datetime64[s], NaT unless opted out now
    opt_out_revoked: np.ndarray  # bool: opted out once, back in again
    opt_out_from: np.ndarray  # datetime64[s] for opted_out or revoked, else NaT
    opt_out_to: np.ndarray  # datetime64[s] for revoked, else NaT
    history_end: np.ndarray  # datetime64[s]: death, or RECENT_GAP before now
    plan_ids: np.ndarray  # sorted by patient
    plan_patient: np.ndarray  # index into the patient arrays, non-decreasing
    plan_condition: np.ndarray
    plan_diagnosed: np.ndarray  # datetime64[D]
    plan_created: np.ndarray  # datetime64[s]
    plan_updated: np.ndarray
    plan_closed: np.ndarray
    plan_version: np.ndarray

    @property
    def history_start(self) -> np.ndarray:
        """Per plan: when its values and services start (diagnosis, at most HISTORY_YEARS back)."""
        earliest = (self.now - np.timedelta64(round(c.HISTORY_YEARS * DAYS_PER_YEAR), "D")).astype(
            "datetime64[s]"
        )
        return np.maximum(self.plan_diagnosed.astype("datetime64[s]"), earliest)

    def plan_range(self, lo: int, hi: int) -> tuple[int, int]:
        """The plans of patients lo..hi-1 (plans are sorted by patient)."""
        found = np.searchsorted(self.plan_patient, [lo, hi])
        return int(found[0]), int(found[1])


def categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, k) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities)) * cumulative[:, -1]
    return np.minimum((u[:, None] >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def zipf_weights(n: int) -> np.ndarray:
    weights = 1.0 / (np.arange(n) + c.NAME_RANK_OFFSET)
    return weights / weights.sum()


def uniform_times(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A moment in [start, end) per row, datetime64[s]; end <= start gives start."""
    span = np.maximum((end - start) // SECOND, 1)
    return start + (rng.random(len(span)) * span).astype(np.int64) * SECOND


def build(rng: np.random.Generator, patients: int, today: dt.date, first_ids: dict[str, int]) -> Population:
    """first_ids: the first free id of PLSP.Klinik, PLSP.Patient and PLSP.Forloebsplan."""
    now = dates.moment(today)
    today_day = np.datetime64(today, "D")

    clinics = max(1, round(patients / c.PATIENTS_PER_CLINIC))
    clinic_ids = first_ids["PLSP.Klinik"] + np.arange(clinics, dtype=np.int64)
    lps_shares = np.array([p.clinic_share for p in c.LPS_PROFILES])
    clinic_lps = rng.choice(len(c.LPS_PROFILES), clinics, p=lps_shares / lps_shares.sum())
    list_sizes = rng.lognormal(0.0, c.CLINIC_SIZE_SIGMA, clinics)
    patient_clinic = rng.choice(clinics, patients, p=list_sizes / list_sizes.sum())

    first = rng.choice(3, patients, p=np.array(c.PRIMARY_SHARE) / sum(c.PRIMARY_SHARE))
    has_second = rng.random(patients) < c.SECOND_CONDITION_SHARE
    second = categorical(rng, np.array(c.SECOND_GIVEN_FIRST)[first])

    age_years = np.clip(
        rng.normal(np.array(c.AGE_MEAN)[first], np.array(c.AGE_SD)[first]), c.AGE_MIN, c.AGE_MAX
    )
    birth = today_day - np.round(age_years * DAYS_PER_YEAR).astype(np.int64) * DAY
    male = rng.random(patients) < np.array(c.MALE_SHARE)[first]
    cpr = _cpr_numbers(rng, birth, male)
    given, family = _names(rng, male)

    # Care plans: the first condition for everybody, a second for some.
    plan_patient = np.concatenate([np.arange(patients), np.flatnonzero(has_second)])
    plan_condition = np.concatenate([first, second[has_second]])
    order = np.argsort(plan_patient, kind="stable")
    plan_patient, plan_condition = plan_patient[order], plan_condition[order]
    plans = len(plan_patient)
    max_years = age_years[plan_patient] - c.ADULT_ONSET_AGE
    years_since = np.minimum(rng.exponential(c.YEARS_SINCE_DIAGNOSIS_MEAN, plans), max_years)
    diagnosed = today_day - np.round(years_since * DAYS_PER_YEAR).astype(np.int64) * DAY - DAY

    died = np.full(patients, np.datetime64("NaT"), dtype="datetime64[s]")
    dead = rng.random(patients) < c.DECEASED_SHARE
    died[dead] = uniform_times(
        rng, np.full(dead.sum(), now - 365 * DAY), np.full(dead.sum(), now - RECENT_GAP)
    )
    # Nobody is diagnosed less than a month before death.
    plan_died = died[plan_patient]
    diagnosed = np.where(
        np.isnat(plan_died), diagnosed, np.minimum(diagnosed, (plan_died - 30 * DAY).astype("datetime64[D]"))
    )
    history_end = np.where(dead, died, now - RECENT_GAP)

    flp_start = now - np.timedelta64(round(c.PLAN_HISTORY_YEARS * DAYS_PER_YEAR), "D")
    created_from = np.maximum(diagnosed.astype("datetime64[s]"), flp_start)
    delay = (rng.random(plans) * c.PLAN_CREATION_DELAY_DAYS * 86_400).astype(np.int64) * SECOND
    plan_created = np.minimum(created_from + delay, history_end[plan_patient] - DAY)
    plan_updated = uniform_times(rng, plan_created, history_end[plan_patient])
    plan_closed = dead[plan_patient] | (rng.random(plans) < c.PLAN_CLOSED_SHARE)
    plan_version = 1 + rng.poisson(c.PLAN_VERSION_MEAN_EXTRA, plans)

    # The patient row was written with the first care plan.
    starts = np.flatnonzero(np.r_[True, plan_patient[1:] != plan_patient[:-1]])
    created = np.minimum.reduceat(plan_created, starts)
    updated = np.maximum.reduceat(plan_updated, starts)

    alive = ~dead
    opted = alive & (rng.random(patients) < c.OPTED_OUT_SHARE)
    revoked = alive & ~opted & (rng.random(patients) < c.OPT_OUT_REVOKED_SHARE)
    opt_out_from = np.full(patients, np.datetime64("NaT"), dtype="datetime64[s]")
    opt_out_to = opt_out_from.copy()
    chosen = opted | revoked
    opt_out_from[chosen] = uniform_times(rng, created[chosen], np.full(chosen.sum(), now - RECENT_GAP))
    opt_out_to[revoked] = uniform_times(rng, opt_out_from[revoked], np.full(revoked.sum(), now - RECENT_GAP))
    opted_out = np.where(opted, opt_out_from, np.datetime64("NaT"))

    return Population(
        today=today,
        now=now,
        clinic_ids=clinic_ids,
        clinic_lps=clinic_lps,
        patient_ids=first_ids["PLSP.Patient"] + np.arange(patients, dtype=np.int64),
        patient_clinic=patient_clinic,
        birth=birth,
        male=male,
        cpr=cpr,
        given_name=given,
        family_name=family,
        first_condition=first,
        created=created,
        updated=updated,
        died=died,
        opted_out=opted_out,
        opt_out_revoked=revoked,
        opt_out_from=opt_out_from,
        opt_out_to=opt_out_to,
        history_end=history_end,
        plan_ids=first_ids["PLSP.Forloebsplan"] + np.arange(plans, dtype=np.int64),
        plan_patient=plan_patient,
        plan_condition=plan_condition,
        plan_diagnosed=diagnosed,
        plan_created=plan_created,
        plan_updated=plan_updated,
        plan_closed=plan_closed,
        plan_version=plan_version,
    )


def _cpr_numbers(rng: np.random.Generator, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """DDMMYY + century digit + two digits + a last digit whose parity is the sex
    (odd: male), with DD = day of month + 60. Redraws until unique."""
    year, month, day = date_parts(birth)
    # Seventh digit: 0-3 for births 1900-1999, 5-8 for 2000-2057.
    century_low = np.where(year < 2000, 0, 5)
    cpr = np.zeros(len(birth), dtype=np.int64)
    todo = np.arange(len(birth))
    while len(todo):
        seventh = century_low[todo] + rng.integers(0, 4, len(todo))
        middle = rng.integers(0, 100, len(todo))
        last = 2 * rng.integers(0, 5, len(todo)) + male[todo]
        cpr[todo] = (
            (day[todo] + c.CPR_DAY_OFFSET) * 10**8
            + month[todo] * 10**6
            + (year[todo] % 100) * 10**4
            + seventh * 1000
            + middle * 10
            + last
        )
        _, first_seen = np.unique(cpr, return_index=True)
        duplicate = np.ones(len(cpr), dtype=bool)
        duplicate[first_seen] = False
        todo = np.flatnonzero(duplicate)
    return cpr


def _names(rng: np.random.Generator, male: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(male)
    male_pick = rng.choice(len(c.MALE_NAMES), n, p=zipf_weights(len(c.MALE_NAMES)))
    female_pick = rng.choice(len(c.FEMALE_NAMES), n, p=zipf_weights(len(c.FEMALE_NAMES)))
    given = where(male, choose(c.MALE_NAMES, male_pick), choose(c.FEMALE_NAMES, female_pick))
    middle = where(
        male,
        choose(c.MIDDLE_NAMES_MALE, rng.integers(0, len(c.MIDDLE_NAMES_MALE), n)),
        choose(c.MIDDLE_NAMES_FEMALE, rng.integers(0, len(c.MIDDLE_NAMES_FEMALE), n)),
    )
    given = where(rng.random(n) < c.MIDDLE_NAME_SHARE, join(given, " ", middle), given)
    family = choose(c.FAMILY_NAMES, rng.choice(len(c.FAMILY_NAMES), n, p=zipf_weights(len(c.FAMILY_NAMES))))
    return given, family.astype(TEXT)
