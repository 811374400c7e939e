"""COPY text for every seeded table, generated in a child process.

Generating the text is CPU work that holds the GIL for long numpy calls, so a
sender thread in the same process starves and the server waits between
chunks. A forked child generates chunk k+1 while the parent sends chunk k:
on 2 cores the client and the server then work at the same time. Where fork
is not available the text is generated in-process, one chunk after another.

Messages on the pipe, one tag byte first: C + column list (a table starts),
D + COPY text, E (the table ends), X + traceback (the generator failed).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from orchestrator.dev.seed.rows import Rows, copy_text
from orchestrator.dev.seed.tables import Table

COLUMNS, DATA, END, FAILED = b"C", b"D", b"E", b"X"
ChunkMaker = Callable[[Table], Iterator[Rows]]


class SeedGeneratorError(RuntimeError):
    """The generator failed in the child process; the message holds its traceback."""


def _messages(tables: Iterable[Table], make_chunks: ChunkMaker) -> Iterator[bytes]:
    for table in tables:
        started = False
        for rows in make_chunks(table):
            if rows.count == 0:
                continue
            if not started:
                yield COLUMNS + ", ".join(rows.columns).encode()
                started = True
            yield DATA + copy_text(rows).encode()
        yield END


def _produce(pipe: Any, tables: list[Table], make_chunks: ChunkMaker) -> None:
    try:
        for message in _messages(tables, make_chunks):
            pipe.send_bytes(message)
    except BaseException:
        pipe.send_bytes(FAILED + traceback.format_exc().encode())
    finally:
        pipe.close()


class Reader:
    """The tables' COPY text in load order: call next_table once per table, in order."""

    def __init__(self, receive: Callable[[], bytes]) -> None:
        self._receive_raw = receive

    def _receive(self) -> bytes:
        message = self._receive_raw()
        if message[:1] == FAILED:
            raise SeedGeneratorError(message[1:].decode(errors="replace"))
        return message

    def next_table(self) -> tuple[str | None, Iterator[memoryview]]:
        """The column list (None when the table gets no rows) and its COPY text, chunk by chunk."""
        message = self._receive()
        if message[:1] == END:
            return None, iter(())
        return message[1:].decode(), self._data()

    def _data(self) -> Iterator[memoryview]:
        while True:
            message = self._receive()
            if message[:1] == END:
                return
            yield memoryview(message)[1:]


@contextlib.contextmanager
def copy_texts(tables: list[Table], make_chunks: ChunkMaker) -> Iterator[Reader]:
    if "fork" not in multiprocessing.get_all_start_methods():
        yield Reader(_messages(tables, make_chunks).__next__)
        return
    context = multiprocessing.get_context("fork")  # the child inherits the population, nothing is pickled
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_produce, args=(send, tables, make_chunks), name="flp-seed-generator", daemon=True
    )
    child.start()
    send.close()  # the child holds the write end now; EOF reaches us if it dies
    try:
        yield Reader(receive.recv_bytes)
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()  # the load failed: the rest of the text is not wanted
        child.join()
