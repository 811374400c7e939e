"""The RabbitMQ adapter (pika, blocking connection; one queue object per thread).

Topology, declared idempotently on every connect:

* ``<name>``: a durable *quorum* queue (it counts deliveries in the
  ``x-delivery-count`` header, so a message that keeps killing its consumer is
  recognised), with a dead-letter exchange: the default exchange, routing key
  ``<name>.dead``;
* ``<name>.dead``: a durable queue of dead letters, each with its reason in
  the ``x-flp-reason`` header.

Publishing uses publisher confirms and ``mandatory``: ``publish`` returns when
the broker has taken every body (persistent, delivery mode 2). Consuming is a
manual-ack consumer with a prefetch. A lost connection (broker restart,
network) is opened again with exponential backoff and jitter; deliveries of the
old connection can no longer be acknowledged (``ack`` returns False) and the
broker delivers them again. Heartbeats are on (``heartbeat`` seconds); long
waits go through ``sleep``/``keep``, which keep servicing them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pika
import pika.exceptions

from orchestrator.queue import Message, Queue, QueueCounts, QueueError, backoff, clean_reason

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
POLL = 0.05  # seconds one wait for a delivery lasts inside receive()
RECONNECT_FOR = 120.0  # give up (QueueError) after trying this long
REASON_HEADER = "x-flp-reason"
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


class RabbitQueue(Queue):
    def __init__(self, url: str, name: str, prefetch: int = 2, reconnect_for: float = RECONNECT_FOR) -> None:
        self.url = url
        self.name = name
        self.dead_name = f"{name}.dead"
        self.prefetch = prefetch
        self.reconnect_for = reconnect_for
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._consumer = None  # the generator of channel.consume
        self._generation = 0  # bumps with every new connection
        self._connect()

    # -- connection -----------------------------------------------------------------

    def _parameters(self) -> pika.URLParameters:
        params = pika.URLParameters(self.url)
        params.heartbeat = HEARTBEAT_SECONDS
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        params.socket_timeout = 10
        return params

    def _open(self) -> None:
        connection = pika.BlockingConnection(self._parameters())
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(self.dead_name, durable=True)
        channel.queue_declare(
            self.name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.dead_name,
            },
        )
        channel.basic_qos(prefetch_count=self.prefetch)
        self._connection, self._channel, self._consumer = connection, channel, None
        self._generation += 1

    def _connect(self) -> None:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                self._open()
                if attempt:
                    log.info("queue reconnected", extra={"queue": self.name, "attempts": attempt + 1})
                return
            except CONNECTION_ERRORS as exc:
                if time.monotonic() - started > self.reconnect_for:
                    raise QueueError(f"RabbitMQ queue {self.name}: cannot connect: {exc!r}") from exc
                pause = backoff(attempt)
                log.warning(
                    "queue connection failed; retrying",
                    extra={"queue": self.name, "error": type(exc).__name__, "pause_s": round(pause, 2)},
                )
                time.sleep(pause)
                attempt += 1

    def _reset(self) -> None:
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        except Exception:  # the connection is broken already
            pass
        self._connection = self._channel = self._consumer = None

    def _with_reconnect(self, action):
        """Run ``action()``; on a lost connection reconnect and run it again."""
        for _ in range(1000):
            if self._channel is None or not self._channel.is_open:
                self._reset()
                self._connect()
            try:
                return action()
            except CONNECTION_ERRORS as exc:
                log.warning("queue connection lost", extra={"queue": self.name, "error": type(exc).__name__})
                self._reset()
        raise QueueError(f"RabbitMQ queue {self.name}: the connection keeps failing")

    # -- the interface --------------------------------------------------------------

    def publish(self, bodies: Sequence[str]) -> None:
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")

        def send() -> None:
            for body in bodies:
                # Blocks until the broker confirms; raises when it refuses.
                self._channel.basic_publish(
                    exchange="",
                    routing_key=self.name,
                    body=body.encode(),
                    properties=properties,
                    mandatory=True,
                )

        try:
            self._with_reconnect(send)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            raise QueueError(f"RabbitMQ queue {self.name}: the broker did not confirm: {exc!r}") from exc

    def receive(self, wait_seconds: float = 1.0) -> Message | None:
        deadline = time.monotonic() + max(wait_seconds, 0.0)

        def get():
            if self._consumer is None:
                self._consumer = self._channel.consume(self.name, auto_ack=False, inactivity_timeout=POLL)
            return next(self._consumer)

        while True:
            method, properties, body = self._with_reconnect(get)
            if method is not None:
                break
            if time.monotonic() >= deadline:
                return None
        headers = (properties.headers or {}) if properties else {}
        attempts = int(headers.get("x-delivery-count", 0) or 0) + 1
        return Message(
            body=body.decode(),
            attempts=attempts,
            handle=(self._generation, method.delivery_tag),
            id=f"{self._generation}:{method.delivery_tag}",
        )

    def _current(self, message: Message) -> bool:
        generation, _ = message.handle
        return generation == self._generation and self._channel is not None and self._channel.is_open

    def ack(self, message: Message) -> bool:
        if not self._current(message):
            return False  # its connection is gone: the broker delivers it again
        try:
            self._channel.basic_ack(message.handle[1])
            return True
        except CONNECTION_ERRORS:
            self._reset()
            return False

    def nack(self, message: Message) -> None:
        if not self._current(message):
            return
        try:
            self._channel.basic_nack(message.handle[1], requeue=True)
        except CONNECTION_ERRORS:
            self._reset()

    def _publish_dead(self, body: str, reason: str, attempts: int) -> None:
        properties = pika.BasicProperties(
            delivery_mode=2,
            content_type="application/json",
            headers={REASON_HEADER: clean_reason(reason), "x-flp-attempts": attempts},
        )
        self._with_reconnect(
            lambda: self._channel.basic_publish(
                exchange="",
                routing_key=self.dead_name,
                body=body.encode(),
                properties=properties,
                mandatory=True,
            )
        )

    def dead_letter(self, message: Message, reason: str) -> None:
        # Confirmed into the dead-letter queue first, then acknowledged: a crash
        # in between leaves a second copy, never none.
        if not self._current(message):
            return
        generation = self._generation
        self._publish_dead(message.body, reason, message.attempts)
        if generation == self._generation:
            self.ack(message)

    def dead_letter_body(self, body: str, reason: str) -> None:
        self._publish_dead(body, reason, 0)

    def keep(self, message: Message, seconds: float) -> None:
        self.sleep(0)

    def sleep(self, seconds: float) -> None:
        try:
            if self._connection is not None and self._connection.is_open:
                self._connection.sleep(seconds)  # services heartbeats meanwhile
                return
        except CONNECTION_ERRORS:
            self._reset()
        time.sleep(seconds)

    def counts(self) -> QueueCounts:
        def read():
            main = self._channel.queue_declare(self.name, passive=True)
            dead = self._channel.queue_declare(self.dead_name, passive=True)
            return main.method.message_count, dead.method.message_count

        ready, dead = self._with_reconnect(read)
        return QueueCounts(ready, None, dead)

    def dead_letters(self, limit: int = 100) -> list[tuple[str, str]]:
        """(body, reason) of up to ``limit`` dead letters, left in place (for tests and operators)."""
        out, tags = [], []
        for _ in range(limit):
            method, properties, body = self._channel.basic_get(self.dead_name, auto_ack=False)
            if method is None:
                break
            tags.append(method.delivery_tag)
            out.append((body.decode(), (properties.headers or {}).get(REASON_HEADER, "")))
        if tags:
            self._channel.basic_nack(tags[-1], multiple=True, requeue=True)
        return out

    def close(self) -> None:
        """Close the connection: the broker gives back every unacknowledged delivery."""
        try:
            if self._consumer is not None and self._channel is not None and self._channel.is_open:
                self._channel.cancel()
        except CONNECTION_ERRORS:
            pass
        self._reset()
