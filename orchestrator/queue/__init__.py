"""One queue interface, two adapters: RabbitMQ (production) and the database queue (embedded default).

The contract, the same for both (tests/test_queue_contract.py runs it against each):

* ``publish(bodies)`` returns only when the queue has confirmed every body
  (RabbitMQ publisher confirms; the database queue's one-statement INSERT has
  committed); otherwise it raises ``QueueError`` and the caller must assume
  none was queued (some may have been: consumers are idempotent).
* ``receive(wait_seconds)`` hands out one message to one consumer at a time;
  competing consumers never hold the same message. A message not acknowledged
  comes back: after the consumer closes or dies (RabbitMQ: its connection goes;
  database queue: its visibility timeout runs out, or ``close()`` gives it back).
  ``message.attempts`` counts deliveries, this one included.
* ``ack`` removes it; ``nack`` gives it back at once (delivered again, one more
  attempt); ``dead_letter(message, reason)`` puts it aside with the reason and
  out of the queue; ``dead_letter_body(body, reason)`` puts a new body aside.
  Reasons are masked for CPR numbers here, whatever the caller passes.
* ``keep(message, seconds)``: the consumer is still working on the message
  (waiting for MongoDB, say): the database queue extends its visibility, RabbitMQ
  keeps the connection's heartbeats going. ``sleep(seconds)`` waits the same way.

Bodies are text (the AIM bodies are JSON). ``open_queue`` picks the adapter:
``queue_url`` (``amqp://``) set means RabbitMQ, unset the database queue.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import FlpError
from orchestrator.logs import mask_cpr

REASON_MAX = 1000  # characters, Ops.QueueDeadLetter.Reason
RETRY_FIRST = 0.5  # seconds before the first retry, doubling
RETRY_MAX = 10.0  # longest pause between retries


def backoff(attempt: int, first: float = RETRY_FIRST, longest: float = RETRY_MAX) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(longest, first * 2^attempt)]."""
    return random.uniform(0, min(longest, first * (2 ** min(attempt, 30))))


class QueueError(FlpError):
    """The queue could not confirm a publish, or cannot be reached after retries."""


@dataclass
class Message:
    body: str
    attempts: int  # deliveries so far, this one included
    handle: Any = field(repr=False)  # adapter-specific: receipt or delivery tag
    id: str = ""  # for logs: the database message id, or the delivery tag


@dataclass(frozen=True)
class QueueCounts:
    ready: int | None  # waiting to be received
    in_flight: int | None  # received, not acknowledged (None: the broker does not say)
    dead: int | None  # dead letters


def clean_reason(reason: str) -> str:
    """A dead-letter reason fit to store: CPR numbers masked, one line, bounded."""
    text = mask_cpr(" ".join(str(reason).split()))
    return (text or "no reason given")[:REASON_MAX]


class Queue(abc.ABC):
    """One named queue, for one thread (open one per consumer thread)."""

    name: str

    @abc.abstractmethod
    def publish(self, bodies: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def receive(self, wait_seconds: float = 1.0) -> Message | None: ...

    @abc.abstractmethod
    def ack(self, message: Message) -> bool:
        """True when acknowledged; False when the delivery was lost meanwhile (it comes back)."""

    @abc.abstractmethod
    def nack(self, message: Message) -> None: ...

    @abc.abstractmethod
    def dead_letter(self, message: Message, reason: str) -> None: ...

    @abc.abstractmethod
    def dead_letter_body(self, body: str, reason: str) -> None: ...

    @abc.abstractmethod
    def keep(self, message: Message, seconds: float) -> None: ...

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None: ...

    @abc.abstractmethod
    def counts(self) -> QueueCounts: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_queue(
    name: str, queue_url: str | None, database=None, visibility_seconds: int = 300, prefetch: int = 1
) -> Queue:
    """RabbitMQ when ``queue_url`` is set, else the database queue of ``database``."""
    if queue_url:
        from orchestrator.queue.rabbitmq import RabbitQueue

        return RabbitQueue(queue_url, name, prefetch=prefetch)
    if database is None:
        raise QueueError("the database queue needs the database (FLP_QUEUE_URL is unset)")
    from orchestrator.queue.database import DatabaseQueue

    return DatabaseQueue(database, name, visibility_seconds=visibility_seconds)
