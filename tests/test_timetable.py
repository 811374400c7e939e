"""The timetable across daylight saving, with a simulated clock (never the wall clock's date).

2027: summer time starts Sunday 28 March (02:00 -> 03:00) and ends Sunday 31
October (03:00 -> 02:00) in Europe/Copenhagen.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from orchestrator.jobs import JOBS, Job, Timetable
from orchestrator.scheduler.timetable import Planner, last_slot, local, next_slot, slots_between

DAILY = {
    "midnight": Timetable(daily_at="00:00"),
    "one": Timetable(daily_at="01:00"),
    "in_the_gap": Timetable(daily_at="02:30"),  # does not exist on 28 March, twice on 31 October
    "evening": Timetable(daily_at="23:30"),
}
INTERVAL = {"every_10": Timetable(every_minutes=10), "every_30": Timetable(every_minutes=30)}
STEP = timedelta(seconds=20)  # the simulated service loop's poll


def simulate(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """Run the planner over [start, end) on a simulated clock: (job, slot, clock when started)."""
    jobs = [Job(name, f"Job.{name}", name, tt) for name, tt in {**DAILY, **INTERVAL}.items()]
    clock = start
    planner = Planner(jobs, clock)
    started = []
    while clock < end:
        clock += STEP
        started += [(job.name, slot, clock) for job, slot in planner.due(clock)]
    return started


@pytest.mark.parametrize(
    "first_day, last_day",
    [(date(2027, 3, 25), date(2027, 3, 31)), (date(2027, 10, 28), date(2027, 11, 3))],
    ids=["spring_forward", "fall_back"],
)
def test_daily_jobs_run_once_per_local_day_at_local_time_and_intervals_keep_utc_spacing(first_day, last_day):
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC)
    started = simulate(start, end)

    for name, timetable in DAILY.items():
        runs = [(slot, clock) for job, slot, clock in started if job == name]
        per_day = Counter(local(slot).date() for slot, _ in runs)
        days = {local(slot).date() for slot, _ in runs}
        # Once per local day, every day of the window (the partial first and last days aside).
        assert all(count == 1 for count in per_day.values()), (name, per_day)
        inner = {first_day + timedelta(days=n) for n in range(1, (last_day - first_day).days - 1)}
        assert inner <= days, (name, sorted(inner - days))
        for slot, clock in runs:
            wall = local(slot)
            # Started within one poll of its slot.
            assert timedelta(0) <= clock - slot <= STEP
            if name == "in_the_gap" and wall.date() == date(2027, 3, 28):
                # 02:30 does not exist that day: the instant the clock would have shown, 03:30 summer time.
                assert f"{wall:%H:%M %Z}" == "03:30 CEST"
            else:
                assert f"{wall:%H:%M}" == timetable.daily_at, (name, wall)
        if name == "in_the_gap" and first_day.month == 10:
            # 02:30 happens twice on 31 October: once, the first (summer-time) one.
            (that_night,) = [local(s) for s, _ in runs if local(s).date() == date(2027, 10, 31)]
            assert f"{that_night:%H:%M %Z}" == "02:30 CEST"

    for name, timetable in INTERVAL.items():
        slots = [slot for job, slot, _ in started if job == name]
        gaps = {b - a for a, b in itertools.pairwise(slots)}
        assert gaps == {timedelta(minutes=timetable.every_minutes)}, (name, gaps)
        assert len(slots) == len(slots_between(timetable, start, end))


def test_the_transition_nights_in_utc():
    midnight = Timetable(daily_at="00:00")

    # Winter: 00:00 is 23:00 UTC the day before; summer: 22:00 UTC.
    def utc(*args):
        return datetime(2027, *args, tzinfo=UTC)

    assert next_slot(midnight, utc(3, 27, 12)) == utc(3, 27, 23)
    assert next_slot(midnight, utc(3, 28, 12)) == utc(3, 28, 22)
    assert next_slot(midnight, utc(10, 31, 12)) == utc(10, 31, 23)
    # The 23-hour local day keeps exactly one slot.
    assert len(slots_between(midnight, utc(3, 27, 23), utc(3, 28, 22))) == 1
    purge = Timetable(every_minutes=10)
    moment = datetime(2027, 10, 31, 0, 59, tzinfo=UTC)  # 02:59 summer time, just before the clock goes back
    assert next_slot(purge, moment) - moment == timedelta(minutes=1)
    assert last_slot(purge, moment) == datetime(2027, 10, 31, 0, 50, tzinfo=UTC)


def test_a_late_loop_runs_a_job_once_not_once_per_slot():
    job = Job("every_10", "Job.every_10", "x", Timetable(every_minutes=10))
    start = datetime(2027, 1, 1, tzinfo=UTC)
    planner = Planner([job], start)
    # The machine slept for an hour: six slots passed, one run, for the latest.
    assert planner.due(start + timedelta(hours=1, seconds=5)) == [(job, start + timedelta(hours=1))]
    assert planner.due(start + timedelta(hours=1, seconds=30)) == []


def test_every_registry_job_has_a_timetable_slots_and_a_grace():
    now = datetime(2027, 6, 1, tzinfo=UTC)
    for job in JOBS.values():
        assert next_slot(job.timetable, now) > now
        assert job.timetable.grace_seconds > 0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"every_minutes": 7}, {"daily_at": "25:00"}, {"every_minutes": 10, "daily_at": "01:00"}],
)
def test_a_timetable_that_cannot_be_slotted_is_refused(kwargs):
    with pytest.raises(ValueError):
        Timetable(**kwargs)


# ---------------------------------------------------------------------------
# Timetable overrides (Ops.Setting EveryMinutes / DailyAt / Enabled), as the service applies them
# ---------------------------------------------------------------------------


def test_an_override_moves_a_job_and_its_next_runs_stay_right_across_both_dst_changes():
    from orchestrator.scheduler import overrides

    rows = [
        ("archive_aim", "DailyAt", "02:30"),  # in the gap in spring, twice in autumn
        ("ops_retention", "EveryMinutes", "15"),  # a daily job becomes an interval job
        ("session_purge", "EveryMinutes", "120"),  # whole hours dividing a day
        ("log_cleanup", "Enabled", "N"),
    ]
    effective = overrides.apply(rows)
    assert effective.problems == []
    assert "log_cleanup" not in effective.enabled_jobs
    assert effective.jobs["archive_aim"].overridden == ("DailyAt",)
    assert effective.jobs["convert_values"].job == JOBS["convert_values"]  # not overridden: the registry's
    jobs = effective.enabled_jobs
    for first_day in (date(2027, 3, 27), date(2027, 10, 30)):
        start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
        clock, planner, started = start, Planner(jobs.values(), start), []
        while clock < start + timedelta(days=3):
            clock += STEP
            started += [(job.name, slot) for job, slot in planner.due(clock)]
        archive = [local(slot) for name, slot in started if name == "archive_aim"]
        assert len({wall.date() for wall in archive}) == len(archive) == 3  # once per local day
        walls = [f"{wall:%H:%M %Z}" for wall in archive]
        if first_day.month == 3:  # 28 March: 02:30 does not exist; the instant the clock jumps over
            assert walls == ["02:30 CET", "03:30 CEST", "02:30 CEST"]
        else:  # 31 October: 02:30 happens twice; the first
            assert walls == ["02:30 CEST", "02:30 CEST", "02:30 CET"]
        for name, minutes in (("ops_retention", 15), ("session_purge", 120)):
            slots = [slot for job, slot in started if job == name]
            assert {b - a for a, b in itertools.pairwise(slots)} == {timedelta(minutes=minutes)}, name


@pytest.mark.parametrize(
    "rows, job, setting",
    [
        ([("archive_aim", "DailyAt", "4:30")], "archive_aim", "DailyAt"),
        ([("archive_aim", "DailyAt", "24:00")], "archive_aim", "DailyAt"),
        ([("session_purge", "EveryMinutes", "7")], "session_purge", "EveryMinutes"),
        ([("session_purge", "EveryMinutes", "ten")], "session_purge", "EveryMinutes"),
        ([("session_purge", "EveryMinutes", "0")], "session_purge", "EveryMinutes"),
        ([("session_purge", "Enabled", "no")], "session_purge", "Enabled"),
        ([("session_purge", "Enabled", " N")], "session_purge", "Enabled"),
        (
            [("session_purge", "EveryMinutes", "5"), ("session_purge", "DailyAt", "01:00")],
            "session_purge",
            "DailyAt",
        ),
        ([("sesion_purge", "Enabled", "N")], "sesion_purge", "Enabled"),
    ],
)
def test_a_malformed_override_is_named_and_the_job_keeps_its_default(rows, job, setting):
    from orchestrator.scheduler import overrides

    effective = overrides.apply(rows)
    assert effective.problems, rows
    assert any(f"job {job}: setting {setting} = " in problem for problem in effective.problems)
    for name, state in effective.jobs.items():
        assert state.job == JOBS[name] and state.enabled and not state.overridden
