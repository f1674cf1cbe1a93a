"""podman for the container-image tests: a private containers.conf, bounded calls, cleanup by name.

``Podman(workdir)`` writes a ``containers.conf`` that this machine's containers can start with
(rlimits no higher than allowed, the runc runtime) and passes it to every call through
``CONTAINERS_CONF``. Every call has a timeout; a failed call raises ``AssertionError`` with
podman's own words, so the test fails (never skips). Containers started through
:meth:`Podman.run_detached` are remembered by name and :meth:`Podman.remove_all` removes them,
each by its name. Not here: building the image (``scripts/build-image``) or what is checked.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

#: Bound (seconds) on one podman call that is not a build.
CALL = 60.0


def container_limits() -> tuple[int, int]:
    """(open files, processes) a container may be given here.

    Both no higher than this process's hard limits; processes also no higher than the kernel's
    ``pid_max``, past which runc fails to set the limit and the container does not start.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    if nofile == resource.RLIM_INFINITY:
        nofile = 1 << 20
    if nproc == resource.RLIM_INFINITY or nproc > pid_max:
        nproc = pid_max
    return nofile, nproc


class Podman:
    """The ``podman`` command with a private configuration."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("podman")
        if exe is None:
            raise AssertionError("podman is not installed (scripts/setup --test installs it)")
        self.exe = exe
        nofile, nproc = container_limits()
        self.conf = workdir / "containers.conf"
        self.conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
        )
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        self.names: list[str] = []

    def __call__(
        self, *args: str, timeout: float = CALL, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                [self.exe, *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"podman {' '.join(args)}: no answer in {timeout}s") from e
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def run_detached(self, name: str, image: str, *options: str) -> None:
        """``podman run -d --name name [options] image``, remembered for :meth:`remove_all`."""
        self.names.append(name)
        self("run", "--detach", "--pull=never", "--name", name, *options, image)

    def inspect(self, name: str) -> dict[str, Any]:
        doc: list[dict[str, Any]] = json.loads(self("inspect", name).stdout)
        return doc[0]

    def logs(self, name: str) -> str:
        done = self("logs", name, check=False)
        return done.stdout + done.stderr

    def exec_python(
        self, name: str, code: str, *args: str, timeout: float = CALL
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code args`` inside the container (in its network namespace)."""
        return self("exec", name, "python", "-c", code, *args, timeout=timeout, check=False)

    def remove_all(self) -> None:
        """Remove every container started here, by name, whatever state it is in."""
        for name in reversed(self.names):
            self("rm", "--force", "--time", "0", name, check=False)
        self.names.clear()
