"""Large upload bodies validated in a worker process, so the service's event loop never waits for them.

pydantic-core holds the interpreter (the GIL) for the whole of a ``validate_json``
and a ``model_dump_json``: 14-35 ms for a 4,000-row bulk body (a quiet and a busy
machine). In a worker thread that is still as long, in which the event loop cannot
read a small upload's request nor send its answer. A body of ``PROCESS_BYTES`` or more therefore goes
to a small process pool (``Limits.validate_processes``, default one process)
that validates it and sends back the database's text and its row count; a
small body is validated in the request's worker thread as before. The errors
are the same either way (the same function, ``uploads.checked_body``).

The pool is started by the first large body (spawned, not forked: the service
has threads) and warmed in the background (the process's imports, about 1 s of
CPU): until it is ready, large bodies are validated in the thread as small
ones are, so no request waits for it, and a service that only ever sees small
uploads (or a test) never starts it. If the process dies, that request is
validated in a thread and a new pool is started for the next one.

The process never outlives the service: ``stop`` (the service's shutdown)
joins it, because uvicorn ends a SIGTERM'd service by raising the signal again
after its shutdown, so no exit handler of the interpreter would; and the
process watches its parent and ends when the service is gone some other way
(SIGKILL, a crash).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi.exceptions import RequestValidationError

log = logging.getLogger("orchestrator.http")

PROCESS_BYTES = 64 * 1024  # a body this large (about 500 rows) is validated in the process


def check_in_worker(raw: bytes, content_type: str | None) -> tuple[bool, Any]:
    """In the worker process: (True, (text, rows)), or (False, the validation errors)."""
    from orchestrator.http.uploads import checked_body

    try:
        return True, checked_body(raw, content_type)
    except RequestValidationError as exc:
        return False, list(exc.errors())


PARENT_POLL_SECONDS = 1.0


def _watch_parent(parent: int) -> None:
    """In the worker process (its initializer): end it when the service that started it is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="flp-validation-parent", daemon=True).start()


def _warm() -> bool:
    import orchestrator.http.uploads  # noqa: F401  (the imports, before the first body)

    return True


class Validator:
    """A process pool of ``processes`` workers for large bodies; ``check`` from the event loop."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.warm: Future | None = None
        self.checked = 0  # bodies the process validated

    def start(self) -> None:
        with self._lock:
            if self._pool is None and not self._closed:
                spawn = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(
                    self.processes, mp_context=spawn, initializer=_watch_parent, initargs=(os.getpid(),)
                )
                try:
                    self.warm = pool.submit(_warm)
                except Exception as exc:  # e.g. the service runs in a daemonic process: no children
                    log.warning(
                        "no validation process could start: large bodies are validated in threads",
                        extra={"error": type(exc).__name__},
                    )
                    self._closed = True
                    pool.shutdown(wait=False, cancel_futures=True)
                    return
                self._pool = pool

    async def check(self, raw: bytes, content_type: str | None) -> tuple[str, int] | None:
        """The body's text for the database and its rows; raises RequestValidationError as
        ``checked_body`` does. None when no process could do it yet: validate in a thread then."""
        self.start()
        pool, warm = self._pool, self.warm
        if pool is None or warm is None or not warm.done():  # stopped, or still starting
            return None
        if warm.exception() is not None:  # the process cannot start here: threads from now on
            log.warning("no validation process could start: large bodies are validated in threads")
            with self._lock:
                self._closed = True
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return None
        try:
            ok, out = await asyncio.wrap_future(pool.submit(check_in_worker, raw, content_type))
        except BrokenProcessPool:
            log.warning("the validation process stopped: a new one is started")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return None
        except RuntimeError:  # stopped meanwhile: cannot schedule new futures after shutdown
            return None
        self.checked += 1
        if not ok:
            raise RequestValidationError(out)
        return out

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            # Joined: its process ends after its current body (tens of ms; its imports, if still warming).
            pool.shutdown(wait=True, cancel_futures=True)
