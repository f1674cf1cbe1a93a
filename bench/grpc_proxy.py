#!/usr/bin/env python3
"""gRPC proxy benchmark: direct vs nginx grpc_pass vs grpc.aio floor vs an h2 frame relay vs the
sidecar's gRPC port.

One run starts a raw-bytes gRPC echo upstream (``bench/grpc_echo_upstream.py``), the peers
(nginx ``grpc_pass`` with upstream keep-alive, ``bench/grpc_nginx.py``: the reference the
project's targets are stated against; ``bench/grpc_aio_passthrough.py``: the least a grpc.aio
pass-through does; ``bench/grpc_h2_relay.py``: an HTTP/2 frame-level prototype) and one sidecar
per variant, then drives each with h2load (a C HTTP/2 load generator posting framed gRPC
messages), interleaved, N rounds, for two workloads:

- ``unary``: ``/echo.v1.Echo/Unary``, one message per call: calls/s, p50/p99 per call and the
  proxy's CPU µs per call;
- ``bidi``: ``/echo.v1.Echo/Bidi``, ``--bidi-messages`` messages per stream, each echoed by the
  upstream: messages/s, p50/p99 per whole stream and the proxy's CPU µs per message.

Every run is checked: h2load's counts, the response bytes it received, the upstream's own count
of calls and messages it answered (a proxy that answers without reaching the upstream cannot
look fast), and a real grpc client call of each kind through the target after the run (status
OK, payload intact).

Pinning (2 cores): the proxy under test runs alone on core 0; h2load, the upstream and this script
share core 1.

    .venv/bin/python bench/grpc_proxy.py             # 3 interleaved rounds of 10 s per workload
    .venv/bin/python bench/grpc_proxy.py --quick     # 1 round of 3 s, a smoke run
    .venv/bin/python bench/grpc_proxy.py --only direct,sidecar -n 5

See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc_nginx
import http_proxy as hp
import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
PYTHON = sys.executable
PROXY_CORE, LOAD_CORE = hp.PROXY_CORE, hp.LOAD_CORE
SERVICE = "echo.v1.Echo"
UNARY, BIDI = f"/{SERVICE}/Unary", f"/{SERVICE}/Bidi"
STATS = "/bench.Stats/Get"
SATURATED_PCT = 90.0  # a core busier than this limits throughput
#: the project's CPU targets for the sidecar (default chain), stated beside nginx grpc_pass
TARGET_US = {"unary": 250.0, "bidi": 60.0}


# --------------------------------------------------------------------------------------------
# What is measured


@dataclasses.dataclass(frozen=True)
class SidecarVariant:
    """A sidecar configuration: ``config`` is deep-merged into the base config."""

    key: str
    label: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


_POLICIES_OFF = {
    "retry": {"enabled": False},
    "circuit_breaker": {"enabled": False},
    "concurrency": {"enabled": False},
}

SIDECAR_VARIANTS = [
    SidecarVariant(
        "sidecar-plain",
        "sidecar, plain (no policies)",
        {"upstreams": {"up": _POLICIES_OFF}},
    ),
    SidecarVariant("sidecar", "sidecar, defaults"),
]
PEERS = {
    "direct": "direct (no proxy)",
    "nginx": "nginx grpc_pass",
    "grpc-aio": "grpc.aio pass-through (floor)",
    "h2-relay": "h2 frame relay (prototype)",
}
#: peers run only when named in --only
OPTIONAL_PEERS = {
    "grpc-aio-unary": "grpc.aio pass-through, unary_unary for unary methods",
}
LABELS = {**PEERS, **OPTIONAL_PEERS}


@dataclasses.dataclass(frozen=True)
class Workload:
    key: str
    method: str
    messages: int  # per call
    connections: int
    streams: int  # concurrent streams per connection
    data: Path  # the framed request body h2load posts
    message: bytes  # one unframed request message


@dataclasses.dataclass
class Target:
    key: str
    label: str
    address: str  # host:port h2load and the grpc check call
    cpu_pids: list[int]
    proc: Any = None
    log: Path | None = None
    broken: str | None = None
    died: str | None = None


@dataclasses.dataclass
class RunResult:
    rate: float  # calls/s (unary) or messages/s (bidi)
    p50_us: float
    p99_us: float
    calls: int
    cpu_us: float | None  # proxy CPU per call (unary) or per message (bidi)
    proxy_pct: float  # proxy CPU, % of its core
    load_pct: float  # everything on the load core, % of it
    upstream_us: float  # upstream CPU per call / message
    foreign_pct: float
    problems: list[str]
    frames: dict[str, float] | None = None  # h2 relay: DATA frames per message each way


# --------------------------------------------------------------------------------------------
# gRPC bits


def message_of(payload: int) -> bytes:
    """An ``echo.v1.EchoRequest`` with ``payload`` bytes in field 1 (also a valid response)."""
    body = b"x" * payload
    n, varint = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        varint.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x0a" + bytes(varint) + body


def framed(message: bytes) -> bytes:
    """gRPC length-prefixed message: not compressed, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_check(address: str, workload: Workload, timeout: float = 10.0) -> str | None:
    """One call of ``workload``'s kind with a real grpc client: None, or what was wrong."""
    try:
        with grpc.insecure_channel(address) as channel:
            if workload.messages == 1:
                reply, call = channel.unary_unary(workload.method).with_call(
                    workload.message, timeout=timeout
                )
                replies = [reply]
            else:
                call = channel.stream_stream(workload.method)(
                    iter([workload.message] * workload.messages), timeout=timeout
                )
                replies = list(call)
            code = call.code()
    except grpc.RpcError as e:
        return f"grpc call {workload.method} failed: {e.code()} {e.details()}"
    if code != grpc.StatusCode.OK:
        return f"grpc call {workload.method}: status {code}"
    if replies != [workload.message] * workload.messages:
        return f"grpc call {workload.method}: {len(replies)} replies, not the echo expected"
    return None


def upstream_stats(address: str) -> dict[str, int]:
    with grpc.insecure_channel(address) as channel:
        return dict(json.loads(channel.unary_unary(STATS)(b"", timeout=10)))


def wait_grpc(target: Target, workload: Workload, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    err: str | None = "no attempt"
    while time.monotonic() < deadline:
        if target.proc is not None and target.proc.poll() is not None:
            return f"exited with {target.proc.returncode}: {err}\n{hp.tail(target.log)}"
        err = grpc_check(target.address, workload, timeout=2)
        if err is None:
            return None
        time.sleep(0.1)
    return f"{err}\n{hp.tail(target.log)}"


# --------------------------------------------------------------------------------------------
# Processes


def start_python_peer(
    procs: hp.Processes, tmp: Path, key: str, script: str, upstream: str, *extra: str
) -> Target:
    port = hp.free_port()
    log = tmp / f"{key}.log"
    argv = [PYTHON, str(BENCH / script), "--listen", f"127.0.0.1:{port}", "--upstream", upstream]
    proc = procs.start([*argv, *extra], PROXY_CORE, log)
    return Target(key, LABELS[key], f"127.0.0.1:{port}", [proc.pid], proc, log)


def start_sidecar(
    procs: hp.Processes, tmp: Path, v: SidecarVariant, upstream: str, args: argparse.Namespace
) -> Target:
    admin, http, port = hp.free_port(), hp.free_port(), hp.free_port()
    base: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "http": {"address": f"127.0.0.1:{http}"},
        "grpc": {"address": f"127.0.0.1:{port}"},
        "telemetry": {"log_level": "warning"},
        "upstreams": {
            "up": {"adapter": "grpc", "url": f"grpc://{upstream}", "services": [SERVICE]}
        },
    }
    cfg = tmp / f"{v.key}.yaml"
    cfg.write_text(yaml.safe_dump(hp.deep_merge(base, v.config), sort_keys=False))
    log = tmp / f"{v.key}.log"
    argv = [args.sidecar_bin, "run", "-c", str(cfg), *shlex.split(args.sidecar_args)]
    t = Target(v.key, v.label, f"127.0.0.1:{port}", [], log=log)
    try:
        t.proc = procs.start(argv, PROXY_CORE, log)
    except OSError as e:
        t.broken = f"cannot start {shlex.join(argv)}: {e}"
        return t
    t.cpu_pids = [t.proc.pid]
    err = hp.wait_http(f"http://127.0.0.1:{admin}/readyz", args.ready_timeout, proc=t.proc)
    if err is not None:
        t.broken = (
            f"/readyz not 200 ({err})\ncommand: {shlex.join(argv)}\n"
            f"config:\n{cfg.read_text()}log tail:\n{hp.tail(log)}"
        )
    return t


def start_nginx(procs: hp.Processes, tmp: Path, upstream: str, in_flight: int) -> Target:
    """nginx grpc_pass on the proxy core; its CPU is its one worker's, like the sidecar's."""
    address = f"127.0.0.1:{hp.free_port()}"
    t = Target("nginx", PEERS["nginx"], address, [])
    try:
        master, workers, error_log = grpc_nginx.start(
            procs, tmp, address, upstream, in_flight, PROXY_CORE
        )
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        t.broken = f"cannot start nginx: {e}"
        return t
    t.proc, t.cpu_pids, t.log = master, workers, error_log
    return t


def relay_counters(t: Target, timeout: float = 5.0) -> dict[str, int] | None:
    """The h2 relay's counters (SIGUSR1 makes it print them as one JSON line)."""
    if t.proc is None or t.log is None:
        return None
    before = t.log.read_text().count("\n")
    os.kill(t.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = t.log.read_text().splitlines()
        if len(lines) > before and lines[-1].startswith("{"):
            return dict(json.loads(lines[-1]))
        time.sleep(0.01)
    return None


# --------------------------------------------------------------------------------------------
# h2load


def h2load_argv(address: str, w: Workload, seconds: float, log: Path | None) -> list[str]:
    argv = ["taskset", "-c", str(LOAD_CORE), "h2load", "-t1"]
    argv += [f"-c{w.connections}", f"-m{w.streams}", f"-D{round(seconds * 1000)}ms"]
    argv += ["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(w.data)]
    if log is not None:
        argv += ["--log-file", str(log)]
    return [*argv, f"http://{address}{w.method}"]


def parse_h2load(out: str) -> dict[str, float]:
    req = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    data = re.search(r"traffic: .*?, .*? headers .*?, \S+ \((\d+)\) data", out)
    fin = re.search(r"finished in ([\d.]+)(ms|s),", out)
    if not (req and codes and data and fin):
        raise ValueError(f"unexpected h2load output:\n{out}")
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    r: dict[str, float] = {k: int(v) for k, v in zip(keys, req.groups(), strict=True)}
    r["2xx"] = int(codes.group(1))
    r["data"] = int(data.group(1))
    r["seconds"] = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    return r


def percentiles(log: Path) -> tuple[float, float]:
    durations = sorted(
        int(parts[2])
        for parts in (line.split("\t") for line in log.read_text().splitlines())
        if len(parts) >= 3 and parts[1] == "200"
    )
    if not durations:
        return 0.0, 0.0
    pick = lambda q: float(durations[min(len(durations) - 1, int(q * len(durations)))])  # noqa: E731
    return pick(0.50), pick(0.99)


def run_one(
    t: Target, w: Workload, args: argparse.Namespace, upstream: Target, tmp: Path, own: list[int]
) -> RunResult:
    if args.warmup > 0:
        hp.run_reaped(h2load_argv(t.address, w, args.warmup, None), args.warmup + 30)
    if t.log is not None and t.log.exists() and t.key != "h2-relay":
        os.truncate(t.log, 0)
    frames0 = relay_counters(t) if t.key == "h2-relay" else None
    stats0 = upstream_stats(upstream.address)
    req_log = tmp / "h2load-requests.tsv"
    req_log.unlink(missing_ok=True)  # h2load appends to an existing log file
    cpu0, up0 = hp.tree_cpu(t.cpu_pids), hp.tree_cpu(upstream.cpu_pids)
    busy0, own0, t0 = hp.busy_ticks(), hp.own_ticks(own), time.monotonic()
    core0, load0 = hp.core_ticks(PROXY_CORE), hp.core_ticks(LOAD_CORE)
    rc, out, err = hp.run_reaped(h2load_argv(t.address, w, args.duration, req_log), 60 + 2 * 60)
    core1, load1 = hp.core_ticks(PROXY_CORE), hp.core_ticks(LOAD_CORE)
    cpu1, up1 = hp.tree_cpu(t.cpu_pids), hp.tree_cpu(upstream.cpu_pids)
    busy1, own1, t1 = hp.busy_ticks(), hp.own_ticks(own), time.monotonic()
    stats1 = upstream_stats(upstream.address)
    frames1 = relay_counters(t) if t.key == "h2-relay" else None
    if rc != 0:
        raise RuntimeError(f"h2load failed ({rc}):\n{out}\n{err}")
    r = parse_h2load(out)
    calls = int(r["succeeded"])
    units = calls * w.messages
    secs = r["seconds"]
    p50, p99 = percentiles(req_log)
    proxy_s = hp.cpu_delta_seconds(cpu0, cpu1)
    elapsed = t1 - t0
    foreign = max(0.0, ((busy1 - busy0) - (own1 - own0)) / hp.CLK_TCK / elapsed * 100)
    residual = ((core1 - core0) / hp.CLK_TCK - proxy_s) / elapsed * 100 if t.cpu_pids else 0.0
    problems: list[str] = []
    bad = {k: int(r[k]) for k in ("failed", "errored", "timeout") if r[k]}
    in_flight = w.connections * w.streams
    # a stream cut when the run ends may have its 200 but not its end: not a failure
    if bad or not calls <= r["2xx"] <= calls + in_flight:
        problems.append(f"h2load: {calls} succeeded, {int(r['2xx'])} HTTP 2xx, {bad or ''}")
    served = stats1["calls"] - stats0["calls"]
    if not calls <= served <= calls + in_flight:
        problems.append(
            f"upstream answered {served} calls while h2load counted {calls} (±{in_flight})"
        )
    echoed = stats1["messages"] - stats0["messages"]
    if echoed < units:
        problems.append(f"upstream echoed {echoed} messages, fewer than the {units} h2load got")
    if r["data"] < units * len(framed(w.message)):
        problems.append(f"h2load received {int(r['data'])} bytes of DATA: less than {units} echoes")
    check = grpc_check(t.address, w)
    if check:
        problems.append(f"after the run: {check}")
    if t.proc is not None and t.proc.poll() is not None:
        problems.append(f"process exited with {t.proc.returncode}")
    if t.log is not None and t.key != "h2-relay":
        # the warm-up's calls still open when it stopped may be logged after the truncation
        problems += scan_log(t.log, 2 * in_flight)
    frames = None
    if frames0 and frames1 and units:
        frames = {
            k: (frames1[f"frames_{k}"] - frames0[f"frames_{k}"]) / units
            for k in ("to_up", "to_app")
        }
    return RunResult(
        rate=units / secs,
        p50_us=p50,
        p99_us=p99,
        calls=calls,
        cpu_us=proxy_s * 1e6 / units if t.cpu_pids and units else None,
        proxy_pct=proxy_s / elapsed * 100,
        load_pct=(load1 - load0) / hp.CLK_TCK / elapsed * 100,
        upstream_us=hp.cpu_delta_seconds(up0, up1) * 1e6 / units if units else 0.0,
        foreign_pct=max(foreign, residual),
        problems=problems,
        frames=frames,
    )


def scan_log(log: Path, allowed_aborts: int) -> list[str]:
    """Warnings, errors and tracebacks the proxy logged during a run.

    h2load cancels the calls it has in flight when a run ends (RST_STREAM): the sidecar's
    access log records each as aborted (status 499, or ``aborted`` after the answer began). Up
    to ``allowed_aborts`` of them are expected; every other warning is a problem.
    """
    found: list[str] = []
    aborts = 0
    for line in log.read_text(errors="replace").splitlines():
        record: Any = None
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
        if isinstance(record, dict):
            if record.get("status") == 499 or record.get("aborted") is True:
                aborts += 1
                continue
            level = str(record.get("level", "")).lower()
            if level in ("warning", "error", "critical"):
                found.append(line[:300])
        elif re.search(r"Traceback|Error|Exception|\b(warn|error)\b", line):
            found.append(line[:300])
    if aborts > allowed_aborts:
        found.append(f"{aborts} calls logged as aborted: more than the {allowed_aborts} expected")
    return found[:5] + ([f"... {len(found) - 5} more"] if len(found) > 5 else [])


# --------------------------------------------------------------------------------------------
# Report


def report(
    targets: list[Target],
    workloads: list[Workload],
    results: dict[tuple[str, str], list[RunResult]],
    args: argparse.Namespace,
) -> str:
    rounds = f"median of {args.runs} interleaved runs" if args.runs > 1 else "1 run"
    out = [
        f"h2load -t1 -D{args.duration:g}s, {rounds}; {args.payload}-byte payload "
        f"({len(framed(message_of(args.payload)))} bytes framed); proxy alone on core "
        f"{PROXY_CORE}, h2load + upstream on core {LOAD_CORE}; CPU = the proxy process's "
        "utime+stime / calls or messages."
        + (" The upstream sends initial metadata on every call." * args.upstream_initial_metadata)
    ]
    notes: list[str] = []
    med: dict[tuple[str, str], dict[str, float | None]] = {}
    for w in workloads:
        unit = "call" if w.key == "unary" else "msg"
        rate = "calls/s" if w.key == "unary" else "msgs/s"
        lat = "" if w.key == "unary" else " per stream"
        out.append(
            f"\n**{w.key}** (`{w.method}`, {w.messages} message{'s' * (w.messages > 1)} per "
            f"call, h2load -c{w.connections} -m{w.streams})\n"
        )
        for t in targets:
            runs = results.get((t.key, w.key), [])
            if runs:
                cpus = [r.cpu_us for r in runs if r.cpu_us is not None]
                med[(t.key, w.key)] = {
                    "rate": statistics.median(r.rate for r in runs),
                    "cpu": statistics.median(cpus) if cpus else None,
                }
        direct = med.get(("direct", w.key))
        floor = med.get(("grpc-aio", w.key))
        nginx = med.get(("nginx", w.key))
        # only when nginx ran: the column would be all dashes otherwise
        nginx_col = " rate, CPU ÷ nginx |" if nginx else ""
        out.append(
            f"| config | {rate} | p50{lat} | p99{lat} | proxy CPU µs/{unit} | ÷ direct "
            f"|{nginx_col} CPU ÷ grpc.aio | proxy core | load core | upstream µs/{unit} "
            "| other load | errors |"
        )
        out.append("|---|" + "---:|" * (10 + bool(nginx)) + "---|")
        for t in targets:
            if t.broken:
                out.append(f"| {t.label} |" + " – |" * (10 + bool(nginx)) + " ⚠ FAILED |")
                continue
            runs = results.get((t.key, w.key), [])
            if not runs:
                continue
            m = med[(t.key, w.key)]
            rate_v, cpu = m["rate"] or 0.0, m["cpu"]
            vs_direct = f"{rate_v / direct['rate']:.2f}" if direct and direct["rate"] else "–"
            vs_floor = (
                f"{cpu / floor['cpu']:.2f}" if floor and floor["cpu"] and cpu is not None else "–"
            )
            vs_nginx = ""
            if nginx:
                vs_nginx = " – |"
                if nginx["rate"] and nginx["cpu"] and cpu is not None:
                    vs_nginx = f" {rate_v / nginx['rate']:.2f}, {cpu / nginx['cpu']:.2f} |"
            probs = [p for r in runs for p in r.problems]
            if probs:
                notes.append(f"**{t.label}, {w.key}**:\n" + "\n".join(probs[:10]))
            if t.died:
                notes.append(f"**{t.label}**: {t.died}")
            errors = f"⚠ {len(probs)}" if probs or t.died else "0"
            proxy_pct = statistics.median(r.proxy_pct for r in runs)
            out.append(
                f"| {t.label} | {rate_v:,.0f} "
                f"| {hp.fmt_us(statistics.median(r.p50_us for r in runs))} "
                f"| {hp.fmt_us(statistics.median(r.p99_us for r in runs))} "
                f"| {'–' if cpu is None else f'{cpu:.1f}'} | {vs_direct} |{vs_nginx} {vs_floor} "
                f"| {'–' if not t.cpu_pids else f'{proxy_pct:.0f} %'} "
                f"| {statistics.median(r.load_pct for r in runs):.0f} % "
                f"| {statistics.median(r.upstream_us for r in runs):.0f} "
                f"| {max(r.foreign_pct for r in runs):.0f} % | {errors} |"
            )
            frames = [r.frames for r in runs if r.frames]
            if frames and w.messages > 1:
                up = statistics.median(f["to_up"] for f in frames)
                down = statistics.median(f["to_app"] for f in frames)
                notes.append(
                    f"{t.label}, {w.key}: DATA frames relayed per message: {up:.2f} towards the "
                    f"upstream, {down:.2f} towards the app (h2load packs several request "
                    "messages in one frame; a frame relay's cost is per frame, not per message)."
                )
    for t in targets:
        if t.broken:
            notes.append(f"**{t.label}** did not start: {t.broken}")
    verdict = []
    reference = [
        f"{m['cpu']:.0f} µs per {w.key} {'call' if w.key == 'unary' else 'message'}"
        for w in workloads
        if (m := med.get(("nginx", w.key))) and m["cpu"] is not None
    ]
    if reference:
        verdict.append(f"- {PEERS['nginx']} (the reference, same run): " + ", ".join(reference))
    for t in targets:
        if t.key not in ("direct", "nginx"):
            parts = []
            for w in workloads:
                m2 = med.get((t.key, w.key))
                if m2 and m2["cpu"] is not None:
                    ok = "✓" if m2["cpu"] <= TARGET_US[w.key] else "✗"
                    parts.append(
                        f"{m2['cpu']:.0f} µs per {w.key} "
                        f"{'call' if w.key == 'unary' else 'message'} "
                        f"(target ≤ {TARGET_US[w.key]:.0f}: {ok})"
                    )
            if parts:
                verdict.append(f"- {t.label}: " + ", ".join(parts))
    if verdict:
        out.append("\nAgainst the project's targets:\n\n" + "\n".join(verdict))
    noisy = max((r.foreign_pct for rs in results.values() for r in rs), default=0.0)
    if noisy > args.max_other_load:
        notes.insert(
            0,
            f"⚠ other processes used up to {noisy:.0f} % of a core during a run: the machine "
            "was not quiet, numbers are unreliable.",
        )
    saturated = sorted(
        {
            f"{t.label} ({w.key})"
            for t in targets
            for w in workloads
            for r in results.get((t.key, w.key), [])
            if r.load_pct > SATURATED_PCT and r.proxy_pct < SATURATED_PCT
        }
    )
    if saturated:
        notes.append(
            "Load side (h2load + upstream, one core) was the limit, not the proxy, for: "
            + "; ".join(saturated)
            + ". Their rate is a floor of the proxy's; CPU per call is still the proxy's own."
        )
    if notes:
        out.append("\n" + "\n\n".join(notes))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    keys = [*PEERS, *(v.key for v in SIDECAR_VARIANTS)]
    p = argparse.ArgumentParser(description="gRPC: direct vs peers vs sidecar, h2load, pinned.")
    p.add_argument("-d", "--duration", type=float, help="seconds per h2load run (default 10)")
    p.add_argument("-n", "--runs", type=int, help="interleaved runs per config (default 3)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured h2load first (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 run of 3 s, 0.5 s warm-up")
    p.add_argument("-c", "--connections", type=int, default=10, help="unary connections (10)")
    p.add_argument(
        "-m", "--streams", type=int, default=10, help="unary streams per connection (10)"
    )
    p.add_argument("--bidi-connections", type=int, default=10, help="bidi connections (10)")
    p.add_argument("--bidi-streams", type=int, default=1, help="bidi streams per connection (1)")
    p.add_argument("--bidi-messages", type=int, default=100, help="messages per bidi stream (100)")
    p.add_argument("--payload", type=int, default=64, help="payload bytes per message (64)")
    p.add_argument("--workloads", default="unary,bidi", help="comma-separated: unary, bidi (both)")
    p.add_argument(
        "--upstream-initial-metadata",
        action="store_true",
        help="the upstream sends initial metadata of its own on every call (default: none, "
        "as most servers)",
    )
    p.add_argument(
        "--only",
        default=",".join(keys),
        help=f"configs to run (default all of {','.join(keys)}; also: {','.join(OPTIONAL_PEERS)})",
    )
    p.add_argument("--sidecar-bin", default=str(hp.DEFAULT_SIDECAR), help="sidecar executable")
    p.add_argument("--sidecar-args", default="", help="extra arguments for every `sidecar run`")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=YAML",
        help="extra sidecar variant: a YAML mapping deep-merged into the base config",
    )
    p.add_argument("--ready-timeout", type=float, default=10.0, help="seconds to wait for start")
    p.add_argument(
        "--max-other-load",
        type=float,
        default=hp.NOISY_PCT,
        help="CPU of other processes (%% of a core) above which a run waits and is repeated",
    )
    p.add_argument("--retries", type=int, default=3, help="repeats of a noisy run (3)")
    p.add_argument("--quiet-timeout", type=float, default=120.0, help="seconds to wait for quiet")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    for name, normal, quick in (("duration", 10.0, 3.0), ("runs", 3, 1), ("warmup", 1.0, 0.5)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not {PROXY_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {PROXY_CORE} and {LOAD_CORE}; have {os.sched_getaffinity(0)}")
    if shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install -y nghttp2-client")
    if shutil.which("taskset") is None:
        sys.exit("taskset not found: apt-get install -y util-linux")
    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    variants = [v for v in SIDECAR_VARIANTS if v.key in wanted]
    for i, spec in enumerate(args.variant):
        label, sep, text = spec.partition("=")
        extra = yaml.safe_load(text) if sep else None
        if not isinstance(extra, dict):
            sys.exit(f"--variant {spec!r}: expected LABEL=<YAML mapping>")
        variants.append(SidecarVariant(f"variant{i}", f"sidecar ({label})", extra))
    unknown = set(wanted) - {*LABELS, *(v.key for v in SIDECAR_VARIANTS)}
    if unknown:
        sys.exit(f"--only: unknown config(s) {sorted(unknown)}")
    os.sched_setaffinity(0, {LOAD_CORE})

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="sidecar-grpc-bench-"))
    procs = hp.Processes()
    try:
        return _run(args, wanted, variants, tmp, procs)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        procs.close()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _workloads(args: argparse.Namespace, tmp: Path) -> list[Workload]:
    message = message_of(args.payload)
    out = []
    for key in [k.strip() for k in args.workloads.split(",") if k.strip()]:
        if key == "unary":
            w = Workload(key, UNARY, 1, args.connections, args.streams, tmp / "unary.bin", message)
        elif key == "bidi":
            w = Workload(
                key,
                BIDI,
                args.bidi_messages,
                args.bidi_connections,
                args.bidi_streams,
                tmp / "bidi.bin",
                message,
            )
        else:
            sys.exit(f"--workloads: unknown {key!r} (unary, bidi)")
        w.data.write_bytes(framed(message) * w.messages)
        out.append(w)
    return out


def _run(
    args: argparse.Namespace,
    wanted: list[str],
    variants: list[SidecarVariant],
    tmp: Path,
    procs: hp.Processes,
) -> int:
    workloads = _workloads(args, tmp)
    up_port = hp.free_port()
    up_addr = f"127.0.0.1:{up_port}"
    log = tmp / "upstream.log"
    argv = [PYTHON, str(BENCH / "grpc_echo_upstream.py"), "--port", str(up_port)]
    if args.upstream_initial_metadata:
        argv.append("--initial-metadata")
    proc = procs.start(argv, LOAD_CORE, log)
    upstream = Target("upstream", "upstream", up_addr, [proc.pid], proc, log)
    err = wait_grpc(upstream, workloads[0], 15)
    if err:
        raise RuntimeError(f"upstream not answering: {err}")
    targets: list[Target] = []
    if "direct" in wanted:
        targets.append(Target("direct", PEERS["direct"], up_addr, []))
    if "nginx" in wanted:
        in_flight = max(w.connections * w.streams for w in workloads)
        targets.append(start_nginx(procs, tmp, up_addr, in_flight))
    peers = [
        ("grpc-aio", "grpc_aio_passthrough.py"),
        ("grpc-aio-unary", "grpc_aio_passthrough.py", "--unary-suffix", "Unary"),
        ("h2-relay", "grpc_h2_relay.py"),
    ]
    for key, script, *extra in peers:
        if key in wanted:
            targets.append(start_python_peer(procs, tmp, key, script, up_addr, *extra))
    for v in variants:
        targets.append(start_sidecar(procs, tmp, v, up_addr, args))
    for t in targets:
        if t.broken is None:
            for w in workloads:
                err = wait_grpc(t, w, args.ready_timeout)
                if err is not None:
                    t.broken = f"{w.key} check failed: {err}"
                    break
    own = [p.pid for p in procs.procs]
    results: dict[tuple[str, str], list[RunResult]] = {}
    for rnd in range(args.runs):
        for t in targets:
            for w in workloads:
                if t.broken or t.died:
                    continue
                for attempt in range(args.retries + 1):
                    if args.max_other_load < 100:
                        hp.wait_quiet(own, args.max_other_load, args.quiet_timeout)
                    r = run_one(t, w, args, upstream, tmp, own)
                    if r.foreign_pct <= args.max_other_load or attempt == args.retries:
                        break
                    print(
                        f"    {t.label} {w.key}: other load {r.foreign_pct:.0f} %; again",
                        file=sys.stderr,
                    )
                results.setdefault((t.key, w.key), []).append(r)
                cpu = "–" if r.cpu_us is None else f"{r.cpu_us:.1f}"
                print(
                    f"[{rnd + 1}/{args.runs}] {t.label:30} {w.key:5} {r.rate:9,.0f}/s  "
                    f"p50 {hp.fmt_us(r.p50_us):>9}  p99 {hp.fmt_us(r.p99_us):>9}  "
                    f"cpu {cpu:>6} µs  proxy {r.proxy_pct:3.0f} %  load {r.load_pct:3.0f} %  "
                    f"other {r.foreign_pct:3.0f} %",
                    file=sys.stderr,
                    flush=True,
                )
                for p in r.problems:
                    print(f"    ! {p}", file=sys.stderr)
                if t.proc is not None and t.proc.poll() is not None:
                    t.died = f"exited with {t.proc.returncode}; log tail:\n{hp.tail(t.log)}"
    print(report(targets, workloads, results, args))
    failed = any(t.broken or t.died for t in targets) or any(
        r.problems for rs in results.values() for r in rs
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
