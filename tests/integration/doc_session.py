"""A user's terminal for the docs' walkthroughs: a working directory, a shell, background jobs.

:class:`DocSession` runs what a walkthrough shows, as a user would: files written into one
temporary directory, commands run by ``bash`` there with the venv's ``sidecar`` first on
``PATH``, ``cmd &`` started in the background (a ``sidecar run`` is waited for until its
``sidecar ready`` line, anything else until the ports it names accept connections), and every
background job killed (its process group, by id) at the end.

The docs use fixed ports (15000-15002, 15006, 8080...) that another test or a developer's own
sidecar may hold, so :class:`PortMap` gives each a free port and rewrites config files, commands
and expected outputs alike; a config that leaves a listener on its default port gets that
default's replacement written in, so two sidecars of one walkthrough that would collide on a
default port in the doc collide in the test too. ``0.0.0.0`` becomes ``127.0.0.1`` (the tests
stay on loopback). :func:`serving` runs a :class:`~sidecar.testing.FakeUpstream` on a thread,
for walkthroughs whose upstream is a made-up host.

What it is not: a shell emulator (one ``bash -c`` per command, so ``echo $?`` is answered from
the previous command's exit code) or a parser of the docs (``doc_blocks``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sidecar.testing import FakeUpstream

from .doc_blocks import (
    CodeBlock,
    ConsoleStep,
    Normaliser,
    assert_output,
    console_steps,
    shell_commands,
    vary,
)

VENV_BIN = Path(sys.executable).parent
DEFAULT_LISTENERS = {"admin": 15000, "http": 15001, "grpc": 15002}
READY_TIMEOUT = 20.0
COMMAND_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortMap:
    """Doc port → a free port here, applied to any text (``:15001``, ``", 8080)``...)."""

    def __init__(self, doc_ports: list[int]) -> None:
        self.ports = {
            p: free_port() for p in sorted(set(doc_ports) | set(DEFAULT_LISTENERS.values()))
        }
        alternatives = "|".join(str(p) for p in self.ports)
        self._pattern = re.compile(rf"(?<![\w.])({alternatives})(?![\w.])")

    def __getitem__(self, doc_port: int) -> int:
        return self.ports[doc_port]

    def rewrite(self, text: str) -> str:
        return self._pattern.sub(lambda m: str(self.ports[int(m[1])]), text)

    def config(self, text: str) -> str:
        """A config file as the test writes it: ports rewritten, wildcard binds on loopback, and
        each listener the file leaves on its default port given that default's replacement."""
        text = self.rewrite(text).replace("0.0.0.0:", "127.0.0.1:")
        data = yaml.safe_load(text) or {}
        for section, port in DEFAULT_LISTENERS.items():
            given = data.get(section)
            if given is None:
                text = f"{text.rstrip()}\n{section}: {{address: 127.0.0.1:{self.ports[port]}}}\n"
            elif not (given.get("address") or given.get("enabled") is False):
                raise AssertionError(f"cannot move the default port of {section}: {given}")
        return text


class Job:
    """A background command: its process group, and its output files."""

    def __init__(self, command: str, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.command = command
        self.proc = proc
        self.out = out
        self.err = err

    def log(self) -> list[dict[str, Any]]:
        """Its JSON log lines on stderr (a sidecar's own log)."""
        lines = []
        for raw in self.err.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def wait_for_log(self, msg: str, *, after: int = 0, timeout: float = READY_TIMEOUT) -> None:
        """Until its log has a line ``msg`` beyond its first ``after`` lines (bounded)."""
        deadline = time.monotonic() + timeout
        while not any(line.get("msg") == msg for line in self.log()[after:]):
            if self.proc.poll() is not None:
                raise AssertionError(self.ended(f"exited before logging {msg!r}"))
            if time.monotonic() > deadline:
                raise AssertionError(self.ended(f"did not log {msg!r} within {timeout}s"))
            time.sleep(0.05)

    def ended(self, why: str) -> str:
        code = self.proc.poll()
        return f"`{self.command}` {why} (exit {code}); its stderr:\n{self.err.read_text()}"

    def signal(self, sig: int) -> None:
        """``sig`` to its process group (bash hands a lone command over to it by exec)."""
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class DocSession:
    """One walkthrough's directory, environment, ports and background jobs."""

    def __init__(self, workdir: Path, ports: PortMap, env: dict[str, str] | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = ports
        curl_home = workdir / ".curl"
        curl_home.mkdir()
        # in a terminal curl prints no progress meter; into a pipe it would
        (curl_home / ".curlrc").write_text("no-progress-meter\n")
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "CURL_HOME": str(curl_home),
            **(env or {}),
        }
        self.jobs: list[Job] = []
        self.last_code = 0
        #: ``(regex, replacement)`` applied to every command (``.venv/bin/`` → this venv's)
        self.command_rewrites: list[tuple[str, str]] = []
        #: ``(shown, local)``: what a doc names and what the test puts in its place
        self.stand_ins: list[tuple[str, str]] = []

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def stand_in(self, shown: str, local: str) -> None:
        """Config files get ``local`` where the doc shows ``shown`` (a made-up host, a path under
        /etc), and outputs are compared with ``shown`` back in its place."""
        self.stand_ins.append((shown, local))

    def write_config(self, name: str, text: str, *, runs: bool = True) -> Path:
        """A config file, stand-ins in place and ports rewritten; unless it ``runs`` (a file
        only ``check`` sees), its listeners are left as they are."""
        for shown, local in self.stand_ins:
            assert shown in text, f"{name} does not show {shown!r} (any more?)"
            text = text.replace(shown, local)
        return self.write(name, self.ports.config(text) if runs else self.ports.rewrite(text))

    def _command(self, command: str) -> str:
        for pattern, replacement in self.command_rewrites:
            command = re.sub(pattern, replacement, command)
        return self.ports.rewrite(command)

    def shell(self, command: str, *, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str]:
        """``bash -c command`` here, to completion: its exit code and its stdout+stderr."""
        done = subprocess.run(
            ["bash", "-c", self._command(command)],
            cwd=self.dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        self.last_code = done.returncode
        return done.returncode, done.stdout.decode(errors="replace")

    def background(self, command: str, env: dict[str, str] | None = None) -> Job:
        """``command &``: started in a process group of its own, and waited for until ready."""
        command = re.sub(r"\s&\s*$", "", command.strip(), count=1, flags=re.M)
        n = len(self.jobs)
        out, err = self.dir / f"job{n}.out", self.dir / f"job{n}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                ["bash", "-c", self._command(command)],
                cwd=self.dir,
                env={**self.env, **(env or {})},
                stdout=o,
                stderr=e,
                start_new_session=True,
            )
        job = Job(command, proc, out, err)
        self.jobs.append(job)
        if "sidecar run" in command:
            job.wait_for_log("sidecar ready")
        else:
            for port in {int(p) for p in re.findall(r"\d+", self.ports.rewrite(command))}:
                if port in self.ports.ports.values():
                    self._wait_port(job, port)
        return job

    def _wait_port(self, job: Job, port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if job.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(job.ended(f"never listened on {port}")) from None
                time.sleep(0.05)

    def run_step(self, step: ConsoleStep, normalise: Normaliser = vary) -> str:
        """One console step: started in the background (``&``), or run and its output compared
        with the doc's (both normalised; ``echo $?`` answers the previous exit code)."""
        if step.background:
            self.background(step.command)
            return ""
        if step.command.strip() == "echo $?":
            actual = f"{self.last_code}\n"
        else:
            _, actual = self.shell(step.command)
        actual = actual.replace("\r\n", "\n")  # curl -i shows the head's CRLFs as line ends
        for shown, local in self.stand_ins:
            actual = actual.replace(local, shown)
        expected = normalise(self.ports.rewrite(step.output))
        assert_output(expected, normalise(actual), what=f"$ {step.command}")
        return actual

    def run_blocks(self, blocks: list[CodeBlock], normalise: Normaliser = vary) -> None:
        """Blocks as a user follows them: a file's block written (a YAML one as a config), an
        ``sh`` block's commands run (``&`` and ``sidecar run`` in the background), a console
        block's steps run and their outputs compared."""
        for block in blocks:
            if block.lang == "console":
                for step in console_steps(block):
                    self.run_step(step, normalise)
            elif block.lang == "sh":
                for command in shell_commands(block):
                    if command.splitlines()[0].endswith("&") or "sidecar run" in command:
                        self.background(command)
                    else:
                        code, out = self.shell(command)
                        assert code == 0, f"{block.where}: `{command}` exited {code}:\n{out}"
            elif block.file_name and block.lang == "yaml":
                self.write_config(block.file_name, block.text)
            elif block.file_name:
                self.write(block.file_name, block.text)
            else:
                raise AssertionError(f"{block.where}: no rule runs a {block.lang!r} block")

    def job(self, command_part: str) -> Job:
        """The background job whose command names ``command_part`` (``web.yaml``)."""
        return next(j for j in self.jobs if command_part in j.command)

    def close(self) -> None:
        for job in self.jobs:
            job.kill()


@contextmanager
def serving(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    """``upstream`` started on an event loop of its own thread, so the test may block."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(upstream.start(), loop).result(10)
        yield upstream
        asyncio.run_coroutine_threadsafe(upstream.stop(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
