#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind: a figure load cannot move.

``bench/http_proxy.py`` measures requests per second and CPU time, which need a quiet machine:
on a shared one, anything else running moves them by tens of percent. This script counts
instead: it runs each proxy under ``valgrind --tool=callgrind``, sends ``-n`` requests over one
keep-alive connection after a warm-up, and reads how many instructions the proxy's process
executed for them (its own code, Python, the C libraries; not the kernel's work in system
calls, which is about half of a request's CPU and the same for every HTTP/1 proxy). The same
binary and config give the same count to within a few percent (timers and garbage collection
fall differently), whatever else runs, so it compares two commits or two builds where timing
cannot.

Instructions miss what happens in the kernel, and one system call can cost more than a thousand
instructions (a ``getpid()`` is about 180 ns on this machine kind). So each proxy is also run a
second time, without valgrind, under ``strace -c -f``: the same requests, counted in system calls
per request, by name. On one connection every proxy waits in ``epoll_wait`` once per request or
so; under load those waits are shared by many requests, the reads and writes are not.

The peers are nginx as a reverse proxy (``master_process off`` under valgrind, keep-alive to the
upstream) and the floor (``bench/floor_proxy.py``: the least a Python proxy on uvloop and
httptools does, run on the Python beside ``--sidecar-bin``, and again with ``--tasks``, in
asyncio's usual shape), counted the same way; every proxy forwards to one nginx upstream that is
not counted.

    .venv/bin/python bench/instructions.py                      # nginx + the sidecar variants
    .venv/bin/python bench/instructions.py --sidecar-bin /tmp/sidecar-compiled/venv/bin/sidecar
    .venv/bin/python bench/instructions.py --only sidecar,sidecar-log --compare-bin OTHER_SIDECAR
    .venv/bin/python bench/instructions.py --only sidecar --keep /tmp/cg   # then, per function:
    callgrind_annotate --inclusive=yes /tmp/cg/sidecar.cg | head -60

Needs ``valgrind``, ``strace`` and ``nginx`` (Debian: ``apt-get install valgrind strace nginx``).
Under valgrind a process runs ~50x slower: the default 2,000 requests per variant take a few
seconds each. The variants are ``bench/http_proxy.py``'s (plain, defaults, full chain, access
log, ...). Exit 1 if a proxy failed to start or answered anything but 200 with the upstream's
body.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from http_proxy import (
    BODY,
    FLOOR_LABEL,
    NGINX_COMMON,
    NGINX_PROXY,
    NGINX_UPSTREAM,
    SIDECAR_VARIANTS,
    Processes,
    SidecarVariant,
    floor_argv,
    free_port,
    sidecar_build,
    sidecar_config,
    start_nginx,
    tail,
    wait_http,
)

REPO = Path(__file__).resolve().parent.parent
FLOOR_TASKS = "floor --tasks: the same in asyncio's usual shape (a worker task, two futures)"
DEFAULT_VARIANTS = "sidecar-plain,sidecar,sidecar-full,sidecar-log"
REQUEST = b"GET /up/x HTTP/1.1\r\nhost: localhost\r\nuser-agent: bench\r\naccept: */*\r\n\r\n"
NGINX_REQUEST = REQUEST.replace(b"/up/x", b"/x")


def send_requests(port: int, request: bytes, n: int, timeout: float = 60.0) -> None:
    """``n`` requests one after another on one connection; each must be a 200 with ``BODY``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        buf = b""
        for i in range(n):
            s.sendall(request)
            while (end := buf.find(b"\r\n\r\n")) < 0:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"connection closed after {i} responses")
                buf += chunk
            head = buf[:end].decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            if not head.startswith("HTTP/1.1 200") or m is None:
                raise RuntimeError(f"response {i} was not a 200 with a length:\n{head}")
            total = end + 4 + int(m.group(1))
            while len(buf) < total:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"connection closed in response {i}'s body")
                buf += chunk
            if buf[end + 4 : total] != BODY:
                raise RuntimeError(f"response {i}'s body is {buf[end + 4 : total]!r}")
            buf = buf[total:]


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")
        time.sleep(0.1)


def callgrind(out: Path, argv: list[str]) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        *argv,
    ]


@dataclasses.dataclass
class Count:
    """What one proxy did for ``args.requests`` requests."""

    instructions: int
    #: system calls by name, all its threads
    syscalls: dict[str, int]


#: ``strace -c`` lines: % time, seconds, usecs/call, calls, [errors,] syscall
_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", re.M)


def traced_syscalls(
    pid: int, port: int, request: bytes, n: int, out: Path, timeout: float = 30.0
) -> dict[str, int]:
    """System calls of process ``pid`` (every thread) while it answers ``n`` requests."""
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # strace says "Process N attached" once it traces: only then do the requests count
        assert tracer.stderr is not None
        seen = ""
        deadline = time.monotonic() + timeout
        while "attached" not in seen:
            line = tracer.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"strace did not attach to {pid}: {seen}{line}")
            seen += line
        send_requests(port, request, n)
    finally:
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
    rows = _STRACE_ROW.findall(out.read_text())
    return {name: int(calls) for calls, name in rows if name != "total"}


def counted(
    procs: Processes,
    argv: list[str],
    out: Path,
    log: Path,
    ready: Callable[[subprocess.Popen[bytes]], None],
    port: int,
    args: argparse.Namespace,
) -> Count:
    """Start ``argv`` under callgrind, warm it up, count ``args.requests`` requests; then again
    without callgrind, under strace, counting its system calls."""
    # the full-chain variant's api_key credential reads BENCH_API_KEY, as in http_proxy.py
    # and a fixed hash seed: dict and set layouts (so probe lengths) are then the same each run
    env = {**os.environ, "BENCH_API_KEY": "bench-api-key", "PYTHONHASHSEED": "0"}
    request = NGINX_REQUEST if "nginx" in argv[0] else REQUEST
    proc = procs.start(argv, None, log, env=env)
    ready(proc)
    send_requests(port, request, args.warmup)
    syscalls = traced_syscalls(proc.pid, port, request, args.requests, out.with_suffix(".strace"))
    procs.close()
    proc = procs.start(callgrind(out, argv), None, log, env=env)
    ready(proc)
    send_requests(port, request, args.warmup)
    subprocess.run(
        ["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True
    )
    send_requests(port, request, args.requests)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    dump = Path(f"{out}.1")
    deadline = time.monotonic() + 30
    while not (dump.exists() and "totals:" in dump.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"callgrind wrote no dump {dump}\n{tail(log)}")
        time.sleep(0.1)
    m = re.search(r"^totals:\s+(\d+)", dump.read_text(errors="replace"), re.M)
    assert m is not None
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(dump, Path(args.keep) / out.name)
    procs.close()  # this proxy only: each is counted alone
    return Count(int(m.group(1)), syscalls)


def count_nginx(tmp: Path, upstream_port: int, args: argparse.Namespace) -> Count:
    """nginx as the reverse proxy, one process (``master_process off``) so callgrind sees it."""
    procs = Processes()
    try:
        port = free_port()
        (tmp / "peer-tmp").mkdir(exist_ok=True)
        conf = tmp / "peer.conf"
        body = NGINX_PROXY.format(port=port, upstream_port=upstream_port)
        conf.write_text(
            "master_process off;\n" + NGINX_COMMON.format(tmp=tmp, name="peer", body=body)
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "peer-error.log")]
        return counted(
            procs,
            argv,
            tmp / "nginx.cg",
            tmp / "peer.out",
            lambda p: wait_port(port, 60),
            port,
            args,
        )
    finally:
        procs.close()


def count_floor(tmp: Path, upstream_port: int, tasks: bool, args: argparse.Namespace) -> Count:
    """``bench/floor_proxy.py``: the least a Python proxy on uvloop and httptools does (with
    ``tasks``, in asyncio's usual shape: a worker task and two futures per call)."""
    procs = Processes()
    try:
        port = free_port()
        argv = floor_argv(args.sidecar_bin, port, upstream_port, tasks)
        name = "floor-tasks" if tasks else "floor"
        ready = lambda p: wait_port(port, 60)  # noqa: E731
        return counted(procs, argv, tmp / f"{name}.cg", tmp / f"{name}.out", ready, port, args)
    finally:
        procs.close()


def count_sidecar(
    tmp: Path, upstream_port: int, v: SidecarVariant, bin_: str, tag: str, args: argparse.Namespace
) -> Count:
    procs = Processes()
    try:
        admin, http = free_port(), free_port()
        cfg = sidecar_config(v, admin, http, upstream_port)
        path = tmp / f"{v.key}{tag}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        log = tmp / f"{v.key}{tag}.log"

        def ready(proc: subprocess.Popen[bytes]) -> None:
            err = wait_http(f"http://127.0.0.1:{admin}/readyz", 120, proc=proc)
            if err is not None:
                raise RuntimeError(f"{v.key}{tag}: /readyz not 200 ({err})\n{tail(log)}")

        argv = [bin_, "run", "-c", str(path)]
        return counted(procs, argv, tmp / f"{v.key}{tag}.cg", log, ready, http, args)
    finally:
        procs.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sidecar-bin", default=str(REPO / ".venv" / "bin" / "sidecar"))
    p.add_argument("--compare-bin", help="also count every variant with this sidecar executable")
    p.add_argument(
        "--only", default=DEFAULT_VARIANTS, help=f"sidecar variants ({DEFAULT_VARIANTS})"
    )
    p.add_argument("-n", "--requests", type=int, default=2000, help="counted requests (2000)")
    p.add_argument("--warmup", type=int, default=300, help="requests before counting (300)")
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="copy each proxy's callgrind dump here, for callgrind_annotate (which functions)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "strace"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install valgrind strace")
    known = {v.key: v for v in SIDECAR_VARIANTS}
    chosen = [k for k in args.only.split(",") if k]
    unknown = [k for k in chosen if k not in known]
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {sorted(known)}")
    bins = [("", args.sidecar_bin)] + (
        [(" [compare]", args.compare_bin)] if args.compare_bin else []
    )
    for tag, b in bins:
        print(f"sidecar{tag}: {sidecar_build(b)}")
    rows: list[tuple[str, Count]] = []
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as t:
        tmp = Path(t)
        procs = Processes()
        try:
            upstream_port = free_port()
            start_nginx(procs, tmp, "upstream", NGINX_UPSTREAM.format(port=upstream_port), None)
            wait_port(upstream_port, 30)
            rows.append(("nginx reverse proxy", count_nginx(tmp, upstream_port, args)))
            rows.append((FLOOR_LABEL, count_floor(tmp, upstream_port, False, args)))
            rows.append((FLOOR_TASKS, count_floor(tmp, upstream_port, True, args)))
            for key in chosen:
                v = known[key]
                if v.services:
                    print(f"skipped {key}: it needs {', '.join(v.services)}", file=sys.stderr)
                    continue
                for tag, b in bins:
                    rows.append(
                        (f"{v.label}{tag}", count_sidecar(tmp, upstream_port, v, b, tag, args))
                    )
        except RuntimeError as e:
            print(f"FAILED: {e}", file=sys.stderr)
            return 1
        finally:
            procs.close()
    n = args.requests
    nginx = rows[0][1].instructions / n
    print(f"\n{n} requests on one keep-alive connection, after {args.warmup} of warm-up")
    print("| proxy | instructions per request | vs nginx | system calls per request |")
    print("|---|---:|---:|---|")
    for label, count in rows:
        per = count.instructions / n
        calls = sum(count.syscalls.values()) / n
        named = ", ".join(
            f"{name} {c / n:.2f}"
            for name, c in sorted(count.syscalls.items(), key=lambda kv: -kv[1])
            if c / n >= 0.05
        )
        print(f"| {label} | {per:,.0f} | {per / nginx:.1f}x | {calls:.2f}: {named} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
