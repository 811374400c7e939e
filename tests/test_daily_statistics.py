"""Monitor.daily_statistics (issue 12): the day's numbers as one key/value table.

Rows are inserted at times relative to a chosen UTC day (several days through the
year), so the tests mean the same on every day they run.
"""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from reports.statistics import gather
from tests.support.reports import add_aim, add_run, at, busy_day

DAYS = [date(2026, 1, 1), date(2026, 3, 29), date(2026, 10, 25), date(2026, 12, 31), date(2028, 2, 29)]


def stats(db, day: date, to: date | None = None) -> list[dict]:
    with db.connect() as conn:
        return db.rows(conn, "Monitor.daily_statistics", {"FromDate": day, "ToDate": to})


def of_day(rows: list[dict], day: date | None) -> dict:
    return {(r["section"], r["subject"], r["metric"]): r["value"] for r in rows if r["day"] == day}


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_a_busy_day_reads_exactly_what_the_database_holds(db, day):
    expected = busy_day(db, day)
    got = of_day(stats(db, day), day)
    # uploads and CDA requests come from their own procedures (the next test)
    assert got == {key: value for key, value in expected.items() if key[0] not in ("uploads", "cda")}


def test_the_report_folds_in_the_days_uploads_per_lps_and_cda_requests(db):
    day = DAYS[1]
    expected = busy_day(db, day)
    with db.connect() as conn:
        gathered = gather(db, conn, day)
    for (section, subject, metric), value in expected.items():
        if section in ("uploads", "cda"):
            assert gathered.get(section, subject, metric) == value, (section, subject, metric)
    assert set(gathered.uploads) == {"990000011000016", "990000022000017"}  # not the day before's
    assert gathered.uploads["990000011000016"]["rows_updated"] == 30
    assert set(gathered.cda) == {"citizen citizen view", "dds DDS dds-retrieve"}


def test_a_day_with_no_activity_has_no_rows_of_the_day(db):
    day = date(2026, 7, 14)
    rows = stats(db, day)
    assert of_day(rows, day) == {}
    now = of_day(rows, None)
    assert now[("database", "size", "bytes")] > 1_000_000
    assert ("aim", "FLP_AIM", "pending") not in now


def test_values_of_the_moment_are_as_of_the_end_of_a_past_day(db):
    day = date(2026, 5, 5)
    busy_day(db, day)
    now = of_day(stats(db, day), None)
    assert now[("aim", "FLP_AIM", "pending")] == 3
    # The oldest pending row was created at 08:00 of the day: 16 hours before its end.
    assert now[("aim", "FLP_AIM", "oldest_pending_seconds")] == 16 * 3600
    assert now[("aim", "aim", "dead_letters")] == 1
    assert now[("conversion", "Patientvaerdier", "unconverted")] == 2
    assert now[("conversion", "Patientvaerdier", "invalid")] == 1
    assert now[("conversion", "Patientvaerdier", "rejected")] == 1


def test_a_range_gives_each_day_its_own_rows_and_the_backlog_per_day(db):
    first = date(2026, 11, 18)
    for k in range(14):
        add_run(db, "session_purge", "succeeded", at(first + timedelta(days=k), 1), 1, k)
    add_run(db, "log_cleanup", "failed", at(first + timedelta(days=3), 2), 1)
    add_aim(db, at(first, 10))  # pending from day 0 on
    add_aim(
        db, at(first, 11), status=2, delivered=at(first + timedelta(days=2), 1)
    )  # in the backlog days 0, 1
    rows = stats(db, first, first + timedelta(days=13))
    days = {r["day"] for r in rows if r["day"] is not None}
    assert days == {first + timedelta(days=k) for k in range(14)}
    for k in range(14):
        day = of_day(rows, first + timedelta(days=k))
        assert day[("jobs", "session_purge", "runs")] == 1
        assert day.get(("jobs", "log_cleanup", "failed"), 0) == (1 if k == 3 else 0)
        assert day[("aim", "FLP_AIM", "backlog")] == (2 if k < 2 else 1)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"FromDate": None}, ["p_FromDate"]),
        ({"FromDate": date(2026, 1, 10), "ToDate": date(2026, 1, 9)}, ["p_ToDate"]),
        ({"FromDate": date(2026, 1, 1), "ToDate": date(2026, 3, 4)}, ["p_ToDate"]),
    ],
)
def test_bad_parameters_are_refused_naming_them(db, params, names):
    with pytest.raises(psycopg.Error) as caught, db.connect() as conn:
        db.rows(conn, "Monitor.daily_statistics", params)
    for name in names:
        assert name in str(caught.value)
