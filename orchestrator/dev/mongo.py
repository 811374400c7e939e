"""A MongoDB wire-protocol server for the demo, tests and benchmarks: SecantusDB.

SecantusDB (PyPI ``secantusdb``, GPL-2.0, beta) is a development dependency
only (the ``dev`` extra); production uses a real MongoDB through FLP_MONGO_URL.
It runs as a child process (``secantusd-py``) on a free loopback port with its
data in a folder of its own, and is stopped with SIGTERM (SIGKILL after 10 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60.0


def _executable() -> str | None:
    found = shutil.which("secantusd-py")
    if found:
        return found
    candidate = Path(sysconfig.get_path("scripts")) / "secantusd-py"
    return str(candidate) if candidate.is_file() else None


def available() -> bool:
    return _executable() is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MongoServer:
    """One SecantusDB server; ``url`` is its mongodb:// URL."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="flp-mongo-"))
        self._own_dir = data_dir is None
        self.port = port or free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / "secantusd.log"

    def start(self) -> MongoServer:
        executable = _executable()
        if executable is None:
            raise RuntimeError("secantusd-py not found: pip install -e '.[dev]' installs SecantusDB")
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [
                executable,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir / "data"),
                "--log-level",
                "WARNING",
            ],
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import pymongo

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {self.process.returncode}; see {self.log_path}")
            try:
                client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=300)
                client.admin.command("ping")
                client.close()
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"secantusd-py did not answer on port {self.port} in {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - manual use: python -m orchestrator.dev.mongo
    server = MongoServer().start()
    print(server.url, flush=True)
    try:
        signal.pause()
    finally:
        server.cleanup()
        sys.exit(0)
