"""A throwaway RabbitMQ node on loopback (Debian's rabbitmq-server), for tests and benchmarks.

Started directly from ``/usr/lib/rabbitmq/bin/rabbitmq-server`` as the
``rabbitmq`` user with everything in one temporary folder: its own HOME and
Erlang cookie, node name, data, logs, config, and its own ports (AMQP,
Erlang distribution, epmd), so several test sessions on one machine never
meet. ``restart()`` stops and starts the same node (same data, same port).
See /work/shared/engineering-notes.md for the measured behaviour.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
START_TIMEOUT = 60.0


def available() -> bool:
    return SERVER.is_file() and CTL.is_file() and _user() is not None


def _user():
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class RabbitServer:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="flp-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"flp{os.getpid()}x{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.process: subprocess.Popen | None = None
        self._prepare()

    def _prepare(self) -> None:
        user = _user()
        home = self.root / "home"
        for sub in ("home", "mnesia", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(f"FLPTEST{self.port}{os.getpid()}", encoding="ascii")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "distribution.listener.interface = 127.0.0.1\n"
            f"distribution.listener.port_range.min = {self.dist_port}\n"
            f"distribution.listener.port_range.max = {self.dist_port}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = warning\n",
            encoding="ascii",
        )
        (self.root / "enabled_plugins").write_text("[].\n", encoding="ascii")
        os.chmod(self.root, 0o755)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(cookie, 0o400)

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        return env

    def start(self) -> RabbitServer:
        self.process = subprocess.Popen(
            [
                "runuser",
                "-u",
                "rabbitmq",
                "--",
                "env",
                *[f"{k}={v}" for k, v in self._env().items()],
                str(SERVER),
            ],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited with {self.process.returncode}; logs in {self.root}/log"
                )
            if _port_open(self.port):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq-server did not open port {self.port} in {START_TIMEOUT} s")

    def stop(self) -> None:
        """Stop the node (SIGTERM to its process group, then SIGKILL) and its epmd."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.process = None
        self._stop_epmd()
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _stop_epmd(self) -> None:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{self.epmd_port}"], capture_output=True, text=True, check=False
        ).stdout
        for part in out.split("pid=")[1:]:
            pid = int(part.split(",", 1)[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
