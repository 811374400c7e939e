"""Full-resync protection in the service: a token bucket per LPS, a concurrency limit for
interactive uploads and a separate one for bulk work, and the count of the 429s.

All are in-process: behind several instances each instance has its own
buckets and its own limits, so the effective limit is the per-instance limit
times the number of instances (docs/http.md says how to size them). Beyond
them the service answers 429 with ``Retry-After``, before touching the database.

Every 429 is counted in memory per LPS and UTC day (``ThrottleCounter``) and
flushed to Ops.UploadStatistic.Throttled by one call of Upload.upload_throttled
every ``throttle_flush_seconds`` (and when the service stops): a flood of 429s
costs the database one small upsert every few seconds, not one per refusal.
A crash of the instance loses at most the last interval's counts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator.http import ratelimit
from orchestrator.http.problems import ProblemError

log = logging.getLogger("orchestrator.http")


@dataclass(frozen=True)
class Limits:
    rate_per_second: float = 5.0  # sustained uploads per LPS (SOR code)
    burst: int = 20  # uploads an LPS may send at once after a quiet spell
    concurrency: int = 8  # interactive uploads in the database at the same time, all LPS together
    bulk_rows: int = 500  # an upload with more rows than this is bulk work: queued as a job (202) ...
    bulk_concurrency: int = 1  # ... and only this many are being queued at once, in their own slots
    bulk_wait_seconds: float = 2.0  # a bulk upload waits this long for a free bulk slot, then 429 bulk-busy
    bulk_waiters: int = 2  # ... and at most this many wait (each in a worker thread); beyond, 429 at once
    validate_processes: int = 1  # large bodies are validated in this many worker processes (0: a thread)
    throttle_flush_seconds: float = 5.0  # the 429 counts go to the database this often
    # A larger upload body is refused (413) before it is read whole: the memory and the parse it
    # would cost are bounded here, not only by a proxy in front (docs/http.md). 20 MiB holds
    # 300,000 rows; a 4,000-row bulk request is about 250 KB.
    max_body_bytes: int = 20 * 1024 * 1024


class TokenBuckets:
    """One bucket per key, refilled continuously; thread-safe."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        return self.take_state(key)[0]

    def take_state(self, key: str) -> tuple[float, float]:
        """``take``, and the tokens the bucket holds after it (for the RateLimit header field)."""
        with self._lock:
            now = self.clock()
            tokens, since = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0, tokens - 1
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate, tokens

    def give_back(self, key: str) -> float:
        """Return the token ``take`` gave (the request was refused for another reason); the tokens
        the bucket holds after it."""
        with self._lock:
            now = self.clock()
            tokens, since = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rate + 1)
            self._buckets[key] = (tokens, now)
            return tokens


class ThrottleCounter:
    """429s per (SOR code, UTC day) in memory, handed to ``flush`` in one piece; thread-safe."""

    MAX_KEYS = 1000  # Upload.upload_throttled takes at most 1000 entries a call

    def __init__(self, today: Callable[[], str] | None = None) -> None:
        self._today = today or (lambda: datetime.now(UTC).date().isoformat())
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count(self, sor: str) -> None:
        key = (sor, self._today())
        with self._lock:
            if key in self._counts or len(self._counts) < self.MAX_KEYS:
                self._counts[key] = self._counts.get(key, 0) + 1

    def take(self) -> dict[tuple[str, str], int]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def give_back(self, counts: dict[tuple[str, str], int]) -> None:
        """A flush that failed: its counts go back, to be sent with the next one."""
        with self._lock:
            for key, n in counts.items():
                if key in self._counts or len(self._counts) < self.MAX_KEYS:
                    self._counts[key] = self._counts.get(key, 0) + n

    def pending(self) -> int:
        with self._lock:
            return sum(self._counts.values())


class Guard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.buckets = TokenBuckets(limits.rate_per_second, limits.burst)
        self.slots = threading.BoundedSemaphore(limits.concurrency)
        self.bulk_slots = threading.BoundedSemaphore(limits.bulk_concurrency)
        self.bulk_waiters = threading.BoundedSemaphore(max(1, limits.bulk_waiters))
        self.throttled = ThrottleCounter()

    def is_bulk(self, rows: int, full_resync: bool = False) -> bool:
        return full_resync or rows > self.limits.bulk_rows

    def admit(self, sor: str, bulk: bool = False) -> dict[str, str]:
        """Admit one upload or raise a 429 problem (counted); ``bulk`` work takes a bulk slot, never an
        interactive one, so a resync cannot crowd out the small uploads, and waits up to
        ``bulk_wait_seconds`` for it (one bulk upload being queued takes tens of milliseconds: a
        short wait beats a 429 and its whole second of Retry-After). Pass ``bulk`` to ``release``.
        The answer: the RateLimit header fields for the response (ratelimit.py), also on the 429s."""
        wait, tokens = self.buckets.take_state(sor)
        fields = ratelimit.headers(tokens, self.limits.rate_per_second, self.limits.burst)
        if wait > 0:
            self.throttled.count(sor)
            raise ProblemError(
                429,
                "Too many requests",
                f"this clinic's upload rate is {self.limits.rate_per_second:g} per second",
                kind="rate-limited",
                headers={"Retry-After": str(max(1, math.ceil(wait))), **fields},
            )
        slots = self.bulk_slots if bulk else self.slots
        admitted = slots.acquire(blocking=False)
        if not admitted and bulk and self.limits.bulk_wait_seconds > 0 and self.bulk_waiters.acquire(False):
            # A bounded wait, and few waiting: each waits in a worker thread, and the small uploads
            # need those threads too.
            try:
                admitted = slots.acquire(timeout=self.limits.bulk_wait_seconds)
            finally:
                self.bulk_waiters.release()
        if not admitted:
            # Refused for the service's load, not for the clinic's rate: the token goes back, so
            # the retry a second later is not also refused as rate-limited.
            fields = ratelimit.headers(
                self.buckets.give_back(sor), self.limits.rate_per_second, self.limits.burst
            )
            self.throttled.count(sor)
            if bulk:
                raise ProblemError(
                    429,
                    "Too many requests",
                    f"another bulk upload (over {self.limits.bulk_rows} rows) is being queued: send it later",
                    kind="bulk-busy",
                    headers={"Retry-After": "1", **fields},
                )
            raise ProblemError(
                429,
                "Too many requests",
                "the service is at its limit of concurrent uploads",
                kind="busy",
                headers={"Retry-After": "1", **fields},
            )
        return fields

    def release(self, bulk: bool = False) -> None:
        (self.bulk_slots if bulk else self.slots).release()


class ThrottleFlusher:
    """A daemon thread that sends the 429 counts every ``interval`` seconds, and once more at ``stop``."""

    def __init__(
        self, counter: ThrottleCounter, send: Callable[[dict[tuple[str, str], int]], object], interval: float
    ) -> None:
        self.counter, self.send, self.interval = counter, send, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flp-throttle-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def flush(self) -> None:
        counts = self.counter.take()
        if not counts:
            return
        try:
            self.send(counts)
        except Exception as exc:  # the database is away: keep the counts for the next flush
            self.counter.give_back(counts)
            log.warning("throttle counts not flushed", extra={"error": type(exc).__name__})

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()
