"""A private ``redis-server`` for tests: its own free port, temp dir, no persistence.

``with RedisServer() as redis: ... redis.url ...``. :meth:`start` waits (bounded) until the
server answers ``PING``; a server that cannot start raises, so the test that needs it fails
(never skips). :meth:`pause`/:meth:`resume` (SIGSTOP/SIGCONT) make it *slow*, :meth:`kill`
(SIGKILL) makes it *down*, and :meth:`start` again brings it back on the same port. It is
stopped by its PID, never by name.
"""

from __future__ import annotations

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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (scripts/setup --test installs it)")
        self.exe = exe
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sidecar-redis-"))
        self.log_path = self.dir / "redis.log"
        self.conf = self.dir / "redis.conf"
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            'save ""\n'
            "appendonly no\n"
            "daemonize no\n"
            f"dir {self.dir}\n"
            f"logfile {self.log_path}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> RedisServer:
        """Start (or restart after :meth:`kill`) and wait until it answers PING."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
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
        """SIGKILL: the server is gone (connections reset, new ones refused)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
