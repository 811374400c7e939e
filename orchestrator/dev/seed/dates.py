"""What ``today`` means to the seed, as pure functions of the date.

The data describes the moment ``today`` 00:00 UTC, called *now*: every event
the seed writes lies before it (only the expiry times of live sessions lie
after). The log covers ``LOG_MONTHS_BACK + 1`` calendar months up to now, and
every one of them holds rows. The last of them is the month of the last day
before now: today's month on every day but the first of a month, when today
has no past yet and the last month with log rows is the previous one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from orchestrator.dev.seed import codes as c
from orchestrator.dev.seed.text import SECOND

MONTH = np.timedelta64(1, "M")


def moment(today: dt.date) -> np.datetime64:
    """Now: today 00:00 UTC, datetime64[s]."""
    return np.datetime64(today, "s")


def log_months(today: dt.date) -> np.ndarray:
    """The months the log covers, oldest first, datetime64[M]."""
    last = (moment(today) - SECOND).astype("datetime64[M]")
    return last - np.arange(c.LOG_MONTHS_BACK, -1, -1) * MONTH


def log_times(rng: np.random.Generator, n: int, today: dt.date) -> np.ndarray:
    """``n`` sorted log times, datetime64[s], in the log's months and before now.

    Every month gets one row, the rest are spread by the time each month has
    before now; ``n`` must be at least the number of months.
    """
    months = log_months(today)
    if n < len(months):
        raise ValueError(f"the log needs at least {len(months)} rows, one per month; got {n}")
    starts = months.astype("datetime64[s]")
    ends = np.minimum((months + MONTH).astype("datetime64[s]"), moment(today))
    seconds = ((ends - starts) // SECOND).astype(np.int64)  # at least one day each
    per_month = 1 + rng.multinomial(n - len(months), seconds / seconds.sum())
    offsets = (rng.random(n) * np.repeat(seconds, per_month)).astype(np.int64)
    return np.sort(np.repeat(starts, per_month) + offsets * SECOND)
