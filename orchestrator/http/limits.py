"""Full-resync protection in the service: a token bucket per LPS and a global concurrency limit.

Both are in-process: behind several instances each instance has its own
buckets and its own limit, so the effective limit is the per-instance limit
times the number of instances (docs/http.md says how to size them). Beyond
them the service answers 429 with ``Retry-After``, before touching the database.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from orchestrator.http.problems import ProblemError


@dataclass(frozen=True)
class Limits:
    rate_per_second: float = 5.0  # sustained uploads per LPS (SOR code)
    burst: int = 20  # uploads an LPS may send at once after a quiet spell
    concurrency: int = 8  # uploads in the database at the same time, all LPS together
    bulk_rows: int = 500  # an upload with more rows than this is bulk work (a resync) ...
    bulk_concurrency: int = 1  # ... and only this many run at once, so small uploads keep a core


class TokenBuckets:
    """One bucket per key, refilled continuously; thread-safe."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            tokens, since = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class Guard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.buckets = TokenBuckets(limits.rate_per_second, limits.burst)
        self.slots = threading.BoundedSemaphore(limits.concurrency)
        self.bulk_slots = threading.BoundedSemaphore(limits.bulk_concurrency)

    def admit(self, sor: str, rows: int = 0) -> bool:
        """Admit one upload of ``rows`` rows or raise a 429 problem; True when it is bulk work
        (pass it back to ``release``)."""
        wait = self.buckets.take(sor)
        if wait > 0:
            raise ProblemError(
                429,
                "Too many requests",
                f"this clinic's upload rate is {self.limits.rate_per_second:g} per second",
                kind="rate-limited",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        bulk = rows > self.limits.bulk_rows
        if bulk and not self.bulk_slots.acquire(blocking=False):
            raise ProblemError(
                429,
                "Too many requests",
                f"another bulk upload (over {self.limits.bulk_rows} rows) is running: send it later",
                kind="bulk-busy",
                headers={"Retry-After": "1"},
            )
        if not self.slots.acquire(blocking=False):
            if bulk:
                self.bulk_slots.release()
            raise ProblemError(
                429,
                "Too many requests",
                "the service is at its limit of concurrent uploads",
                kind="busy",
                headers={"Retry-After": "1"},
            )
        return bulk

    def release(self, bulk: bool = False) -> None:
        self.slots.release()
        if bulk:
            self.bulk_slots.release()
