"""The synthetic data generator behind ``flp seed``, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import uuid

import numpy as np
import psycopg
import pytest

from orchestrator.db.connection import Database
from orchestrator.db.databases import create_database, drop_database
from orchestrator.dev import seed
from orchestrator.dev.seed import dates
from orchestrator.dev.seed import population as seed_population
from orchestrator.dev.seed.codes import LOG_MONTHS_BACK
from orchestrator.dev.seed.producer import SeedGeneratorError, copy_texts
from orchestrator.dev.seed.rows import Nullable, Rows, python_rows
from orchestrator.dev.seed.tables import TABLES, chunks
from tests.conftest import TEMPLATE_NAME
from tests.support.sql import execute, fetch_all, scalar

TODAY = dt.date(2025, 6, 1)
PATIENTS = 300
SEEDED_TABLES = [t.name for t in TABLES]
# A plain number as an LPS may write it, optionally with a comparator, padding or a unit.
NUMBER = r"[<>]?\d+(?:[.,]\d+)?"
UNITS = ("mmol/mol", "mmol/L", "mmHg", "kg", "/min", "mg/g", "L", "%")
VALID_RAW = re.compile(rf"^ ?{NUMBER}(?: (?:{'|'.join(map(re.escape, UNITS))}))?$")
RAW_TIME_FORMATS = {
    "DD-MM-YYYY": re.compile(r"^\d{2}-\d{2}-\d{4}$"),
    "YYYY-MM-DD": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "YYYYMMDDHHMMSS+ZZZZ": re.compile(r"^\d{14}\+0[12]00$"),
}


@pytest.fixture
def seeded(db) -> tuple[Database, dict[str, int]]:
    return db, seed.seed(db, patients=PATIENTS, seed=7, today=TODAY)


@pytest.fixture
def other_db(pg_server_url, template_db_url):
    """A second fresh copy of the migrated template, beside ``db``."""
    name = f"flp_t_{uuid.uuid4().hex[:12]}"
    other = Database(create_database(pg_server_url, name, template=TEMPLATE_NAME))
    yield other
    other.engine.dispose()
    drop_database(pg_server_url, name)


def digests(db: Database) -> dict[str, str]:
    """Per seeded table, a digest of every row (ordered by its text, so no key is needed)."""
    return {
        table: scalar(
            db, f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} AS t"
        )
        for table in SEEDED_TABLES
    }


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def log_months(db: Database) -> set[dt.datetime]:
    return {m for (m,) in fetch_all(db, "SELECT DISTINCT date_trunc('month', LoggedUtc) FROM PLSP.Log")}


def seed_log_months(today: dt.date) -> set[dt.datetime]:
    return {midnight(m) for m in dates.log_months(today).astype("datetime64[D]").tolist()}


def schema_objects(db: Database) -> list[tuple]:
    return fetch_all(
        db,
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'plsp'::regnamespace "
        "UNION ALL SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'plsp' "
        "ORDER BY 1, 2",
    )


def test_same_seed_and_today_give_identical_rows_and_another_seed_differs(db, other_db):
    seed.seed(db, patients=120, seed=3, today=TODAY)
    seed.seed(other_db, patients=120, seed=3, today=TODAY)
    first = digests(db)
    assert first == digests(other_db)

    execute(other_db, "TRUNCATE " + ", ".join(SEEDED_TABLES) + " CASCADE")  # and what refers to them
    seed.seed(other_db, patients=120, seed=4, today=TODAY)
    different = digests(other_db)
    for table in ("PLSP.Patient", "PLSP.Forloebsplan", "PLSP.Patientvaerdier", "PLSP.FLP_AIM"):
        assert different[table] != first[table], table


def test_counts_are_the_rows_written_and_the_schema_is_intact(db):
    before = schema_objects(db)
    counts = seed.seed(db, patients=PATIENTS, seed=7, today=TODAY)

    assert list(counts) == SEEDED_TABLES
    for table, rows in counts.items():
        assert scalar(db, f"SELECT count(*) FROM {table}") == rows, table
        assert rows > 0, table
    assert counts["PLSP.Patient"] == PATIENTS
    # Foreign keys and indexes dropped for the load are back, unchanged.
    assert schema_objects(db) == before
    # The identity sequences were moved past the seeded ids: a plain insert works.
    new_id = scalar(
        db, "INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name) VALUES ('x', '1', 'y') RETURNING KlinikId"
    )
    assert new_id > scalar(db, "SELECT max(KlinikId) FROM PLSP.Klinik WHERE SorCode <> 'x'")
    assert (
        scalar(db, "INSERT INTO PLSP.FLP_AIM (ForloebsplanId) VALUES (1) RETURNING Id")
        == counts["PLSP.FLP_AIM"] + 1
    )


def test_cpr_numbers_are_synthetic_unique_and_agree_with_birth_date_and_sex(seeded):
    db, _ = seeded
    rows = fetch_all(db, "SELECT Cpr, BirthDate, Sex FROM PLSP.Patient")
    cprs = [cpr for cpr, _, _ in rows]
    assert len(set(cprs)) == len(cprs) == PATIENTS
    for cpr, birth, sex in rows:
        assert re.fullmatch(r"\d{10}", cpr)
        assert 61 <= int(cpr[:2]) <= 91  # day of month + 60: never a real person's number
        assert (int(cpr[:2]) - 60, int(cpr[2:4]), int(cpr[4:6])) == (birth.day, birth.month, birth.year % 100)
        assert sex == ("M" if int(cpr[-1]) % 2 else "F")
        assert 30 <= (TODAY - birth).days / 365.25 <= 99


def test_conditions_and_codes_come_in_the_designed_proportions(seeded):
    db, counts = seeded
    plans = dict(fetch_all(db, "SELECT ForloebCode, count(*) FROM PLSP.Forloebsplan GROUP BY 1"))
    assert plans["ALAL22"] > plans["ALAL21"] > 0 and plans["ALAL22"] > plans["ALAL02"] > 0
    assert 0.45 <= plans["ALAL22"] / sum(plans.values()) <= 0.68
    two_plans = scalar(
        db,
        "SELECT count(*) FROM (SELECT PatientId FROM PLSP.Forloebsplan GROUP BY 1 HAVING count(*) = 2) AS t",
    )
    assert 0.08 <= two_plans / PATIENTS <= 0.28
    assert counts["PLSP.Klinik"] == 1  # one clinic per 1,500 patients, at least one
    # Values only for the conditions that measure them.
    assert not fetch_all(
        db,
        "SELECT v.Code FROM PLSP.Patientvaerdier AS v WHERE v.Code IN ('NPU27300', 'NPU19661', 'MCS88015') "
        "AND NOT EXISTS (SELECT 1 FROM PLSP.Forloebsplan AS f WHERE f.PatientId = v.PatientId "
        "AND f.ForloebCode = CASE WHEN v.Code = 'MCS88015' THEN 'ALAL21' ELSE 'ALAL22' END)",
    )
    # Several years of values per patient.
    per_patient = counts["PLSP.Patientvaerdier"] / PATIENTS
    assert 15 <= per_patient <= 60
    # Every relevant diagnosis and drug points to a care plan the patient has.
    for query in (
        "SELECT d.PatientId, r.ForloebCode FROM PLSP.Diagnose AS d JOIN PLSP.RelevantDiagnose AS r "
        "ON r.CodeSystem = d.CodeSystem AND r.Code = d.Code",
        "SELECT m.PatientId, r.ForloebCode FROM PLSP.Medicin AS m JOIN PLSP.RelevantMedicin AS r "
        "ON left(m.AtcCode, length(r.AtcPrefix)) = r.AtcPrefix",
    ):
        orphans = fetch_all(
            db,
            f"SELECT * FROM ({query}) AS x WHERE NOT EXISTS (SELECT 1 FROM PLSP.Forloebsplan AS f "
            "WHERE f.PatientId = x.PatientId AND f.ForloebCode = x.ForloebCode)",
        )
        assert orphans == []
    services = dict(fetch_all(db, "SELECT ServiceCode, count(*) FROM PLSP.Ydelser GROUP BY 1"))
    assert services["0120"] > services.get("4436", 0)
    assert set(services) <= {code for (code,) in fetch_all(db, "SELECT ServiceCode FROM PLSP.RelevantYdelse")}


def test_raw_values_and_times_look_like_what_the_lps_send(seeded):
    db, _ = seeded
    rows = fetch_all(
        db, "SELECT RawValue, RawTime, ConversionStatus, ValueNumeric, MeasuredUtc FROM PLSP.Patientvaerdier"
    )
    raw = [r[0] for r in rows]
    n = len(raw)
    assert {r[2:] for r in rows} == {(0, None, None)}  # nothing converted yet
    present = [v for v in raw if v is not None and v.strip()]
    assert any(re.fullmatch(r"\d+,\d+", v) for v in present)  # decimal comma
    assert any(re.fullmatch(r"\d+\.\d+", v) for v in present)  # decimal point
    assert any(v.startswith("<") for v in present) and any(v.startswith(">") for v in present)
    assert any(re.fullmatch(r"\S+ (mmol/mol|mmHg|kg|mg/g|mmol/L|L)", v) for v in present)  # unit in the text
    blanks = sum(v is None or not v.strip() for v in raw)
    assert 0.005 <= blanks / n <= 0.05
    assert None in raw and "" in raw
    invalid = [v for v in present if not VALID_RAW.match(v)]
    assert 0.01 <= len(invalid) / n <= 0.06, invalid[:20]
    times = [r[1] for r in rows if r[1] is not None]
    seen = {name for name, pattern in RAW_TIME_FORMATS.items() for t in times if pattern.match(t)}
    assert seen == set(RAW_TIME_FORMATS)
    assert all(any(p.match(t) for p in RAW_TIME_FORMATS.values()) for t in times)
    assert len(times) < n  # a few arrive without a time


def test_times_are_relative_to_today_and_the_state_is_consistent(seeded):
    db, counts = seeded
    today = dt.datetime(TODAY.year, TODAY.month, TODAY.day)
    for table, column in (
        ("PLSP.Patientvaerdier", "ReceivedUtc"),
        ("PLSP.Ydelser", "ReceivedUtc"),
        ("PLSP.Forloebsplan", "UpdatedUtc"),
        ("PLSP.Diagnose", "ReceivedUtc"),
    ):
        assert scalar(db, f"SELECT max({column}) FROM {table}") < today, table
    # TODAY is the first of June: at its 00:00 June has no past yet, so the log ends with May.
    assert log_months(db) == {dt.datetime(2025, m, 1) for m in (2, 3, 4, 5)}
    expired, live = fetch_all(
        db,
        "SELECT count(*) FILTER (WHERE ExpiresUtc < ?), count(*) FILTER (WHERE ExpiresUtc > ?) "
        "FROM PLSP.Session",
        (today, today + dt.timedelta(days=1)),
    )[0]
    assert expired > 0 and live > 0 and expired + live == counts["PLSP.Session"]
    assert not fetch_all(db, "SELECT 1 FROM PLSP.Session WHERE UserRef ~ '[0-9]{10}'")  # never a CPR
    aim = dict(
        fetch_all(
            db,
            "SELECT Status, count(*) FROM PLSP.FLP_AIM WHERE CASE Status "
            "WHEN 0 THEN QueuedUtc IS NULL AND DeliveredUtc IS NULL "
            "WHEN 1 THEN QueuedUtc < ? AND DeliveredUtc IS NULL "
            "ELSE CreatedUtc < QueuedUtc AND QueuedUtc < DeliveredUtc AND DeliveredUtc < ? END "
            "GROUP BY Status",
            (today, today),
        )
    )
    assert sum(aim.values()) == counts["PLSP.FLP_AIM"]
    assert aim[2] > aim[0] > 0 and aim[1] > 0
    # The deceased: plans closed, excluded, no data after death.
    assert not fetch_all(
        db,
        "SELECT 1 FROM PLSP.Egenskaber AS e JOIN PLSP.Forloebsplan AS f USING (PatientId) "
        "JOIN PLSP.PatientInkluderet AS i USING (PatientId, ForloebCode) "
        "WHERE e.Code = 'DOED' AND (f.Status <> 2 OR i.IsIncluded)",
    )
    assert (
        scalar(db, "SELECT count(*) FROM PLSP.PatientInkluderet WHERE IsIncluded")
        > 0.8 * counts["PLSP.PatientInkluderet"]
    )
    assert scalar(db, "SELECT count(*) FROM PLSP.Egenskaber WHERE Code = 'FRAVALGT'") > 0


def test_default_today_is_the_current_utc_date(db):
    before = dt.datetime.now(dt.UTC).date()
    seed.seed(db, patients=40, seed=1)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    after = now.date()
    # The seed's today is the UTC date at its start or, across midnight, at its end.
    assert log_months(db) in (seed_log_months(before), seed_log_months(after))
    for table, column in (("PLSP.Log", "LoggedUtc"), ("PLSP.Patientvaerdier", "ReceivedUtc")):
        assert scalar(db, f"SELECT max({column}) FROM {table}") < midnight(after), table
    # Live sessions expire from tomorrow 00:00 on, so they are live all through today.
    live_from = scalar(db, "SELECT min(ExpiresUtc) FROM PLSP.Session WHERE ExpiresUtc > ?", (now,))
    assert midnight(before) + dt.timedelta(days=1) <= live_from < midnight(after) + dt.timedelta(days=2)


FIRST_IDS = {"PLSP.Klinik": 1, "PLSP.Patient": 1, "PLSP.Forloebsplan": 1}
# Every day of a common year (2027) and of a leap year (2028).
EVERY_DAY = [dt.date(2027, 1, 1) + dt.timedelta(days=i) for i in range(365 + 366)]


def test_the_log_covers_its_months_and_nothing_after_now_on_every_day_of_two_years():
    assert EVERY_DAY[-1] == dt.date(2028, 12, 31) and dt.date(2028, 2, 29) in EVERY_DAY
    rng = np.random.default_rng(1)
    problems = []
    for today in EVERY_DAY:
        now = np.datetime64(today, "s")
        months = dates.log_months(today)
        if len(months) != LOG_MONTHS_BACK + 1 or not (np.diff(months) == np.timedelta64(1, "M")).all():
            problems.append((today, "months", months))
        # The last month is the one of the last day before now: today's, except on the 1st.
        if months[-1] != np.datetime64(today - dt.timedelta(days=1), "M"):
            problems.append((today, "last month", months[-1]))
        if today.day > 1 and months[-1] != np.datetime64(today, "M"):
            problems.append((today, "current month missing", months[-1]))
        for n in (len(months), 60):
            times = dates.log_times(rng, n, today)
            if len(times) != n or (np.diff(times) < np.timedelta64(0, "s")).any():
                problems.append((today, n, "not n sorted times"))
            if times.min() < months[0].astype("datetime64[s]") or times.max() >= now:
                problems.append((today, n, "outside the months or not before now", times.min(), times.max()))
            if set(times.astype("datetime64[M]").tolist()) != set(months.tolist()):
                problems.append((today, n, "a month without rows", times))
    assert problems == [], problems[:5]


@pytest.mark.slow
def test_every_table_describes_the_past_of_today_on_every_day_of_two_years():
    """The whole generator, per day: no time at or after now, except live sessions'
    expiry (from tomorrow 00:00 on); the log has rows in exactly its months."""
    problems = []
    for number, today in enumerate(EVERY_DAY):
        now = np.datetime64(today, "s")
        population = seed_population.build(np.random.default_rng(number), 40, today, FIRST_IDS)
        for table in TABLES:
            for rows in chunks(table, population, number, 1):
                for column, values in rows.columns.items():
                    values = values.values if isinstance(values, Nullable) else np.asarray(values)
                    if not np.issubdtype(values.dtype, np.datetime64):
                        continue
                    times = values[~np.isnat(values)].astype("datetime64[s]")
                    if (table.name, column) == ("PLSP.Session", "ExpiresUtc"):
                        times = times[times < now + np.timedelta64(1, "D")]
                    if times.size and times.max() >= now:
                        problems.append((today, table.name, column, times.max()))
                if table.name == "PLSP.Log":
                    logged = set(rows.columns["LoggedUtc"].astype("datetime64[M]").tolist())
                    if logged != set(dates.log_months(today).tolist()):
                        problems.append((today, "PLSP.Log months", sorted(logged)))
    assert problems == [], problems[:5]


def test_a_second_load_is_refused_and_writes_nothing(seeded):
    db, counts = seeded
    with pytest.raises(seed.SeedError, match="already holds 300 patients"):
        seed.seed(db, patients=10, seed=8, today=TODAY)
    for table, rows in counts.items():
        assert scalar(db, f"SELECT count(*) FROM {table}") == rows, table


def test_a_load_that_fails_late_leaves_nothing_behind(db):
    before = schema_objects(db)
    # The last table refuses every row, after all the others were loaded.
    execute(db, "ALTER TABLE PLSP.FLP_AIM ADD CONSTRAINT CK_Test_Refuse CHECK (Id < 0) NOT VALID")
    with pytest.raises(psycopg.errors.CheckViolation):
        seed.seed(db, patients=50, seed=1, today=TODAY)
    for table in SEEDED_TABLES:
        assert scalar(db, f"SELECT count(*) FROM {table}") == 0, table
    execute(db, "ALTER TABLE PLSP.FLP_AIM DROP CONSTRAINT CK_Test_Refuse")
    assert schema_objects(db) == before


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"patients": 0}, "patients"),
        ({"patients": -5}, "patients"),
        ({"patients": 2.5}, "patients"),
        ({"patients": True}, "patients"),
        ({"patients": "100"}, "patients"),
        ({"patients": 10, "seed": -1}, "seed"),
        ({"patients": 10, "seed": "one"}, "seed"),
        ({"patients": 10, "today": dt.datetime(2025, 6, 1, 12, 0)}, "today"),
        ({"patients": 10, "today": "2025-06-01"}, "today"),
        ({"patients": 10, "today": dt.date(1999, 12, 31)}, "today"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument_before_any_connection(arguments, named):
    # Nothing listens there: reaching the database would raise a connection error instead.
    nowhere = Database("postgresql+psycopg://nobody@127.0.0.1:9/none")
    with pytest.raises(seed.SeedError, match=rf"^{named} must be"):
        seed.seed(nowhere, **arguments)


def test_rows_for_executemany_carry_none_for_null_and_python_values():
    rows = Rows(
        {
            "Id": np.array([1, 2]),
            "Text": Nullable(np.array(["a", "b"], dtype=np.dtypes.StringDType()), np.array([False, True])),
            "At": np.array(["2025-01-02T03:04:05", "NaT"], dtype="datetime64[s]"),
            "Day": np.array(["2025-01-02", "2025-01-03"], dtype="datetime64[D]"),
            "From": np.datetime64("2015-01-01T00:00:00"),
            "Empty": None,
        },
        2,
    )
    assert python_rows(rows) == [
        (1, "a", dt.datetime(2025, 1, 2, 3, 4, 5), dt.date(2025, 1, 2), dt.datetime(2015, 1, 1), None),
        (2, None, None, dt.date(2025, 1, 3), dt.datetime(2015, 1, 1), None),
    ]


def _texts(reader, tables) -> list[tuple[str | None, bytes]]:
    out = []
    for _ in tables:
        columns, texts = reader.next_table()
        out.append((columns, b"".join(bytes(t) for t in texts)))
    return out


def test_the_child_process_makes_the_same_copy_text_as_in_process_generation(monkeypatch):
    population = seed_population.build(
        np.random.default_rng(1), 30, TODAY, {"PLSP.Klinik": 1, "PLSP.Patient": 1, "PLSP.Forloebsplan": 1}
    )
    tables = list(TABLES)

    def make(table):
        return chunks(table, population, 5, 1)

    with copy_texts(tables, make) as reader:
        forked = _texts(reader, tables)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with copy_texts(tables, make) as reader:
        in_process = _texts(reader, tables)
    assert forked == in_process
    patients = dict(zip([t.name for t in tables], forked, strict=True))["PLSP.Patient"]
    assert patients[1].count(b"\n") == 30


def test_a_generator_failure_in_the_child_surfaces_with_its_traceback():
    def broken(table):
        raise ZeroDivisionError("boom in the generator")
        yield

    with (
        pytest.raises(SeedGeneratorError, match="ZeroDivisionError: boom in the generator"),
        copy_texts(list(TABLES), broken) as reader,
    ):
        reader.next_table()
