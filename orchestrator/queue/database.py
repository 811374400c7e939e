"""The database queue: Ops.QueueMessage through its own procedures (Job.queue_*), on either engine.

The embedded default when no ``FLP_QUEUE_URL`` is set. A received message is
invisible to other consumers for ``visibility_seconds``; its receipt (a new
one per delivery) is what ack, release and dead-letter must show, so a
consumer that lost its message to the visibility timeout cannot acknowledge
the next holder's delivery. One connection per queue object (one per thread);
a lost connection is opened again on the next call.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.queue import Message, Queue, QueueCounts, QueueError, clean_reason

POLL_START = 0.02  # seconds between empty receives, doubling up to POLL_MAX
POLL_MAX = 0.5
PUBLISH_CHUNK = 10_000  # bodies per Job.queue_publish call (its limit)


class DatabaseQueue(Queue):
    def __init__(self, database, name: str, visibility_seconds: int = 300) -> None:
        self.db = database
        self.name = name
        self.visibility_seconds = int(visibility_seconds)
        self._raw: Any = None
        self._held: dict[int, Message] = {}  # received, not yet acked: given back on close()

    # -- connection -----------------------------------------------------------------

    def _conn(self):
        if self._raw is None:
            self._raw = self.db.engine.raw_connection()
            self._raw.driver_connection.autocommit = True
        return self._raw.driver_connection

    def _call(self, procedure: str, params: dict, outputs: tuple[str, ...] = ()) -> dict:
        try:
            return self.db.call(self._conn(), procedure, params, outputs)
        except Exception:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):  # the connection is broken already
                self._raw.close()
            self._raw = None

    # -- the interface --------------------------------------------------------------

    def publish(self, bodies: Sequence[str]) -> None:
        bodies = list(bodies)
        for start in range(0, len(bodies), PUBLISH_CHUNK):
            chunk = bodies[start : start + PUBLISH_CHUNK]
            try:
                out = self._call(
                    "Job.queue_publish", {"QueueName": self.name, "Bodies": json.dumps(chunk)}, ("Count",)
                )
            except Exception as exc:
                raise QueueError(f"database queue {self.name}: publish failed: {exc}") from exc
            if out["Count"] != len(chunk):
                raise QueueError(f"database queue {self.name}: {out['Count']} of {len(chunk)} bodies queued")

    def receive(self, wait_seconds: float = 1.0) -> Message | None:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        pause = POLL_START
        while True:
            out = self._call(
                "Job.queue_receive",
                {"QueueName": self.name, "VisibilitySeconds": self.visibility_seconds},
                ("MessageId", "Body", "DeliveryCount", "ReceiptToken"),
            )
            if out["MessageId"] is not None:
                message = Message(
                    body=out["Body"],
                    attempts=int(out["DeliveryCount"]),
                    handle=(int(out["MessageId"]), out["ReceiptToken"]),
                    id=str(out["MessageId"]),
                )
                self._held[int(out["MessageId"])] = message
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX)

    def ack(self, message: Message) -> bool:
        message_id, receipt = message.handle
        out = self._call("Job.queue_ack", {"MessageId": message_id, "ReceiptToken": receipt}, ("Acked",))
        self._held.pop(message_id, None)
        return bool(out["Acked"])

    def _release(self, message: Message, seconds: int) -> bool:
        message_id, receipt = message.handle
        out = self._call(
            "Job.queue_release",
            {"MessageId": message_id, "ReceiptToken": receipt, "VisibleInSeconds": int(seconds)},
            ("Released",),
        )
        return bool(out["Released"])

    def nack(self, message: Message) -> None:
        self._release(message, 0)
        self._held.pop(message.handle[0], None)

    def keep(self, message: Message, seconds: float) -> None:
        self._release(message, max(int(seconds), self.visibility_seconds))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def dead_letter(self, message: Message, reason: str) -> None:
        message_id, receipt = message.handle
        self._call(
            "Job.queue_dead_letter",
            {
                "QueueName": self.name,
                "Reason": clean_reason(reason),
                "MessageId": message_id,
                "ReceiptToken": receipt,
            },
            ("Moved",),
        )
        self._held.pop(message_id, None)

    def dead_letter_body(self, body: str, reason: str) -> None:
        self._call(
            "Job.queue_dead_letter",
            {"QueueName": self.name, "Reason": clean_reason(reason), "Body": body},
            ("Moved",),
        )

    def counts(self) -> QueueCounts:
        out = self._call("Job.queue_status", {"QueueName": self.name}, ("Ready", "InFlight", "Dead"))
        return QueueCounts(int(out["Ready"]), int(out["InFlight"]), int(out["Dead"]))

    def close(self) -> None:
        """Give back every message received and not acknowledged, then disconnect."""
        for message in list(self._held.values()):
            try:
                self.nack(message)
            except Exception:  # the connection is gone: the visibility timeout gives it back
                break
        self._held.clear()
        self._drop_connection()
