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
