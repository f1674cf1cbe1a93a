#!/usr/bin/env python3
"""HTTP proxy benchmark: direct vs nginx reverse proxy vs the sidecar, side by side.

One run starts a fixed upstream (nginx returning ``hello\\n``), nginx as a keep-alive reverse
proxy, and one sidecar process per variant, then drives each of them with wrk, interleaved,
N rounds, and prints a markdown table of medians: RPS, p50, p99, CPU microseconds per request of
the proxy process, and ratios to nginx.

Pinning (2 cores): the proxy under test runs alone on core 0; wrk and the upstream share core 1.

    .venv/bin/python bench/http_proxy.py            # 3 interleaved rounds of 10 s each
    .venv/bin/python bench/http_proxy.py --quick    # 1 round of 3 s, a smoke run
    .venv/bin/python bench/http_proxy.py --only direct,nginx
    .venv/bin/python bench/http_proxy.py --baseline-ref 2d1cef5   # before/after, one run

See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIDECAR = REPO / ".venv" / "bin" / "sidecar"
PROXY_CORE = 0
LOAD_CORE = 1
BODY = b"hello\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL when stopping a process
NOISY_PCT = 10.0  # other load above this (% of one core) during a run gets a warning


# --------------------------------------------------------------------------------------------
# What is measured


@dataclasses.dataclass(frozen=True)
class SidecarVariant:
    """One sidecar configuration to benchmark.

    ``config`` is deep-merged into the base config (admin/http addresses, ``telemetry`` and the
    ``up`` upstream pointing at the benchmark upstream), so a variant can add keys anywhere, e.g.
    ``{"upstreams": {"up": {"retries": {...}}}}`` for a resilience-chain variant.
    """

    key: str
    label: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    args: tuple[str, ...] = ()
    #: servers the variant needs, started once by the bench (pinned with wrk and the upstream):
    #: ``"redis"`` → a private redis-server whose URL the config reads as ``${BENCH_REDIS_URL}``
    services: tuple[str, ...] = ()
    #: the sidecar executable (``None``: ``--sidecar-bin``); a baseline's runs another commit.
    bin: str | None = None


# Add variants here (e.g. "sidecar-full" below adds upstream keys to the defaults).
#: Retries, the breaker and the concurrency limit are on by default: the "plain"
#: variant turns them off to price the proxy alone; "full chain" adds an api_key credential
#: and a local rate limit.
_POLICIES_OFF = {
    "retry": {"enabled": False},
    "circuit_breaker": {"enabled": False},
    "concurrency": {"enabled": False},
}

SIDECAR_VARIANTS: list[SidecarVariant] = [
    SidecarVariant(
        key="sidecar-plain",
        label="sidecar, plain proxy (no policies, log level warning)",
        config={"telemetry": {"log_level": "warning"}, "upstreams": {"up": _POLICIES_OFF}},
    ),
    SidecarVariant(
        key="sidecar",
        label="sidecar, defaults (retry, breaker, concurrency limit; log level warning)",
        config={"telemetry": {"log_level": "warning"}},
    ),
    SidecarVariant(
        key="sidecar-full",
        label="sidecar, full chain (defaults + api_key auth + local rate limit)",
        # a rate no run reaches: every call takes a token, none is refused; the key is read
        # from BENCH_API_KEY, which the bench sets
        config={
            "telemetry": {"log_level": "warning"},
            "upstreams": {
                "up": {
                    "rate_limit": {"rate": "10000000/s"},
                    "auth": {"type": "api_key", "key": {"env": "BENCH_API_KEY"}},
                }
            },
        },
    ),
    SidecarVariant(
        key="sidecar-log",
        label="sidecar, defaults + access log on",
        config={"telemetry": {"log_level": "info"}},
    ),
    SidecarVariant(
        key="sidecar-redis",
        label="sidecar + global rate limit (redis)",
        # a rate no run reaches: every call pays the Redis round trip, none is refused
        config={
            "telemetry": {"log_level": "warning"},
            "ratelimit_backends": {"bench": {"type": "redis", "url": "${BENCH_REDIS_URL}"}},
            "upstreams": {"up": {"global_rate_limit": {"backend": "bench", "rate": "1000000/s"}}},
        },
        services=("redis",),
    ),
    # tracing (docs/observability.md): off must cost nothing; on exports over OTLP/gRPC to a
    # sink the bench starts (bench/otlp_sink.py, on the load core), so export CPU is counted
    SidecarVariant(
        key="sidecar-trace-off",
        label="sidecar, defaults + tracing section, enabled: false",
        config={"telemetry": {"log_level": "warning", "tracing": {"enabled": False}}},
    ),
    SidecarVariant(
        key="sidecar-trace",
        label="sidecar, defaults + tracing, every call sampled (OTLP/gRPC sink)",
        config={
            "telemetry": {
                "log_level": "warning",
                "tracing": {"endpoint": "${BENCH_OTLP_ENDPOINT}", "sample_ratio": 1.0},
            }
        },
        services=("otlp",),
    ),
    SidecarVariant(
        key="sidecar-trace-1pct",
        label="sidecar, defaults + tracing, 1 % of calls sampled (OTLP/gRPC sink)",
        config={
            "telemetry": {
                "log_level": "warning",
                "tracing": {"endpoint": "${BENCH_OTLP_ENDPOINT}", "sample_ratio": 0.01},
            }
        },
        services=("otlp",),
    ),
]

#: bench/floor_proxy.py, the least a Python proxy on the sidecar's stack does: a peer that prices
#: the stack itself, so the sidecar's cost reads as the floor's plus its own work
FLOOR_LABEL = "floor: a Python proxy on uvloop + httptools that does nothing else"


def floor_argv(sidecar_bin: str, port: int, upstream_port: int, tasks: bool = False) -> list[str]:
    """The floor's command line, on the Python beside ``sidecar_bin`` (its venv has uvloop and
    httptools); ``tasks``: in asyncio's usual shape (``--tasks``)."""
    python = str(Path(sidecar_bin).parent / "python")
    script = str(Path(__file__).with_name("floor_proxy.py"))
    return [python, script, str(port), str(upstream_port), *(["--tasks"] if tasks else [])]


#: Variants whose added latency (and RPS ratio) over another variant the report states.
ADDED_LATENCY = [
    ("sidecar", "sidecar-plain"),
    ("sidecar-full", "sidecar-plain"),
    ("sidecar-redis", "sidecar"),
    ("sidecar-trace-off", "sidecar"),
    ("sidecar-trace", "sidecar"),
    ("sidecar-trace-1pct", "sidecar"),
]


@dataclasses.dataclass
class Target:
    """A thing wrk is pointed at, plus the processes whose CPU is charged to it."""

    key: str
    label: str
    url: str
    cpu_pids: list[int]  # roots of the process trees whose CPU is measured ([] = not measured)
    proc: subprocess.Popen[bytes] | None = None  # process that must stay alive during a run
    log: Path | None = None
    broken: str | None = None  # failed its start-up checks: never measured
    died: str | None = None  # its process exited during a run: later runs are skipped
    admin: str | None = None  # a sidecar's admin URL (its /metrics is read after the runs)


@dataclasses.dataclass
class RunResult:
    rps: float
    p50_us: float
    p99_us: float
    requests: int
    cpu_us_per_req: float | None
    foreign_pct: float  # CPU of processes not part of the benchmark, % of one core
    core_us_per_req: float  # everything core 0 did (processes + irq + softirq) per request
    non2xx: int
    socket_errors: dict[str, int]
    problems: list[str]
    #: p50 latency at one connection (``--one-connection``): the proxy's own added latency
    p50_1c_us: float | None = None
    #: the proxy's CPU per request at one connection: each request then wakes an idle process
    #: (twice), which costs several times the CPU of a request among fifty
    cpu_1c_us: float | None = None
    #: the kernel's part of ``cpu_us_per_req`` (stime: the system calls a request costs)
    sys_us_per_req: float | None = None

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())


# --------------------------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def children_of(pid: int) -> list[int]:
    """All descendants of ``pid`` (scans /proc; works without CONFIG_PROC_CHILDREN)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_ticks(pid: int, user: bool = True) -> int:
    """utime + stime of one process (all its threads), in clock ticks (stime only with
    ``user=False``); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # after "pid (comm)": state=0 ppid=1 ... utime=11 stime=12
    return (int(fields[11]) if user else 0) + int(fields[12])


def tree_cpu(roots: Sequence[int], user: bool = True) -> dict[int, int]:
    """Per-pid CPU ticks of each root and all its descendants (system time only with
    ``user=False``)."""
    out: dict[int, int] = {}
    for root in roots:
        for pid in [root, *children_of(root)]:
            out[pid] = cpu_ticks(pid, user)
    return out


def cpu_delta_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    ticks = sum(after[p] - before.get(p, 0) for p in after)
    return ticks / CLK_TCK


def wait_http(
    url: str,
    timeout: float,
    expect_body: bytes | None = None,
    proc: subprocess.Popen[bytes] | None = None,
) -> str | None:
    """Poll ``url`` until it answers 200 (and ``expect_body``); return None or the last error.

    Gives up early if ``proc`` exits.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"process exited with {proc.returncode}; last: {last}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read()
                if resp.status == 200 and (expect_body is None or body == expect_body):
                    return None
                last = f"status {resp.status}, body {body[:200]!r}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}, body {e.read()[:200]!r}, headers {dict(e.headers)}"
        except (OSError, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    return last


def tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 16384))
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Starts processes pinned to a core, and kills every one of them (by PID) on close."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], core: int | None, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        if core is not None:
            argv = ["taskset", "-c", str(core), *argv]
        with log.open("ab") as out:  # O_APPEND: the log can be truncated while it is written
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
                env=env,
            )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            self._stop(proc)
        self.procs.clear()

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        descendants = children_of(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        name = Path(str(proc.args[3] if proc.args[0] == "taskset" else proc.args[0])).name
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(
                f"note: {name} (pid {proc.pid}) still running {STOP_TIMEOUT:g} s after "
                "SIGTERM; killed",
                file=sys.stderr,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)
        else:
            if proc.returncode != 0:
                print(
                    f"note: {name} (pid {proc.pid}) exited with {proc.returncode} on SIGTERM",
                    file=sys.stderr,
                )
        for pid in descendants:  # e.g. nginx workers, if the master died without them
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


NGINX_COMMON = """\
worker_processes 1;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/{name}-tmp/body;
    proxy_temp_path {tmp}/{name}-tmp/proxy;
    fastcgi_temp_path {tmp}/{name}-tmp/fastcgi;
    uwsgi_temp_path {tmp}/{name}-tmp/uwsgi;
    scgi_temp_path {tmp}/{name}-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{body}
}}
"""

NGINX_UPSTREAM = """\
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "hello\\n";
        }}
    }}"""

NGINX_PROXY = """\
    upstream up {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def start_nginx(
    procs: Processes, tmp: Path, name: str, body: str, core: int | None
) -> tuple[subprocess.Popen[bytes], Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (tmp / f"{name}-tmp").mkdir()
    conf = tmp / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(tmp=tmp, name=name, body=body))
    log = tmp / f"{name}.out"
    error_log = tmp / f"{name}-error.log"
    argv = [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(error_log)]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx config {conf} invalid:\n{check.stderr}")
    return procs.start(argv, core, log), error_log


def nginx_workers(master: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = children_of(master)
        if workers:
            return workers
        time.sleep(0.05)
    raise RuntimeError(f"nginx master {master} has no worker process")


def start_redis(procs: Processes, tmp: Path, core: int | None) -> str:
    """A private redis-server (no persistence) on a free port; returns its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found (scripts/setup --test installs it)")
    port = free_port()
    conf = tmp / "redis.conf"
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndaemonize no\ndir {tmp}\n'
    )
    log = tmp / "redis.out"
    proc = procs.start([exe, str(conf)], core, log)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING:\n{tail(log)}")
        time.sleep(0.02)


def start_otlp_sink(procs: Processes, tmp: Path, core: int | None) -> str:
    """bench/otlp_sink.py (OTLP/gRPC, answers without decoding) on a free port; its URL."""
    port = free_port()
    log = tmp / "otlp_sink.out"
    sink = Path(__file__).resolve().parent / "otlp_sink.py"
    proc = procs.start([sys.executable, str(sink), "--port", str(port)], core, log)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return f"http://127.0.0.1:{port}"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the OTLP sink did not start:\n{tail(log)}")
        time.sleep(0.02)


def span_counts(targets: list[Target], variants: list[SidecarVariant]) -> str:
    """What each traced sidecar exported and dropped (dropped spans cost less than exported
    ones: a run that dropped many understates tracing's cost)."""
    traced = {v.key for v in variants if "otlp" in v.services}
    lines = []
    for t in targets:
        if t.key not in traced or t.admin is None or t.broken:
            continue
        try:
            with urllib.request.urlopen(f"{t.admin}/metrics", timeout=5) as r:
                text = r.read().decode()
        except (OSError, urllib.error.URLError) as e:
            lines.append(f"{t.label}: /metrics unreadable ({e})")
            continue
        counts = {}
        for line in text.splitlines():
            m = re.match(
                r'sidecar_spans_(exported|dropped)_total(?:\{reason="(\w+)"\})? (\S+)', line
            )
            if m:
                counts[m.group(2) or m.group(1)] = float(m.group(3))
        lines.append(
            f"{t.label}: spans exported {counts.get('exported', 0):,.0f}, dropped "
            f"{counts.get('queue_full', 0):,.0f} (queue full), "
            f"{counts.get('export_failed', 0):,.0f} (export failed)"
        )
    return "\n".join(lines)


def sidecar_config(
    variant: SidecarVariant, admin_port: int, http_port: int, upstream_port: int
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{admin_port}"},
        "http": {"address": f"127.0.0.1:{http_port}"},
        # each sidecar its own (idle) gRPC port: the default 15002 would collide between them
        "grpc": {"address": f"127.0.0.1:{free_port()}"},
        "telemetry": {"log_level": "warning"},
        "upstreams": {"up": {"url": f"http://127.0.0.1:{upstream_port}"}},
    }
    return deep_merge(base, variant.config)


def start_sidecar(
    procs: Processes,
    tmp: Path,
    variant: SidecarVariant,
    upstream_port: int,
    sidecar_bin: str,
    extra_args: list[str],
    ready_timeout: float,
    env: dict[str, str] | None = None,
) -> Target:
    admin_port, http_port = free_port(), free_port()
    cfg = sidecar_config(variant, admin_port, http_port, upstream_port)
    cfg_path = tmp / f"{variant.key}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    log = tmp / f"{variant.key}.log"
    argv = [sidecar_bin, "run", "-c", str(cfg_path), *variant.args, *extra_args]
    target = Target(variant.key, variant.label, f"http://127.0.0.1:{http_port}/up/", [], log=log)
    try:
        proc = procs.start(argv, PROXY_CORE, log, env={**os.environ, **(env or {})})
    except OSError as e:
        target.broken = f"cannot start {shlex.join(argv)}: {e}"
        return target
    target.proc = proc
    target.cpu_pids = [proc.pid]
    target.admin = f"http://127.0.0.1:{admin_port}"
    err = wait_http(f"http://127.0.0.1:{admin_port}/readyz", ready_timeout, proc=proc)
    if err is not None:
        state = f"exited with {proc.returncode}" if proc.poll() is not None else "running"
        target.broken = (
            f"/readyz not 200 (waited up to {ready_timeout:g} s; {state}; last /readyz: {err})\n"
            f"command: {shlex.join(argv)}\nconfig:\n{cfg_path.read_text()}log tail:\n{tail(log)}"
        )
    return target


# --------------------------------------------------------------------------------------------
# wrk

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _dur_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparseable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse_wrk(out: str) -> tuple[float, float, float, int, int, dict[str, int]]:
    """-> (rps, p50_us, p99_us, requests, non2xx, socket_errors)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    reqs = re.search(r"^\s+(\d+) requests in", out, re.M)
    if not (rps and p50 and p99 and reqs):
        raise ValueError(f"unexpected wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return (
        float(rps.group(1)),
        _dur_us(p50.group(1)),
        _dur_us(p99.group(1)),
        int(reqs.group(1)),
        int(non2xx.group(1)) if non2xx else 0,
        {k: v for k, v in socket_errors.items() if v},
    )


def wrk_argv(url: str, connections: int, duration: float, latency: bool = True) -> list[str]:
    argv = ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{connections}"]
    # whole seconds, at least one: wrk reads no fractions ("-d1.5s", "-d1500ms" are refused)
    argv += [f"-d{max(1, round(duration))}s", "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    return [*argv, url]


def run_reaped(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """subprocess.run, but the child is killed *and reaped* on any exception (Ctrl-C too)."""
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out, err


def core_ticks(core: int) -> int:
    """All non-idle ticks of one CPU (user, nice, system, irq, softirq, steal)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            f = [int(x) for x in line.split()[1:]]
            return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    raise RuntimeError(f"cpu{core} not in /proc/stat")


def busy_ticks() -> int:
    """CPU ticks spent in processes (user, nice, system) on all CPUs, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[1]) + int(fields[2]) + int(fields[3])


def own_ticks(roots: Sequence[int]) -> int:
    """CPU ticks of the benchmark's own processes: these trees, this script, reaped children."""
    t = os.times()
    own = (t.user + t.system + t.children_user + t.children_system) * CLK_TCK
    return round(own) + sum(tree_cpu(roots).values())


def other_load(own_roots: list[int], seconds: float = 1.0) -> float:
    """CPU used by processes outside the benchmark over ``seconds``, in % of one core."""
    busy0, own0, t0 = busy_ticks(), own_ticks(own_roots), time.monotonic()
    time.sleep(seconds)
    busy1, own1, t1 = busy_ticks(), own_ticks(own_roots), time.monotonic()
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / CLK_TCK / (t1 - t0) * 100)


def wait_quiet(own_roots: list[int], max_pct: float, timeout: float) -> float:
    """Wait (up to ``timeout``) until other processes use at most ``max_pct`` of a core."""
    deadline = time.monotonic() + timeout
    load = other_load(own_roots)
    if load > max_pct:
        print(f"    waiting for other load ({load:.0f} %) to drop ...", file=sys.stderr)
    while load > max_pct and time.monotonic() < deadline:
        load = other_load(own_roots)
    return load


def run_wrk(
    target: Target, connections: int, duration: float, warmup: float, own_roots: list[int]
) -> RunResult:
    if warmup > 0:
        run_reaped(wrk_argv(target.url, connections, warmup, latency=False), warmup + 30)
    if target.log is not None and target.log.exists():
        os.truncate(target.log, 0)  # keep only this run's output (the access log can be big)
    before = tree_cpu(target.cpu_pids)
    sys_before = tree_cpu(target.cpu_pids, user=False)
    busy0, own0, t0 = busy_ticks(), own_ticks(own_roots), time.monotonic()
    core0 = core_ticks(PROXY_CORE)
    rc, out, err = run_reaped(wrk_argv(target.url, connections, duration), duration + 60)
    after = tree_cpu(target.cpu_pids)
    sys_after = tree_cpu(target.cpu_pids, user=False)
    core1 = core_ticks(PROXY_CORE)
    busy1, own1, t1 = busy_ticks(), own_ticks(own_roots), time.monotonic()
    foreign = max(0.0, ((busy1 - busy0) - (own1 - own0)) / CLK_TCK / (t1 - t0) * 100)
    if rc != 0:
        raise RuntimeError(f"wrk failed ({rc}):\n{out}\n{err}")
    rps, p50, p99, requests, non2xx, sock = parse_wrk(out)
    cpu = kernel = None
    if target.cpu_pids and requests:
        cpu = cpu_delta_seconds(before, after) * 1e6 / requests
        kernel = cpu_delta_seconds(sys_before, sys_after) * 1e6 / requests
    problems: list[str] = []
    if target.proc is not None and target.proc.poll() is not None:
        problems.append(f"process exited with {target.proc.returncode}")
    if target.log is not None:
        problems += scan_log(target.log, connections)
    core = (core1 - core0) / CLK_TCK * 1e6 / requests if requests else 0.0
    # Anything else on the proxy's core (incl. irq/softirq of other traffic) is other load too.
    proxy_ticks = sum(after[p] - before.get(p, 0) for p in after)
    residual = (core1 - core0 - proxy_ticks) / CLK_TCK / (t1 - t0) * 100
    foreign = max(foreign, residual)
    return RunResult(
        rps, p50, p99, requests, cpu, foreign, core, non2xx, sock, problems, sys_us_per_req=kernel
    )


def scan_log(log: Path, connections: int) -> list[str]:
    """Warnings/errors/tracebacks the proxy logged during the run (access log lines skipped).

    Up to ``connections`` access-log records of client aborts (status 499) are expected: wrk
    closes its connections with requests in flight when the run ends.
    """
    found: list[str] = []
    count = aborts = 0
    first_abort = ""
    with log.open("rb") as f:
        for raw in f:
            line = raw.decode(errors="replace").rstrip()
            level = None
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    if isinstance(rec, dict):
                        level = str(rec.get("level") or rec.get("levelname") or "").lower()
                        if rec.get("status") == 499:
                            aborts += 1
                            first_abort = first_abort or line[:300]
                            continue
            if level in ("warning", "warn", "error", "critical", "fatal") or (
                level is None and re.search(r"Traceback|Error|Exception|\b(warn|error)\b", line)
            ):
                count += 1
                if len(found) < 5:
                    found.append(line[:300])
    if count > len(found):
        found.append(f"... {count - len(found)} more such log lines")
    if aborts > connections:
        found.append(
            f"{aborts} client aborts (499) logged, more than the {connections} requests wrk "
            f"can have in flight when it stops; first: {first_abort}"
        )
    return found


# --------------------------------------------------------------------------------------------
# Report


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def sidecar_build(sidecar_bin: str) -> str:
    """What ``sidecar --version`` says (the build that ran: compiled or pure Python)."""
    try:
        out = subprocess.run(
            [sidecar_bin, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{sidecar_bin} (--version failed: {e})"
    return out.strip() or f"{sidecar_bin} (--version printed nothing)"


def fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def report(
    targets: list[Target], results: dict[str, list[RunResult]], args: argparse.Namespace
) -> str:
    med: dict[str, dict[str, float | None]] = {}
    for t in targets:
        runs = results.get(t.key, [])
        if not runs:
            continue
        cpus = [r.cpu_us_per_req for r in runs if r.cpu_us_per_req is not None]
        med[t.key] = {
            "rps": statistics.median(r.rps for r in runs),
            "p50": statistics.median(r.p50_us for r in runs),
            "p99": statistics.median(r.p99_us for r in runs),
            "cpu": statistics.median(cpus) if cpus else None,
            "p50_1c": _median_or_none([r.p50_1c_us for r in runs]),
            "cpu_1c": _median_or_none([r.cpu_1c_us for r in runs]),
            "sys": _median_or_none([r.sys_us_per_req for r in runs]),
        }
    ref = med.get("nginx")
    one = args.one_connection
    lines = [
        "| config | RPS | p50 | p99 | CPU µs/req | RPS / nginx | CPU / nginx "
        + ("| p50 @1 | added p50 @1 vs nginx | CPU µs/req @1 " if one else "")
        + "| other load | errors |",
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if one else "") + "---:|---|",
    ]
    notes: list[str] = []
    for t in targets:
        runs = results.get(t.key, [])
        if t.broken:
            dashes = "– | " * (10 if one else 7)
            lines.append(f"| {t.label} | {dashes}⚠ FAILED (see below) |")
            notes.append(f"**{t.label}**: {t.broken}")
            continue
        if not runs:
            continue
        m = med[t.key]
        rps, cpu = m["rps"], m["cpu"]
        assert rps is not None and m["p50"] is not None and m["p99"] is not None
        ratio = f"{rps / ref['rps']:.2f}" if ref and ref["rps"] else "–"
        cpu_ratio = f"{cpu / ref['cpu']:.2f}" if ref and ref["cpu"] and cpu is not None else "–"
        non2xx = sum(r.non2xx for r in runs)
        sock: dict[str, int] = {}
        for r in runs:
            for k, v in r.socket_errors.items():
                sock[k] = sock.get(k, 0) + v
        probs = [p for r in runs for p in r.problems if not p.startswith("process exited")]
        flags = []
        if non2xx:
            flags.append(f"{non2xx} non-2xx")
        if sock:
            flags.append("socket " + ", ".join(f"{k} {v}" for k, v in sock.items()))
        if t.died:
            flags.append("process died")
            notes.append(f"**{t.label}**: {t.died}")
        if probs:
            flags.append(f"{len(probs)} log warnings/errors")
        err = "⚠ " + "; ".join(flags) if flags else "0"
        if probs:
            notes.append(f"**{t.label}** log/process problems:\n" + "\n".join(probs[:10]))
        single = ""
        if one:
            p1, ref1 = m["p50_1c"], (ref or {}).get("p50_1c")
            added = f"{p1 - ref1:+.0f} µs" if p1 is not None and ref1 is not None else "–"
            c1 = m["cpu_1c"]
            single = (
                f"{'–' if p1 is None else f'{p1:.0f} µs'} | {added} | "
                f"{'–' if c1 is None else f'{c1:.1f}'} | "
            )
        lines.append(
            f"| {t.label} | {rps:,.0f} | {fmt_us(m['p50'])} | {fmt_us(m['p99'])} | "
            f"{'–' if cpu is None else f'{cpu:.1f}'} | {ratio} | {cpu_ratio} | {single}"
            f"{max(r.foreign_pct for r in runs):.0f} % | {err} |"
        )
    rounds = f"median of {args.runs} interleaved runs" if args.runs > 1 else "1 run"
    head = (
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s --latency, {rounds}; "
        f"proxy on core {PROXY_CORE}, wrk + upstream on core {LOAD_CORE}; "
        f"CPU µs/req = proxy process utime+stime / requests."
        + (
            f" p50 @1, CPU µs/req @1: wrk -c1 -d{max(args.duration / 2, 1.0):g}s after each run."
            if one
            else ""
        )
        + f"\nsidecar: {sidecar_build(args.sidecar_bin)}."
    )
    out = head + "\n\n" + "\n".join(lines)
    labels = {t.key: t.label for t in targets}
    for key, base in ADDED_LATENCY:
        if key in med and base in med:
            m, b = med[key], med[base]
            assert m["p50"] is not None and b["p50"] is not None
            assert m["p99"] is not None and b["p99"] is not None
            out += (
                f"\n\n{labels[key]} adds {fmt_us(m['p50'] - b['p50'])} at p50 and "
                f"{fmt_us(m['p99'] - b['p99'])} at p99 over {labels[base]} "
                f"(RPS {(m['rps'] or 0) / (b['rps'] or 1):.2f}×)."
            )
    split = [
        f"{labels[key]} {m['cpu'] - m['sys']:.1f} + {m['sys']:.1f}"
        for key, m in med.items()
        if m["cpu"] is not None and m["sys"] is not None
    ]
    if split:
        # the kernel's part (the same system calls for every HTTP/1 proxy) is a floor no proxy
        # code lowers: what a proxy's own code costs is the user part
        out += "\n\nCPU µs/req as user + kernel (medians): " + "; ".join(split) + "."
    noisy = max((r.foreign_pct for rs in results.values() for r in rs), default=0.0)
    if noisy > args.max_other_load:
        notes.insert(
            0,
            f"⚠ other processes used up to {noisy:.0f} % of a core during a run "
            "(column 'other load'): the machine was not quiet, numbers are unreliable.",
        )
    if notes:
        out += "\n\n" + "\n\n".join(notes)
    return out


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    keys = ["direct", "nginx", "floor", *(v.key for v in SIDECAR_VARIANTS)]
    p = argparse.ArgumentParser(
        description="direct vs nginx reverse proxy vs sidecar, wrk-driven, pinned.",
    )
    p.add_argument("-d", "--duration", type=float, help="seconds per wrk run (default 10)")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("-n", "--runs", type=int, help="interleaved runs per config (default 3)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured wrk first (default 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: defaults become 1 run of 3 s after 0.5 s warm-up",
    )
    p.add_argument(
        "--only",
        default=",".join(keys),
        help=f"comma-separated configs to run (default: all of {', '.join(keys)})",
    )
    p.add_argument(
        "--sidecar-bin",
        default=str(DEFAULT_SIDECAR),
        help="sidecar executable (default .venv/bin/sidecar)",
    )
    p.add_argument(
        "--sidecar-args", default="", help="extra arguments appended to every `sidecar run`"
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=YAML",
        help="extra sidecar variant: a YAML/JSON mapping deep-merged into the base config, "
        "e.g. 'retries={upstreams: {up: {retries: {attempts: 2}}}}' (repeatable)",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for sidecar /readyz (default 10)",
    )
    p.add_argument(
        "--max-other-load",
        type=float,
        default=NOISY_PCT,
        help="CPU of processes outside the benchmark, in %% of one core, above which a run "
        "waits for quiet first and is repeated (default %(default)g; 100 = never)",
    )
    p.add_argument(
        "--retries", type=int, default=3, help="repeats of a noisy run (default %(default)s)"
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for quiet before a run (default %(default)g)",
    )
    p.add_argument(
        "--baseline-ref",
        metavar="GIT_REF",
        help="also run every sidecar variant on this commit (checked out in the temp dir and "
        "run with the same venv), interleaved with the current tree: before/after in one run",
    )
    p.add_argument(
        "--baseline-bin",
        metavar="SIDECAR",
        help="also run every sidecar variant with this sidecar executable (another build, such "
        "as a compiled one of an earlier commit), interleaved with --sidecar-bin's",
    )
    p.add_argument(
        "--one-connection",
        action="store_true",
        help="after each run, also one of --duration/2 at a single connection: its p50 is the "
        "latency a proxy adds when it is not queueing (column 'p50 @1')",
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    for name, normal, quick in (("duration", 10.0, 3.0), ("runs", 3, 1), ("warmup", 1.0, 0.5)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def build_variants(args: argparse.Namespace) -> list[SidecarVariant]:
    wanted = {k.strip() for k in args.only.split(",") if k.strip()}
    known = {"direct", "nginx", "floor", *(v.key for v in SIDECAR_VARIANTS)}
    unknown = wanted - known
    if unknown:
        sys.exit(f"--only: unknown config(s) {sorted(unknown)}; known: {sorted(known)}")
    variants = [v for v in SIDECAR_VARIANTS if v.key in wanted]
    for i, spec in enumerate(args.variant):
        label, sep, text = spec.partition("=")
        extra = yaml.safe_load(text) if sep else None
        if not isinstance(extra, dict):
            sys.exit(f"--variant {spec!r}: expected LABEL=<YAML mapping>")
        variants.append(SidecarVariant(f"variant{i}", f"sidecar ({label})", extra))
    return variants


def baseline_worktree(ref: str, tmp: Path) -> str:
    """A wrapper running ``sidecar`` from a git worktree of ``ref`` in ``tmp`` (same interpreter
    and libraries; :func:`remove_baseline` unregisters it)."""
    tree = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref],
        check=True,
        capture_output=True,
    )
    wrapper = tmp / "baseline-sidecar"
    python = REPO / ".venv" / "bin" / "python"
    wrapper.write_text(
        # -P: the current directory (this checkout) must not come before the baseline's tree
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(tree))} exec {shlex.quote(str(python))} -P "
        f'-c "from sidecar.cli import main; raise SystemExit(main())" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def with_baseline(variants: list[SidecarVariant], ref: str, tmp: Path) -> list[SidecarVariant]:
    """Each variant, then the same on commit ``ref`` (:func:`baseline_worktree`)."""
    wrapper = baseline_worktree(ref, tmp)
    # core against core: installed plugins (plugins/*) may need an API the baseline lacks
    plugins = sorted({ep.name for ep in entry_points(group="sidecar")})
    off = {"plugins": {"disabled": plugins}} if plugins else {}
    out: list[SidecarVariant] = []
    for v in variants:
        v = dataclasses.replace(v, config=deep_merge(copy.deepcopy(v.config), off))
        out.append(v)
        out.append(
            dataclasses.replace(v, key=f"{v.key}@{ref}", label=f"{v.label} [at {ref}]", bin=wrapper)
        )
    return out


def with_baseline_bin(variants: list[SidecarVariant], exe: str) -> list[SidecarVariant]:
    """Each variant, then the same run by the sidecar executable ``exe``."""
    out: list[SidecarVariant] = []
    for v in variants:
        out.append(v)
        out.append(
            dataclasses.replace(v, key=f"{v.key}@baseline", label=f"{v.label} [baseline]", bin=exe)
        )
    return out


def remove_baseline(tmp: Path) -> None:
    """Unregister the baseline worktree (its files go with the temp dir)."""
    if (tmp / "baseline").exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "baseline")],
            check=False,
            capture_output=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2 or not {PROXY_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {PROXY_CORE} and {LOAD_CORE}; have {os.sched_getaffinity(0)}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH")
    wanted = {k.strip() for k in args.only.split(",")}
    variants = build_variants(args)
    os.sched_setaffinity(0, {LOAD_CORE})  # keep this script off the proxy's core

    # SIGTERM/SIGHUP → the same clean-up path as Ctrl-C.
    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)

    tmp = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    procs = Processes()
    try:
        if args.baseline_ref:
            variants = with_baseline(variants, args.baseline_ref, tmp)
        if args.baseline_bin:
            variants = with_baseline_bin(variants, args.baseline_bin)
        return _run(args, wanted, variants, tmp, procs)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        procs.close()
        remove_baseline(tmp)
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _step(msg: str) -> Iterator[None]:
    print(f"{msg} ...", end="", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    yield
    print(f" {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)


def _run(
    args: argparse.Namespace,
    wanted: set[str],
    variants: list[SidecarVariant],
    tmp: Path,
    procs: Processes,
) -> int:
    targets: list[Target] = []
    up_port = free_port()
    with _step(f"upstream nginx on 127.0.0.1:{up_port}, core {LOAD_CORE}"):
        _, up_log = start_nginx(
            procs, tmp, "upstream", NGINX_UPSTREAM.format(port=up_port), LOAD_CORE
        )
        err = wait_http(f"http://127.0.0.1:{up_port}/", 10, BODY)
        if err:
            raise RuntimeError(f"upstream nginx not answering: {err}\n{tail(up_log)}")
    if "direct" in wanted:
        targets.append(Target("direct", "direct (no proxy)", f"http://127.0.0.1:{up_port}/", []))
    if "nginx" in wanted:
        port = free_port()
        with _step(f"nginx reverse proxy on 127.0.0.1:{port}, core {PROXY_CORE}"):
            body = NGINX_PROXY.format(port=port, upstream_port=up_port)
            master, log = start_nginx(procs, tmp, "proxy", body, PROXY_CORE)
            workers = nginx_workers(master.pid)
            t = Target("nginx", "nginx reverse proxy", f"http://127.0.0.1:{port}/", workers)
            t.proc, t.log = master, log
            t.broken = wait_http(t.url, 10, BODY, proc=master)
            targets.append(t)
    if "floor" in wanted:
        port = free_port()
        with _step(f"floor proxy (bench/floor_proxy.py) on 127.0.0.1:{port}, core {PROXY_CORE}"):
            log = tmp / "floor.out"
            proc = procs.start(floor_argv(args.sidecar_bin, port, up_port), PROXY_CORE, log)
            t = Target("floor", FLOOR_LABEL, f"http://127.0.0.1:{port}/up/", [proc.pid])
            t.proc, t.log = proc, log
            t.broken = wait_http(t.url, 10, BODY, proc=proc)
            targets.append(t)
    extra_args = shlex.split(args.sidecar_args)
    # the full chain's api_key credential (a value only the upstream, which ignores it, sees)
    service_env: dict[str, str] = {"BENCH_API_KEY": "bench-api-key"}
    if any("redis" in v.services for v in variants):
        with _step(f"redis-server, core {LOAD_CORE}"):
            service_env["BENCH_REDIS_URL"] = start_redis(procs, tmp, LOAD_CORE)
    if any("otlp" in v.services for v in variants):
        with _step(f"OTLP sink, core {LOAD_CORE}"):
            service_env["BENCH_OTLP_ENDPOINT"] = start_otlp_sink(procs, tmp, LOAD_CORE)
    for v in variants:
        with _step(f"{v.label}, core {PROXY_CORE}"):
            t = start_sidecar(
                procs,
                tmp,
                v,
                up_port,
                v.bin or args.sidecar_bin,
                extra_args,
                args.ready_timeout,
                service_env,
            )
            if t.broken is None:
                err = wait_http(t.url, 5, BODY, proc=t.proc)
                if err is not None:
                    t.broken = f"GET {t.url} did not return 200 {BODY!r}: {err}\n{tail(t.log)}"
            targets.append(t)

    results: dict[str, list[RunResult]] = {}
    for rnd in range(args.runs):
        for t in targets:
            if t.broken or t.died:
                continue
            own = [p.pid for p in procs.procs]
            for attempt in range(args.retries + 1):
                if args.max_other_load < 100:
                    wait_quiet(own, args.max_other_load, args.quiet_timeout)
                r = run_wrk(t, args.connections, args.duration, args.warmup, own)
                if r.foreign_pct <= args.max_other_load or attempt == args.retries:
                    break
                print(
                    f"    {t.label}: other load {r.foreign_pct:.0f} % during the run; "
                    f"again ({attempt + 1}/{args.retries})",
                    file=sys.stderr,
                )
            if args.one_connection:
                one = run_wrk(t, 1, max(args.duration / 2, 1.0), args.warmup / 2, own)
                r.p50_1c_us = one.p50_us
                r.cpu_1c_us = one.cpu_us_per_req
            results.setdefault(t.key, []).append(r)
            cpu = "–" if r.cpu_us_per_req is None else f"{r.cpu_us_per_req:.1f}"
            line = (
                f"[{rnd + 1}/{args.runs}] {t.label:32} {r.rps:10,.0f} rps  "
                f"p50 {fmt_us(r.p50_us):>9}  p99 {fmt_us(r.p99_us):>9}  cpu {cpu:>6} µs/req  "
                f"other load {r.foreign_pct:3.0f} %"
            )
            if r.p50_1c_us is not None:
                line += f"  p50 @1 {fmt_us(r.p50_1c_us)}"
            if r.cpu_1c_us is not None:
                line += f"  cpu @1 {r.cpu_1c_us:.1f} µs/req"
            if r.errors:
                line += f"  non-2xx {r.non2xx} socket {r.socket_errors}"
            print(line, file=sys.stderr, flush=True)
            for p in r.problems:
                print(f"    ! {p}", file=sys.stderr)
            if t.proc is not None and t.proc.poll() is not None:
                t.died = f"exited with {t.proc.returncode} during run {rnd + 1}; log tail:\n"
                t.died += tail(t.log)
                print(f"    ! {t.died}", file=sys.stderr)
    print()
    print(report(targets, results, args))
    spans = span_counts(targets, variants)
    if spans:
        print("\n" + spans)
    return 1 if any(t.broken or t.died for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
