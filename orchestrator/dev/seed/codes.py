"""What the synthetic population is made of: codes, proportions, rates and names.

Codes are the ones in docs/domain (NPU, MedCom, SKS, ICPC-2, ATC, GP service
codes). Proportions and clinical figures are plausible for Danish chronic-care
patients in general practice, not taken from a register: they make the data
look and behave like production data for the jobs, nothing more.

Every text here ends up in COPY text as is, so none may hold a tab, newline or
backslash (checked at import).
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------
# Care plans (forløb). Index 0, 1, 2 is the condition number used everywhere.
# ---------------------------------------------------------------------------

DIABETES, KOL, HEART = 0, 1, 2
FORLOEB_CODES = ("ALAL22", "ALAL21", "ALAL02")  # type 2 diabetes, KOL (COPD), ischaemic heart disease
PRIMARY_SHARE = (0.60, 0.25, 0.15)  # first condition of a patient
SECOND_CONDITION_SHARE = 0.18  # patients with a second care plan
# Which second condition, given the first (rows: first condition).
SECOND_GIVEN_FIRST = ((0.0, 0.35, 0.65), (0.45, 0.0, 0.55), (0.75, 0.25, 0.0))

AGE_MEAN = (66.0, 70.0, 71.0)  # years, by first condition
AGE_SD = (11.0, 9.0, 10.0)  # years
AGE_MIN, AGE_MAX = 30, 98  # years; CPR century digits are valid for births 1858-2057
MALE_SHARE = (0.57, 0.47, 0.66)
ADULT_ONSET_AGE = 25  # years: no diagnosis before this age
YEARS_SINCE_DIAGNOSIS_MEAN = 8.0  # exponential, years

HISTORY_YEARS = 5  # values and services go back at most this far
PLAN_HISTORY_YEARS = 8  # care plans were created at most this long ago (when the FLP began)
PLAN_CREATION_DELAY_DAYS = 60  # at most, between diagnosis (or FLP start) and the plan
PLAN_CLOSED_SHARE = 0.02  # care plans closed for other reasons than death
PLAN_VERSION_MEAN_EXTRA = 1.5  # Poisson mean of versions after the first

DECEASED_SHARE = 0.008  # died within the last year
OPTED_OUT_SHARE = 0.025  # opted out of the care-plan programme, still opted out
OPT_OUT_REVOKED_SHARE = 0.007  # opted out once, then back in (ValidToUtc set)
EGENSKAB_DECEASED = "DOED"
EGENSKAB_OPTED_OUT = "FRAVALGT"

PATIENTS_PER_CLINIC = 1500
# CPR: day of month + 60 is the 'erstatningspersonnummer' convention, so a
# synthetic number can never be a real person's.
CPR_DAY_OFFSET = 60
SOR_PREFIX = "99"  # synthetic SOR ids: 99 + 6-digit KlinikId + SOR namespace
SOR_NAMESPACE = "1000016"

# ---------------------------------------------------------------------------
# GP practice systems (LPS): each clinic uses one, and each sends values its own way.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LpsProfile:
    name: str
    clinic_share: float
    time_format_weights: tuple[float, float, float]  # DD-MM-YYYY, YYYY-MM-DD, YYYYMMDDHHMMSS+ZZZZ
    decimal_comma: float  # share of values written with a decimal comma
    unit_in_text: float  # share of values written as '53 mmol/mol' (Unit column then empty)
    unit_missing: float  # share of other values sent without a Unit


LPS_PROFILES = (
    LpsProfile("A", 0.45, (0.90, 0.05, 0.05), 0.85, 0.04, 0.03),
    LpsProfile("B", 0.35, (0.05, 0.90, 0.05), 0.20, 0.15, 0.05),
    LpsProfile("C", 0.20, (0.05, 0.05, 0.90), 0.50, 0.02, 0.20),
)
RAW_TIME_MISSING = 0.003  # values sent without a time

# Shares of raw values that are not a plain number (the rest are).
RAW_PADDED = 0.02  # ' 7,5'
RAW_BLANK = 0.02  # '', ' ' or NULL
RAW_INVALID = 0.03  # typos and words
RAW_INTEGER_WITH_DECIMAL = 0.05  # '53,0' for a value reported as an integer
INVALID_WORDS = ("ikke målt", "se notat", "afventer svar", "hæmolyseret", "NaN", "?", "-", "n/a")

# ---------------------------------------------------------------------------
# Patient values (Patientvaerdier). Rates are measurements per year while a
# patient has a care plan that measures the code; the highest applies.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueSpec:
    code: str
    unit: str
    decimals: int
    rate: tuple[float, float, float]  # per year, by condition
    mean: tuple[float, float, float]  # patient level, by first condition
    sd: float  # between patients
    noise: float  # between measurements of one patient
    low: float  # clamp
    high: float
    log_scale: bool = False  # mean/sd/noise are of ln(value)
    below: float | None = None  # reported as '<below' under it
    above: float | None = None  # reported as '>above' over it
    paired_with: str | None = None  # measured at the same times as this code
    paired_share: float = 1.0
    relevant_min: float = 0.0
    relevant_max: float = 1000.0
    forloeb: str | None = None  # RelevantVaerdi.ForloebCode (None: every care plan)
    description: str = ""


VALUE_SPECS = (
    ValueSpec(
        "NPU27300", "mmol/mol", 0, (2.5, 0.0, 0.0), (53.0, 53.0, 53.0), 10.0, 5.0, 25, 160,
        above=150, relevant_min=10, relevant_max=250, forloeb="ALAL22",
        description="P-Hæmoglobin A1c (IFCC), mmol/mol",
    ),
    ValueSpec(
        "NPU01568", "mmol/L", 1, (1.0, 0.0, 1.5), (2.4, 2.6, 1.9), 0.7, 0.3, 0.2, 9.0,
        below=0.3, relevant_min=0.1, relevant_max=20, description="P-Kolesterol LDL, mmol/L",
    ),
    ValueSpec(
        "DNK05472", "mmHg", 0, (2.0, 1.0, 2.0), (137.0, 134.0, 132.0), 12.0, 9.0, 80, 230,
        relevant_min=40, relevant_max=300, description="Blodtryk systolisk, mmHg",
    ),
    ValueSpec(
        "DNK05473", "mmHg", 0, (0.0, 0.0, 0.0), (80.0, 79.0, 77.0), 7.0, 6.0, 40, 130,
        paired_with="DNK05472", relevant_min=20, relevant_max=200, description="Blodtryk diastolisk, mmHg",
    ),
    ValueSpec(
        "NPU03804", "kg", 1, (1.5, 1.0, 1.0), (92.0, 74.0, 84.0), 17.0, 1.5, 35, 250,
        relevant_min=10, relevant_max=400, description="Pt-Legeme; masse, kg",
    ),
    ValueSpec(
        "NPU21692", "/min", 0, (0.0, 0.5, 2.0), (74.0, 80.0, 68.0), 9.0, 7.0, 35, 180,
        relevant_min=20, relevant_max=250, description="Hjerte-Puls; frekv., /min",
    ),
    ValueSpec(
        "NPU19661", "mg/g", 0, (1.0, 0.0, 0.0), (2.6, 2.6, 2.6), 1.3, 0.4, 1, 3000,
        log_scale=True, below=5, above=300, relevant_min=0, relevant_max=5000, forloeb="ALAL22",
        description="U-Albumin/Kreatinin-ratio, mg/g",
    ),
    ValueSpec(
        "MCS88015", "L", 2, (0.0, 1.0, 0.0), (2.3, 1.8, 2.3), 0.55, 0.12, 0.3, 5.0,
        relevant_min=0.1, relevant_max=8, forloeb="ALAL21", description="FEV1, L",
    ),
    ValueSpec(
        "MCS88100", "L", 2, (0.0, 0.0, 0.0), (3.1, 2.7, 3.1), 0.7, 0.15, 0.5, 6.5,
        paired_with="MCS88015", paired_share=0.7, relevant_min=0.1, relevant_max=10, forloeb="ALAL21",
        description="FEV6, L",
    ),
)  # fmt: skip

# Some LPS still send HbA1c in DCCT per cent: this share of HbA1c measurements.
HBA1C_CODE = "NPU27300"
HBA1C_PERCENT_CODE = "NPU03835"
HBA1C_PERCENT_SHARE = 0.03
HBA1C_PERCENT_SLOPE = 0.09148  # % per mmol/mol (IFCC to DCCT master equation)
HBA1C_PERCENT_INTERCEPT = 2.152  # %
HBA1C_PERCENT_RELEVANT = ("%", 2.0, 25.0, "B-Hæmoglobin A1c (DCCT), %")

# ---------------------------------------------------------------------------
# Diagnoses, medication, services
# ---------------------------------------------------------------------------

# (code system, code, share) per condition; one ICPC-2 and sometimes one SKS code.
ICPC_BY_CONDITION = ((("T90", 1.0),), (("R95", 1.0),), (("K74", 0.35), ("K75", 0.25), ("K76", 0.40)))
SKS_BY_CONDITION = (
    (("DE11", 1.0),),
    (("DJ44", 1.0),),
    (("DI20", 0.25), ("DI21", 0.20), ("DI22", 0.03), ("DI23", 0.02), ("DI24", 0.05), ("DI25", 0.45)),
)
ICPC_SHARE = 0.95  # care plans whose diagnosis the LPS sent as ICPC-2
SKS_SHARE = 0.40  # care plans that also have the hospital's SKS code
# Other diagnoses GPs record on these patients: none of them is relevant.
OTHER_DIAGNOSES = ("K86", "T93", "L90", "P76", "K77", "T82", "L84", "N89")
OTHER_DIAGNOSES_MEAN = 0.7  # per patient, Poisson
DIAGNOSIS_ENDED_SHARE = 0.01

DRUG_NAMES = {
    "A10BA02": "Metformin",
    "A10BK01": "Dapagliflozin",
    "A10BJ02": "Liraglutid",
    "A10AE04": "Insulin glargin",
    "R03AC02": "Salbutamol",
    "R03BB04": "Tiotropium",
    "R03AL03": "Vilanterol og umeclidinium",
    "R03AK06": "Salmeterol og fluticason",
    "B01AC06": "Acetylsalicylsyre",
    "C10AA05": "Atorvastatin",
    "C10AA01": "Simvastatin",
    "C07AB02": "Metoprolol",
    "C09AA05": "Ramipril",
    "N02BE01": "Paracetamol",
    "C03CA01": "Furosemid",
}
# (ATC, share of care plans with it) per condition.
DRUGS_BY_CONDITION = (
    (("A10BA02", 0.85), ("A10BK01", 0.25), ("A10BJ02", 0.15), ("A10AE04", 0.12)),
    (("R03AC02", 0.70), ("R03BB04", 0.55), ("R03AL03", 0.20), ("R03AK06", 0.15)),
    (("B01AC06", 0.75), ("C10AA05", 0.70), ("C10AA01", 0.15), ("C07AB02", 0.40)),
)
OTHER_DRUGS = (("C09AA05", 0.30), ("N02BE01", 0.25), ("C03CA01", 0.08))  # per patient, not relevant
DRUG_ENDED_SHARE = 0.12

SERVICE_CHRONIC_END = "0133"
# (service code, per year while the patient has a care plan, description)
SERVICE_RATES = (
    ("0120", 0.95, "Årskontrol"),
    ("0101", 1.6, "Konsultation"),
    ("0105", 1.0, "E-konsultation"),
    ("0201", 1.3, "Telefonkonsultation"),
    ("4436", 0.15, "Videokonsultation"),
)
SERVICE_CHRONIC_END_DESCRIPTION = "Afslutning af kronikerforløb"

# ---------------------------------------------------------------------------
# Relevant (reference) tables beyond the value specs
# ---------------------------------------------------------------------------

RELEVANT_DIAGNOSES = (
    ("ICPC2", "T90", "ALAL22", "Diabetes type 2"),
    ("ICPC2", "R95", "ALAL21", "Kronisk obstruktiv lungesygdom"),
    ("ICPC2", "K74", "ALAL02", "Iskæmisk hjertesygdom med angina"),
    ("ICPC2", "K75", "ALAL02", "Akut myokardieinfarkt"),
    ("ICPC2", "K76", "ALAL02", "Iskæmisk hjertesygdom uden angina"),
    ("SKS", "DE11", "ALAL22", "Type 2-diabetes"),
    ("SKS", "DJ44", "ALAL21", "Kronisk obstruktiv lungesygdom"),
    ("SKS", "DI20", "ALAL02", "Angina pectoris"),
    ("SKS", "DI21", "ALAL02", "Akut myokardieinfarkt"),
    ("SKS", "DI22", "ALAL02", "Reinfarkt"),
    ("SKS", "DI23", "ALAL02", "Komplikationer efter akut myokardieinfarkt"),
    ("SKS", "DI24", "ALAL02", "Anden akut iskæmisk hjertesygdom"),
    ("SKS", "DI25", "ALAL02", "Kronisk iskæmisk hjertesygdom"),
)
RELEVANT_MEDICATION = (
    ("A10", "ALAL22", "Antidiabetika"),
    ("R03", "ALAL21", "Midler mod obstruktiv lungesygdom"),
    ("C10AA", "ALAL02", "Statiner"),
    ("B01AC", "ALAL02", "Trombocytfunktionshæmmere"),
)
RELEVANT_FROM_YEARS = 10  # agreed codes active since 1 January this many years before today

# ---------------------------------------------------------------------------
# AIM, sessions, log
# ---------------------------------------------------------------------------

AIM_EXTRA_ROWS_MEAN = 1.2  # Poisson: reports per care plan beyond the first
AIM_EXTRA_ROWS_MAX = 5
AIM_LAST_STATUS_SHARE = (0.20, 0.05, 0.75)  # last report of a plan: pending, queued, delivered
AIM_QUEUE_DELAY_MAX = 1800  # seconds: FlpAimImport runs every 30 minutes
AIM_DELIVERY_DELAY_MAX = 600  # seconds
AIM_RECENT = 86_400  # seconds: pending and queued reports are from the last day

SESSIONS_PER_PATIENT = 0.05
SESSION_LIVE_SHARE = 0.4
SESSION_CLINIC_SHARE = 0.3  # sessions of clinic staff; the rest are citizens in the app
SESSION_LIFETIME = (600, 3600)  # seconds, expired sessions
SESSION_EXPIRED_WINDOW = 2 * 86_400  # seconds before today that expired sessions ended

LOG_ROWS_PER_PATIENT = 1.5
LOG_MONTHS_BACK = 3  # months before the log's last one, the month of yesterday (dates.py)
LOG_LEVELS = (("INFO", 0.85), ("WARNING", 0.10), ("ERROR", 0.05))
LOG_CORRELATED_SHARE = 0.7
# (source, message start); a number (a count or an internal id, never a CPR) follows.
LOG_MESSAGES = (
    ("UploadData", "upload accepted, values: "),
    ("UploadData", "upload rejected values not in RelevantVaerdi: "),
    ("HentCDA", "CDA document built, care plan id "),
    ("HentVaerdier", "values returned, count "),
    ("CheckPatientInkluded", "inclusion checked, patients: "),
    ("ConvertPatientValues", "values converted: "),
    ("ConvertInvalidPatientValues", "values still invalid: "),
    ("MaintenanceJob", "expired sessions deleted: "),
    ("FlpAimImport", "AIM rows queued: "),
    ("DDS", "on-demand document retrieved, care plan id "),
)

# ---------------------------------------------------------------------------
# Names (frequent Danish names; weights fall with rank)
# ---------------------------------------------------------------------------

MALE_NAMES = (
    "Peter", "Michael", "Lars", "Jens", "Thomas", "Henrik", "Søren", "Christian", "Martin", "Jan",
    "Morten", "Jesper", "Anders", "Niels", "Per", "Hans", "Rasmus", "Ole", "Poul", "Erik",
    "Torben", "Kim", "Bent", "Flemming", "Steen", "Carsten", "Jørgen", "Kurt", "Preben", "Finn",
    "Knud", "Leif", "Bjarne", "Kaj", "John", "Allan", "Brian", "Svend", "Arne", "Mogens",
)  # fmt: skip
FEMALE_NAMES = (
    "Anne", "Kirsten", "Mette", "Hanne", "Helle", "Anna", "Susanne", "Lene", "Maria", "Marianne",
    "Inge", "Karen", "Lone", "Bente", "Camilla", "Pia", "Jette", "Louise", "Charlotte", "Tina",
    "Birgit", "Gitte", "Ulla", "Else", "Lisbeth", "Rikke", "Grethe", "Ruth", "Lis", "Birthe",
    "Dorthe", "Vibeke", "Lise", "Annette", "Jytte", "Inger", "Merete", "Tove", "Aase", "Ida",
)  # fmt: skip
MIDDLE_NAMES_MALE = ("Peter", "Erik", "Christian", "Kristian", "Juul", "Bach", "Holm")
MIDDLE_NAMES_FEMALE = ("Marie", "Louise", "Margrethe", "Elisabeth", "Kristine", "Juul", "Holm")
MIDDLE_NAME_SHARE = 0.15
FAMILY_NAMES = (
    "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen",
    "Poulsen", "Johansen", "Møller", "Mortensen", "Knudsen", "Jakobsen", "Mikkelsen", "Olesen",
    "Frederiksen", "Laursen", "Henriksen", "Lund", "Schmidt", "Eriksen", "Holm", "Kristiansen",
    "Clausen", "Simonsen", "Svendsen", "Andreasen", "Iversen", "Jeppesen", "Mogensen", "Jacobsen",
    "Vestergaard", "Nissen", "Lauridsen", "Kjær", "Jespersen", "Mohamed", "Østergaard", "Dam",
)  # fmt: skip
NAME_RANK_OFFSET = 6.0  # weight of rank r is 1 / (r + offset): a gentle Zipf curve

TOWNS = (
    "Aarhus", "Odense", "Aalborg", "Esbjerg", "Randers", "Kolding", "Horsens", "Vejle", "Roskilde",
    "Herning", "Silkeborg", "Næstved", "Fredericia", "Viborg", "Køge", "Holstebro", "Taastrup",
    "Slagelse", "Hillerød", "Sønderborg", "Svendborg", "Hjørring", "Holbæk", "Frederikshavn",
    "Nørresundby", "Ringsted", "Haderslev", "Skive", "Nykøbing Falster", "Valby", "Vanløse", "Brønshøj",
)  # fmt: skip
CLINIC_NAME_PATTERNS = ("Lægehuset {}", "Lægerne i {}", "Lægepraksis {}", "Sundhedshuset {}", "{} Lægecenter")
CLINIC_SIZE_SIGMA = 0.5  # lognormal spread of clinic list sizes


def _check_copy_safe() -> None:
    texts: list[str] = [*INVALID_WORDS, *DRUG_NAMES.values(), *MALE_NAMES, *FEMALE_NAMES, *FAMILY_NAMES]
    texts += [*TOWNS, *CLINIC_NAME_PATTERNS, *MIDDLE_NAMES_MALE, *MIDDLE_NAMES_FEMALE]
    texts += [m for _, m in LOG_MESSAGES] + [s.description for s in VALUE_SPECS]
    texts += [row[-1] for row in (*RELEVANT_DIAGNOSES, *RELEVANT_MEDICATION, *SERVICE_RATES)]
    bad = [t for t in texts if any(c in t for c in "\t\n\r\\")]
    if bad:
        raise ValueError(f"seed texts must not hold tab, newline or backslash: {bad!r}")


_check_copy_safe()
