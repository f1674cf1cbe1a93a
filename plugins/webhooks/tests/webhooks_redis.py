"""A private ``redis-server`` for the tests: a free port on 127.0.0.1, stopped by its PID; with
``persistent=True`` an append-only file fsynced at every write (what the Redis queue relies on),
so a ``restart()`` comes back with its data. A machine without redis-server fails the test that
needs it (never skips)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, *, persistent: bool = False) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.exe = exe
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="webhooks-redis-"))
        self.conf = self.dir / "redis.conf"
        self.conf.write_text(
            f'port {self.port}\nbind 127.0.0.1\nsave ""\ndaemonize no\n'
            + ("appendonly yes\nappendfsync always\n" if persistent else "appendonly no\n")
            + f"dir {self.dir}\nlogfile {self.dir / 'redis.log'}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen([self.exe, str(self.conf)])  # noqa: S603
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, keeping its files (a persistent server restarts with its data)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
