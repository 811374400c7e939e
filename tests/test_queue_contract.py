"""The queue contract, run against both adapters: the database queue and RabbitMQ.

Each test gets a queue name of its own, so tests never see each other's messages.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from orchestrator.queue import Message, QueueError, clean_reason
from orchestrator.queue.database import DatabaseQueue
from tests.support.sql import fetch_all

CPR = "0101801234"


class Harness:
    """Opens queue objects on one queue name and reads its dead letters."""

    def __init__(self, kind: str, db, rabbit_url: str | None) -> None:
        self.kind = kind
        self.db = db
        self.rabbit_url = rabbit_url
        self.name = f"t.{uuid.uuid4().hex[:10]}"
        self.opened = []

    def open(self, **kwargs):
        if self.kind == "database":
            queue = DatabaseQueue(self.db, self.name, visibility_seconds=kwargs.get("visibility_seconds", 30))
        else:
            from orchestrator.queue.rabbitmq import RabbitQueue

            queue = RabbitQueue(self.rabbit_url, self.name, prefetch=kwargs.get("prefetch", 1))
        self.opened.append(queue)
        return queue

    def dead_letters(self) -> list[tuple[str, str]]:
        if self.kind == "database":
            return fetch_all(
                self.db,
                "SELECT Body, Reason FROM Ops.QueueDeadLetter WHERE QueueName = ? ORDER BY DeadLetterId",
                (self.name,),
            )
        queue = self.open()
        return queue.dead_letters()

    def close(self) -> None:
        for queue in self.opened:
            queue.close()


@pytest.fixture(params=["database", "rabbitmq"])
def harness(request, db):
    url = request.getfixturevalue("rabbitmq_server").url if request.param == "rabbitmq" else None
    h = Harness(request.param, db, url)
    yield h
    h.close()


def drain(queue, wait=0.5) -> list[Message]:
    out = []
    while (message := queue.receive(wait_seconds=wait)) is not None:
        out.append(message)
        queue.ack(message)
    return out


def test_publish_receive_ack(harness):
    queue = harness.open()
    queue.publish(["one", "two", "three"])
    got = []
    for _ in range(3):
        message = queue.receive(wait_seconds=5)
        assert message is not None
        assert message.attempts == 1
        got.append(message.body)
        assert queue.ack(message)
    assert sorted(got) == ["one", "three", "two"]
    assert queue.receive(wait_seconds=0.3) is None


def test_an_empty_queue_returns_none_after_the_wait(harness):
    queue = harness.open()
    started = time.monotonic()
    assert queue.receive(wait_seconds=0.4) is None
    assert 0.3 <= time.monotonic() - started < 5


def test_an_unacked_message_comes_back_after_its_consumer_closes(harness):
    first = harness.open()
    first.publish(["payload"])
    message = first.receive(wait_seconds=5)
    assert message.body == "payload"
    first.close()
    second = harness.open()
    again = second.receive(wait_seconds=5)
    assert again is not None and again.body == "payload"
    assert again.attempts == 2
    assert second.ack(again)
    assert second.receive(wait_seconds=0.3) is None


def test_a_nacked_message_is_delivered_again_with_one_more_attempt(harness):
    queue = harness.open()
    queue.publish(["retry me"])
    message = queue.receive(wait_seconds=5)
    queue.nack(message)
    again = queue.receive(wait_seconds=5)
    assert again.body == "retry me" and again.attempts == 2
    queue.ack(again)


def test_dead_letter_keeps_the_body_and_a_masked_reason(harness):
    queue = harness.open(prefetch=2)  # holds two messages at once
    queue.publish(["poison", "fine"])
    seen = {}
    for _ in range(2):
        message = queue.receive(wait_seconds=5)
        seen[message.body] = message
    queue.dead_letter(seen["poison"], f"cannot parse the body for patient {CPR}")
    queue.ack(seen["fine"])
    queue.dead_letter_body('{"ids": [7]}', "ids not found: 7")
    dead = harness.dead_letters()
    assert sorted(body for body, _ in dead) == sorted(['{"ids": [7]}', "poison"])
    reasons = " ".join(reason for _, reason in dead)
    assert CPR not in reasons and "XXXXXX-XXXX" in reasons
    assert queue.receive(wait_seconds=0.3) is None
    assert queue.counts().dead == 2


def test_competing_consumers_never_get_the_same_message(harness):
    bodies = [f"m{i}" for i in range(60)]
    harness.open().publish(bodies)
    received: list[list[str]] = [[], [], []]

    deadline = time.monotonic() + 60
    lock = threading.Lock()

    def total() -> int:
        with lock:
            return sum(len(part) for part in received)

    def consume(slot: int) -> None:
        # Until every body has been received (or the deadline): a busy machine can
        # leave a consumer a second or more without a delivery while others hold them.
        queue = harness.open()
        try:
            while total() < len(bodies) and time.monotonic() < deadline:
                message = queue.receive(wait_seconds=0.5)
                if message is None:
                    continue
                with lock:
                    received[slot].append(message.body)
                time.sleep(0.005)
                assert queue.ack(message)
        finally:
            queue.close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    everything = [b for part in received for b in part]
    assert sorted(everything) == sorted(bodies)  # each exactly once
    assert len(set(everything)) == len(bodies)


def test_counts_show_ready_messages(harness):
    queue = harness.open()
    queue.publish(["a", "b"])
    deadline = time.monotonic() + 5
    while queue.counts().ready != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue.counts().ready == 2
    assert len(drain(queue)) == 2


def test_clean_reason_masks_cpr_and_bounds_length():
    assert clean_reason(f"bad {CPR}\nline") == "bad XXXXXX-XXXX line"
    assert len(clean_reason("x" * 5000)) == 1000


# ---------------------------------------------------------------------------
# Database queue only: the visibility timeout and receipts
# ---------------------------------------------------------------------------


def test_database_queue_redelivers_after_the_visibility_timeout(db):
    name = f"t.{uuid.uuid4().hex[:10]}"
    slow = DatabaseQueue(db, name, visibility_seconds=1)
    other = DatabaseQueue(db, name, visibility_seconds=30)
    try:
        slow.publish(["late"])
        first = slow.receive(wait_seconds=2)
        assert other.receive(wait_seconds=0.2) is None  # invisible while held
        time.sleep(1.3)
        second = other.receive(wait_seconds=2)
        assert second.body == "late" and second.attempts == 2
        assert not slow.ack(first)  # the old receipt no longer counts
        assert other.ack(second)
    finally:
        slow._held.clear()
        slow.close()
        other.close()


def test_database_queue_keep_extends_the_visibility(db):
    name = f"t.{uuid.uuid4().hex[:10]}"
    holder = DatabaseQueue(db, name, visibility_seconds=1)
    other = DatabaseQueue(db, name, visibility_seconds=30)
    try:
        holder.publish(["held"])
        message = holder.receive(wait_seconds=2)
        holder.keep(message, 5)
        time.sleep(1.3)
        assert other.receive(wait_seconds=0.2) is None
        assert holder.ack(message)
    finally:
        holder.close()
        other.close()


def test_database_queue_refuses_a_bad_publish(db):
    queue = DatabaseQueue(db, "t.bad")
    with pytest.raises(QueueError, match="p_Bodies"):
        queue.publish([""])
    queue.close()
