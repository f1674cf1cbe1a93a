"""A private ``redis-server`` for tests: its own free port on 127.0.0.1, its own temp dir.

``with RedisServer() as redis: ... redis.url ...``. :meth:`start` waits (bounded) until the
server answers ``PING``; a machine without ``redis-server``, or a server that cannot start,
raises, so the test that needs it fails (never skips). :meth:`pause`/:meth:`resume`
(SIGSTOP/SIGCONT) make it *slow*, :meth:`kill` (SIGKILL, files kept) makes it *down*, and
:meth:`start` again brings it back on the same port (with its data when ``persistent``).
:meth:`stop` ends it and removes its files. It is stopped by its PID, never by name.

Only the standard library: no Redis client is imported (:meth:`command` speaks RESP itself).
Not here: the sidecar's own Redis rate-limit backend (:mod:`sidecar.ratelimit.redis_backend`).
"""

from __future__ import annotations

__all__ = ["RedisServer", "free_port"]

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Bound on every wait here (seconds).
WAIT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` child process (see the module).

    ``persistent=True`` keeps an append-only file fsynced at every write, so a :meth:`kill`
    and :meth:`start` come back with the data; otherwise nothing is written to disk.
    """

    def __init__(self, port: int | None = None, *, persistent: bool = False) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server is not installed (apt-get install -y redis-server); "
                "the tests that need it fail without it"
            )
        self.exe = exe
        self.port = port or free_port()
        self.persistent = persistent
        self.dir = Path(tempfile.mkdtemp(prefix="sidecar-redis-"))
        self.log_path = self.dir / "redis.log"
        self.conf = self.dir / "redis.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("redis-server was not started")
        return self.proc.pid

    def _write_conf(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)  # again after stop() removed it
        durability = (
            "appendonly yes\nappendfsync always\n" if self.persistent else "appendonly no\n"
        )
        self.conf.write_text(
            f'port {self.port}\nbind 127.0.0.1\nsave ""\ndaemonize no\n{durability}'
            f"dir {self.dir}\nlogfile {self.log_path}\n"
        )

    def start(self) -> RedisServer:
        """Start (or restart after :meth:`kill`) and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"redis-server already runs on port {self.port}")
        self._write_conf()
        self.proc = subprocess.Popen(  # noqa: S603 - our own binary and config
            [self.exe, str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + WAIT
        while not self.answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}:\n{self._log()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING in {WAIT}s:\n{self._log()}")
            time.sleep(0.01)
        return self

    def answers(self, timeout: float = 0.5) -> bool:
        """Whether the server answers PING now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one command (RESP) and return the raw reply (tests inspect keys with it)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as s:
            s.sendall(payload.encode())
            return s.recv(65536)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a slow server)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the server is gone (connections reset, new ones refused); files kept."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL past the bound) and remove its files."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
