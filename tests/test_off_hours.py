"""The off-hours window of the inclusion check (issue 9, Job.off_hours_check v2): the nightly
hours and weekends of v1, Danish public holidays all day, and the days most clinics close
(a setting), all judged in Europe/Copenhagen local time. Every instant is explicit UTC: no test
depends on today's date or the clock.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tests.support.engine import CHECK, set_setting
from tests.support.sql import scalar


def easter(db, year: int) -> date:
    with db.connect() as conn:
        return db.call(conn, "Job.easter_sunday", {"Year": year}, ("EasterSunday",))["EasterSunday"]


def off_hours(db, now_utc: datetime) -> tuple[bool, str | None]:
    with db.connect() as conn:
        out = db.call(conn, "Job.off_hours_check", {"NowUtc": now_utc}, ("OffHours", "LocalTime", "Holiday"))
    return bool(out["OffHours"]), out["Holiday"]


@pytest.mark.parametrize(
    ("year", "sunday"),
    [
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2000, date(2000, 4, 23)),
        (2038, date(2038, 4, 25)),  # the latest date Easter can fall on
        (2285, date(2285, 3, 22)),  # the earliest
    ],
)
def test_easter_sunday_of_known_years(db, year, sunday):
    assert easter(db, year) == sunday


def test_a_year_outside_the_gregorian_calendar_is_refused_naming_the_parameter(db):
    with pytest.raises(Exception, match="Year"):
        easter(db, 1200)


# 2025 (Easter Sunday 20 April): every public holiday at noon local time, a time that is
# working hours on an ordinary weekday. Summer time (UTC+2) runs 30 March to 26 October.
HOLIDAYS_2025 = [
    (datetime(2025, 1, 1, 11, 0), "Nytårsdag"),
    (datetime(2025, 4, 17, 10, 0), "Skærtorsdag"),
    (datetime(2025, 4, 18, 10, 0), "Langfredag"),
    (datetime(2025, 4, 20, 10, 0), "Påskedag"),
    (datetime(2025, 4, 21, 10, 0), "2. Påskedag"),
    (datetime(2025, 5, 29, 10, 0), "Kristi Himmelfartsdag"),
    (datetime(2025, 6, 8, 10, 0), "Pinsedag"),
    (datetime(2025, 6, 9, 10, 0), "2. Pinsedag"),
    (datetime(2025, 12, 25, 11, 0), "Juledag"),
    (datetime(2025, 12, 26, 11, 0), "2. Juledag"),
    # No public holidays, but most clinics close (OffHoursClosingDays, default Y).
    (datetime(2025, 6, 5, 10, 0), "Grundlovsdag (closing day)"),
    (datetime(2025, 12, 24, 11, 0), "Juleaftensdag (closing day)"),
    (datetime(2025, 12, 31, 11, 0), "Nytårsaftensdag (closing day)"),
]


@pytest.mark.parametrize(("now", "holiday"), HOLIDAYS_2025, ids=[h for _, h in HOLIDAYS_2025])
def test_every_holiday_of_2025_is_off_hours_all_day(db, now, holiday):
    assert off_hours(db, now) == (True, holiday)


def test_a_holiday_counts_from_local_midnight_to_local_midnight(db):
    # Langfredag 2025 is 18 April local: 17 April 22:00 UTC to 18 April 22:00 UTC (summer time).
    assert off_hours(db, datetime(2025, 4, 17, 22, 0)) == (True, "Langfredag")
    assert off_hours(db, datetime(2025, 4, 18, 21, 59)) == (True, "Langfredag")
    # Nytårsdag 2025: from 31 December 2024 23:00 UTC (winter time): the closing day before it.
    assert off_hours(db, datetime(2024, 12, 31, 22, 59)) == (True, "Nytårsaftensdag (closing day)")
    assert off_hours(db, datetime(2024, 12, 31, 23, 0)) == (True, "Nytårsdag")


def test_store_bededag_is_a_holiday_until_2023_only(db):
    assert off_hours(db, datetime(2023, 5, 5, 10, 0)) == (True, "Store Bededag")  # Easter 2023: 9 April
    # Abolished from 2024: 26 April 2024 is a working Friday.
    assert off_hours(db, datetime(2024, 4, 26, 10, 0)) == (False, None)


def test_an_ordinary_weekday_is_working_hours_in_the_day(db):
    assert off_hours(db, datetime(2025, 4, 22, 10, 0)) == (False, None)  # Tuesday after Easter, 12:00 local
    assert off_hours(db, datetime(2025, 6, 4, 10, 0)) == (False, None)  # the day before Grundlovsdag


def test_the_closing_days_are_a_setting(db):
    set_setting(db, CHECK.name, "OffHoursClosingDays", "N")
    assert off_hours(db, datetime(2025, 6, 5, 10, 0)) == (False, None)  # Grundlovsdag: a working Thursday
    assert off_hours(db, datetime(2025, 12, 25, 11, 0)) == (True, "Juledag"), "public holidays stay"
    set_setting(db, CHECK.name, "OffHoursClosingDays", "maybe")
    with pytest.raises(Exception, match="OffHoursClosingDays"):
        off_hours(db, datetime(2025, 6, 4, 10, 0))


def test_the_migration_sets_the_closing_days_on(db):
    value = "SELECT Value FROM Ops.Setting WHERE JobName = 'check_inclusion' AND Name = 'OffHoursClosingDays'"
    assert scalar(db, value) == "Y"


@pytest.mark.parametrize(
    ("now", "off"),
    [
        # Friday 28 March 2025, winter time (UTC+1): 21:59 / 22:00 local.
        (datetime(2025, 3, 28, 20, 59), False),
        (datetime(2025, 3, 28, 21, 0), True),
        # Monday 31 March 2025, summer time since Sunday (UTC+2): 05:59 / 06:00 and 21:59 / 22:00 local.
        (datetime(2025, 3, 31, 3, 59), True),
        (datetime(2025, 3, 31, 4, 0), False),
        (datetime(2025, 3, 31, 19, 59), False),
        (datetime(2025, 3, 31, 20, 0), True),
        (datetime(2025, 3, 31, 21, 0), True),  # the UTC instant that was 22:00 on Friday is 23:00 now
        # Friday 24 October 2025, summer time: 22:00 local is 20:00 UTC.
        (datetime(2025, 10, 24, 19, 59), False),
        (datetime(2025, 10, 24, 20, 0), True),
        # Monday 27 October 2025, winter time again since Sunday: 06:00 local is 05:00 UTC.
        (datetime(2025, 10, 27, 4, 59), True),
        (datetime(2025, 10, 27, 5, 0), False),
    ],
)
def test_the_window_edges_follow_local_time_across_daylight_saving_changes(db, now, off):
    assert off_hours(db, now) == (off, None)


def test_the_night_of_a_daylight_saving_change_itself(db):
    # Weekends out of the window, so only the clock decides on the Sundays of the changes.
    set_setting(db, CHECK.name, "OffHoursWeekends", "N")
    assert off_hours(db, datetime(2025, 3, 30, 3, 59)) == (True, None)  # 05:59 CEST (02:00-03:00 skipped)
    assert off_hours(db, datetime(2025, 3, 30, 4, 0)) == (False, None)  # 06:00 CEST
    assert off_hours(db, datetime(2025, 10, 26, 4, 59)) == (True, None)  # 05:59 CET (02:00-03:00 twice)
    assert off_hours(db, datetime(2025, 10, 26, 5, 0)) == (False, None)  # 06:00 CET


def test_a_large_relevant_change_goes_through_on_a_holiday_in_working_hours(db):
    """The window rule of relevant_changes_mark and inclusion_recompute uses the holidays."""
    from tests.support.engine import make_patients, quick, settle_relevant_changes

    quick(db)
    settle_relevant_changes(db)
    set_setting(db, CHECK.name, "RelevantChangeMaxPatients", "0")
    make_patients(db, 1)
    with db.connect() as conn:
        weekday = db.call(
            conn, "Job.inclusion_recompute", {"NowUtc": datetime(2025, 4, 22, 10, 0), "Execute": "Y"},
            ("Patients", "Result"),
        )  # fmt: skip
    assert weekday["Result"] == "waiting"
    with db.connect() as conn:
        out = db.call(
            conn, "Job.relevant_changes_mark", {"NowUtc": datetime(2025, 4, 18, 10, 0), "Execute": "N"},
            ("Changes", "Patients", "Waiting"),
        )  # fmt: skip
    assert out["Waiting"] == 0


def test_the_migration_applies_the_inclusion_v2_procedures(db):
    source = "SELECT prosrc FROM pg_proc WHERE proname = ? AND pronamespace = 'job'::regnamespace"
    assert "inclusion_evidence" in scalar(db, source, ("check_inclusion_batch",))
    assert "p_Holiday" in scalar(db, source, ("relevant_changes_mark",))
