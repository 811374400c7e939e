"""The timetable's slots: when each job is due, in UTC, right across daylight saving.

Why not the ``schedule`` library's own times. ``schedule`` 1.2 (read in its
source, ``Job._schedule_next_run``) computes ``every().day.at("02:30",
"Europe/Copenhagen")`` in that zone with pytz and corrects the offset when the
wall time falls into a gap, but then converts the result to a *naive* datetime
in the host's local zone and compares it with the naive ``datetime.now()``; and
``every(10).minutes`` adds ten minutes to that naive host time. On a host whose
own zone has daylight saving (a Danish Windows server) the autumn hour that
repeats makes every naive comparison ambiguous: an interval job waits an extra
hour, a daily job can run twice or not at all that night. It also reads the wall
clock itself, so a test cannot move time without patching ``datetime``.

So the orchestrator keeps ``schedule`` for what it does well (holding the
jobs, running the due ones once per pass) and computes the slots itself, in
UTC, from ``zoneinfo`` (the IANA database), with the clock passed in
(``SlotJob`` below replaces ``schedule``'s next-run arithmetic):

* Interval jobs (every N minutes or seconds): the slots are the multiples of N
  since the Unix epoch, in UTC. Their spacing is N whatever the local clock
  does, and every orchestrator (and pg_cron's ``*/N``) agrees on them.
* Daily jobs: one slot per Danish calendar day at the local wall time,
  converted to UTC through ``Europe/Copenhagen`` for that date: 00:00 is 23:00
  UTC the day before in winter and 22:00 UTC in summer. On the last Sunday of
  March, a time between 02:00 and 03:00 does not exist; the slot is then the
  same instant the clock would have shown before the jump (``fold=0``: 02:30 ->
  01:30 UTC = 03:30 summer time), so the job still runs once that day, an hour
  later by the wall clock. On the last Sunday of October, a time between 02:00
  and 03:00 happens twice; the slot is the first (summer-time) one, so the job
  runs once, not twice.

The service loop (service.py) asks ``next_slot`` for each job and sleeps until
the earliest; ``last_slot`` gives the slot missed during downtime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import schedule

from orchestrator.jobs import TIMEZONE, Timetable

ZONE = ZoneInfo(TIMEZONE)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a moment must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def daily_slot(local_day: date, at: str) -> datetime:
    """The UTC instant of local time ``at`` (HH:MM) on Danish calendar day ``local_day``."""
    wall = datetime.combine(local_day, time.fromisoformat(at), tzinfo=ZONE)  # fold=0: see above
    return wall.astimezone(UTC)


def next_slot(timetable: Timetable, after: datetime) -> datetime:
    """The first slot strictly after ``after`` (UTC)."""
    after = _utc(after)
    period = timetable.period_seconds
    if period:
        steps = int((after - EPOCH).total_seconds() // period) + 1
        return EPOCH + timedelta(seconds=steps * period)
    local_day = after.astimezone(ZONE).date() - timedelta(days=1)
    while True:
        slot = daily_slot(local_day, timetable.daily_at)
        if slot > after:
            return slot
        local_day += timedelta(days=1)


def last_slot(timetable: Timetable, at_or_before: datetime) -> datetime:
    """The latest slot at or before ``at_or_before`` (UTC)."""
    moment = _utc(at_or_before)
    period = timetable.period_seconds
    if period:
        steps = int((moment - EPOCH).total_seconds() // period)
        return EPOCH + timedelta(seconds=steps * period)
    local_day = moment.astimezone(ZONE).date() + timedelta(days=1)
    while True:
        slot = daily_slot(local_day, timetable.daily_at)
        if slot <= moment:
            return slot
        local_day -= timedelta(days=1)


def slots_between(timetable: Timetable, start: datetime, end: datetime) -> list[datetime]:
    """Every slot in (start, end]."""
    out, slot = [], next_slot(timetable, start)
    while slot <= _utc(end):
        out.append(slot)
        slot = next_slot(timetable, slot)
    return out


def local(moment: datetime) -> datetime:
    """A UTC instant in Danish time."""
    return _utc(moment).astimezone(ZONE)


class SlotJob(schedule.Job):
    """A ``schedule`` job whose runs are the registry timetable's UTC slots.

    ``schedule`` keeps the jobs, orders them and runs the due ones
    (``Scheduler.run_pending``: once per pass, never once per missed slot);
    this subclass only replaces how the next run is computed and compared, with
    the clock the Planner is given instead of the host's naive local time.
    """

    def __init__(self, job, planner: Planner) -> None:
        super().__init__(interval=1, scheduler=planner.scheduler)
        self.flp_job = job
        self.planner = planner

    def _schedule_next_run(self) -> None:  # schedule calls it after do() and after each run
        self.next_run = next_slot(self.flp_job.timetable, self.planner.now)

    @property
    def should_run(self) -> bool:
        return self.planner.now >= self.next_run

    def __repr__(self) -> str:
        return f"SlotJob({self.flp_job.name}, next {self.next_run:%Y-%m-%d %H:%M} UTC)"


class Planner:
    """Which jobs are due, for a clock that is passed in (the service's, or a test's).

    A ``schedule.Scheduler`` of SlotJobs. Each job waits for its next slot; when
    the clock has passed it, the job is due once for the latest slot passed (a
    loop that was late, or a machine that slept, runs a job once, never once per
    slot), and its next slot is the first one after now.
    """

    def __init__(self, jobs, now: datetime) -> None:
        self.scheduler = schedule.Scheduler()
        self.now = _utc(now)
        self._due: list[tuple[object, datetime]] = []
        for job in jobs:
            SlotJob(job, self).do(self._record_due, job)

    @property
    def next(self) -> dict[str, datetime]:
        """Each job's next slot, by job name."""
        return {j.flp_job.name: j.next_run for j in self.scheduler.jobs}

    def _record_due(self, job) -> None:
        self._due.append((job, last_slot(job.timetable, self.now)))

    def due(self, now: datetime) -> list[tuple[object, datetime]]:
        self.now = _utc(now)
        self._due = []
        self.scheduler.run_pending()
        return self._due

    def seconds_to_next(self, now: datetime) -> float:
        if not self.scheduler.jobs:
            return 3600.0
        return max(0.0, (min(j.next_run for j in self.scheduler.jobs) - _utc(now)).total_seconds())
