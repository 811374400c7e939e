"""A throwaway Debian PostgreSQL 15 cluster with pg_cron, on loopback (tests only).

As docs/engineering-notes say: initdb as the OS user postgres, then pg_ctl with
``shared_preload_libraries=pg_cron``, ``cron.database_name=postgres`` and
``cron.host`` the socket folder (pg_cron connects to run a job). The fixture
skips (fails under FLP_REQUIRE_SERVICES=1) when the binaries or pg_cron are
missing: ``apt-get install postgresql-15-cron``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")
PG_CRON = Path("/usr/share/postgresql/15/extension/pg_cron.control")
OS_USER = "postgres"


def available() -> bool:
    return (BIN / "initdb").exists() and PG_CRON.exists() and shutil.which("runuser") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CronCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flp-pgcron-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        shutil.chown(self.dir, OS_USER, OS_USER)

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", OS_USER, "--", *args], check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> CronCluster:
        if not self.data.exists():
            self._as_postgres(
                str(BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c shared_preload_libraries=pg_cron "
            f"-c cron.database_name=postgres -c cron.host={self.dir} -c max_connections=60"
        )
        self._as_postgres(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.dir / "log"),
            "start",
            "-o",
            options,
        )
        return self

    def restart(self) -> None:
        """Stop at once (running sessions are cut off, as in a crash or failover), start again."""
        self._as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "immediate", "stop")
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def libpq(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres", params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.libpq(database), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def psql(self, script: str, database: str = "postgres") -> subprocess.CompletedProcess:
        path = self.dir / "script.sql"
        path.write_text(script, encoding="utf-8")
        return subprocess.run(
            [
                str(BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.libpq(database),
                "-f",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )
