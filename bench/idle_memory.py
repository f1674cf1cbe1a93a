#!/usr/bin/env python3
"""What an idle sidecar costs: resident memory and time to ready, per config and per feature.

Starts ``sidecar run`` (the embedded default, or ``-c FILE``) ``-n`` times and, for each start,
measures the time from exec until ``GET /readyz`` on the admin port answers 200, the process's
``VmRSS`` at that moment and again after ``--idle`` seconds of doing nothing. Then the same for
each *variant*: the same config plus one feature (``VARIANTS``), so each feature's cost in MB is
its idle RSS minus the baseline's. Rounds are interleaved (baseline, variant 1, ..., baseline,
...) so that drift on a shared machine hits every config alike; the table shows medians.

    .venv/bin/python bench/idle_memory.py                    # 5 rounds, every variant (~1.5 min)
    .venv/bin/python bench/idle_memory.py -n 3 --only tracing,grpcio
    .venv/bin/python bench/idle_memory.py --no-variants -n 7 # the embedded default alone
    .venv/bin/python bench/idle_memory.py --why              # + what each variant imports more
    .venv/bin/python bench/idle_memory.py --baseline-ref HEAD~3   # before/after in one run

``--why`` runs each config once more under ``python -X importtime`` and prints, per variant,
the top-level packages it imports that the baseline does not, with their import time, and the
RSS each costs when imported alone into a fresh interpreter (packages share dependencies, so
these do not add up; the variant's own ΔRSS is the figure that counts).

Without ``-c`` the baseline is ``sidecar run`` with no file, on the embedded default's ports
(15000-15002, which must be free); ``--free-ports`` runs it and every variant on free ports
instead (from a written copy of the config). Exit 1 if a start failed.
"""

from __future__ import annotations

import argparse
import os
import re
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from http_proxy import (
    CLK_TCK,
    REPO,
    baseline_worktree,
    cpu_ticks,
    deep_merge,
    free_port,
    remove_baseline,
    tail,
)

MiB = 1024


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    #: deep-merged into the baseline config; ``make`` builds it when it needs the temp dir.
    extra: dict[str, Any] = field(default_factory=dict)
    make: Callable[[Path, dict[str, str]], dict[str, Any]] | None = None
    #: services the bench starts for it first (``redis``).
    services: tuple[str, ...] = ()


def _oauth2(tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    env["BENCH_CLIENT_SECRET"] = "bench-secret"  # noqa: S105 - made up; nothing is ever sent
    port = free_port()  # nothing listens: the token is fetched on the first call, never here
    return {
        "upstreams": {
            "idp_protected": {
                "url": f"http://127.0.0.1:{port}",
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"http://127.0.0.1:{port}/token",
                    "client_id": "bench",
                    "client_secret": {"env": "BENCH_CLIENT_SECRET"},
                },
            }
        }
    }


def _mtls(tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    from sidecar.tls.certs import init_ca, issue

    init_ca(tmp / "ca", trust_domain="bench.local")
    issue(
        tmp / "ca", "spiffe://bench.local/ns/bench/sa/app", tmp / "app", ip_addresses=["127.0.0.1"]
    )
    return {
        "inbound": {
            "address": f"127.0.0.1:{free_port()}",
            "app": f"127.0.0.1:{free_port()}",
            "tls": {
                "cert": str(tmp / "app" / "tls.crt"),
                "key": str(tmp / "app" / "tls.key"),
                "ca": str(tmp / "app" / "ca.crt"),
            },
            "allow": ["spiffe://bench.local/ns/bench/sa/*"],
        }
    }


def _redis(tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    return {
        "ratelimit_backends": {"shared": {"type": "redis", "url": env["BENCH_REDIS_URL"]}},
        "upstreams": {"echo": {"global_rate_limit": {"rate": "1000/s", "backend": "shared"}}},
    }


VARIANTS: tuple[Variant, ...] = (
    Variant("grpc-off", "no gRPC port (grpc.enabled: false)", {"grpc": {"enabled": False}}),
    Variant("grpcio", "gRPC port on grpcio (grpc.server: grpcio)", {"grpc": {"server": "grpcio"}}),
    Variant(
        "grpc-upstream",
        "a gRPC upstream (adapter: grpc)",
        make=lambda tmp, env: {
            "upstreams": {
                "inventory": {"adapter": "grpc", "url": f"grpc://127.0.0.1:{free_port()}"}
            }
        },
    ),
    Variant(
        "tracing",
        "tracing on (OTLP/gRPC exporter)",
        make=lambda tmp, env: {
            "telemetry": {"tracing": {"endpoint": f"http://127.0.0.1:{free_port()}"}}
        },
    ),
    Variant(
        "tracing-http",
        "tracing on (OTLP/HTTP exporter)",
        make=lambda tmp, env: {
            "telemetry": {
                "tracing": {
                    "protocol": "http/protobuf",
                    "endpoint": f"http://127.0.0.1:{free_port()}/v1/traces",
                }
            }
        },
    ),
    Variant("oauth2", "an OAuth2 client-credentials upstream", make=_oauth2),
    Variant("redis", "a Redis global rate limit", make=_redis, services=("redis",)),
    Variant("mtls", "inbound mTLS listener", make=_mtls),
    Variant(
        "access-log-off",
        "access log off (its cost: baseline minus this)",
        {"telemetry": {"access_log": {"enabled": False}}},
    ),
)


@dataclass
class Run:
    ready: float  # seconds from exec to /readyz 200
    rss_ready: float  # MiB
    rss_idle: float  # MiB
    #: CPU seconds the process used until ready: what start-up costs, less sensitive than
    #: ``ready`` to other load on a shared machine (clock-tick resolution, 10 ms)
    cpu: float


@dataclass
class Config:
    key: str
    label: str
    argv: list[str]  # after the executable: ["run"] or ["run", "-c", path]
    admin: str
    bin: str
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)
    error: str | None = None


def vm_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_once(cfg: Config, idle: float, timeout: float, log: Path) -> Run:
    url = f"http://{cfg.admin}/readyz"
    with log.open("wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [cfg.bin, *cfg.argv], stdout=out, stderr=subprocess.STDOUT, env=cfg.env
        )
        try:
            deadline = t0 + timeout
            while not ready(url):
                if proc.poll() is not None:
                    raise RuntimeError(f"exited with {proc.returncode}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"/readyz not 200 within {timeout} s:\n{tail(log)}")
                time.sleep(0.005)
            took = time.monotonic() - t0
            at_ready = vm_kib(proc.pid, "VmRSS") / MiB
            cpu = cpu_ticks(proc.pid) / CLK_TCK
            time.sleep(idle)
            if proc.poll() is not None:
                raise RuntimeError(f"died while idle:\n{tail(log)}")
            return Run(took, at_ready, vm_kib(proc.pid, "VmRSS") / MiB, cpu)
        finally:
            stop(proc)


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found (apt-get install -y redis-server)")
    port = free_port()
    conf = tmp / "redis.conf"
    conf.write_text(f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {tmp}\n')
    proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    stop(proc)
    raise RuntimeError("redis-server did not start")


@dataclass
class Imported:
    """One top-level package as a start imported it."""

    ms: float = 0.0  # its modules' own import time
    modules: list[str] = field(default_factory=list)


def import_report(cfg: Config, tmp: Path, timeout: float) -> dict[str, Imported]:
    """Top-level package → what one start with ``PYTHONPROFILEIMPORTTIME`` (``-X importtime``)
    shows of it (works through a ``--baseline-ref`` wrapper)."""
    log = tmp / f"importtime-{cfg.key}.txt"
    traced = Config(cfg.key, cfg.label, cfg.argv, cfg.admin, cfg.bin, cfg.env)
    traced.env = {**cfg.env, "PYTHONPROFILEIMPORTTIME": "1"}
    start_once(traced, 0.0, timeout, log)
    out: dict[str, Imported] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            seen = out.setdefault(m.group(2).split(".")[0], Imported())
            seen.ms += int(m.group(1)) / 1000
            seen.modules.append(m.group(2))
    return out


def alone_rss(modules: list[str], python: str) -> float:
    """RSS (MiB) that importing ``modules`` (one package's, as a start imported them) adds to a
    fresh interpreter that imported asyncio. Its dependencies are counted with it."""
    code = (
        "import asyncio, importlib, sys\n"
        "def rss():\n"
        "    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])\n"
        "a = rss()\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        pass  # an optional import the package tried\n"
        "print(rss() - a)"
    )
    done = subprocess.run(
        [python, "-c", code, *modules], capture_output=True, text=True, timeout=60
    )
    return int(done.stdout.strip() or 0) / MiB if done.returncode == 0 else float("nan")


def environment(env: dict[str, str]) -> str:
    """What the figures depend on beside the code: load, cores, bytecode."""
    if "PYTHONPYCACHEPREFIX" in env:
        bytecode = "bytecode cached (as the image ships it)"
    elif env.get("PYTHONDONTWRITEBYTECODE"):
        bytecode = "PYTHONDONTWRITEBYTECODE set: the sidecar's own modules compile at every start"
    else:
        bytecode = "bytecode as Python finds it (__pycache__)"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores, load average {load}; {bytecode}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-c", "--config", help="config file (default: the embedded default)")
    p.add_argument("-n", "--runs", type=int, default=5, help="starts per config (5)")
    p.add_argument("--idle", type=float, default=1.0, help="seconds idle before the 2nd RSS (1)")
    p.add_argument("--only", help="comma-separated variant keys (default: all)")
    p.add_argument("--no-variants", action="store_true", help="the baseline only")
    p.add_argument("--free-ports", action="store_true", help="every listener on a free port")
    p.add_argument(
        "--why", action="store_true", help="what each variant imports more (-X importtime)"
    )
    p.add_argument("--baseline-ref", help="also run every config on this git commit")
    p.add_argument(
        "--cached-bytecode",
        action="store_true",
        help="run with bytecode cached (a private PYTHONPYCACHEPREFIX, warmed by one start),\n"
        "as the image does; by default the environment decides (PYTHONDONTWRITEBYTECODE)",
    )
    p.add_argument("--sidecar-bin", default=str(REPO / ".venv" / "bin" / "sidecar"))
    p.add_argument("--ready-timeout", type=float, default=20.0)
    p.add_argument("--keep-tmp", action="store_true")
    return p.parse_args(argv)


def chosen_variants(args: argparse.Namespace) -> list[Variant]:
    if args.no_variants:
        return []
    if not args.only:
        return list(VARIANTS)
    keys = set(args.only.split(","))
    unknown = keys - {v.key for v in VARIANTS}
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; known: {[v.key for v in VARIANTS]}")
    return [v for v in VARIANTS if v.key in keys]


def configs(
    args: argparse.Namespace, chosen: list[Variant], tmp: Path, env: dict[str, str]
) -> list[Config]:
    """The baseline and each chosen variant, as ``sidecar`` arguments (files written in tmp)."""
    if args.config:
        base = yaml.safe_load(Path(args.config).read_text())
    else:
        base = yaml.safe_load(resources.files("sidecar").joinpath("default.yaml").read_text())
    if args.free_ports:
        for section in ("admin", "http", "grpc"):
            base.setdefault(section, {})["address"] = f"127.0.0.1:{free_port()}"
    admin = base.get("admin", {}).get("address", "127.0.0.1:15000")
    out: list[Config] = []
    if args.config and not args.free_ports:
        out.append(Config("baseline", args.config, ["run", "-c", args.config], admin, "", env))
    elif not args.config and not args.free_ports:
        out.append(Config("baseline", "embedded default", ["run"], admin, "", env))
    else:
        path = tmp / "baseline.yaml"
        path.write_text(yaml.safe_dump(base))
        out.append(
            Config("baseline", "baseline (free ports)", ["run", "-c", str(path)], admin, "", env)
        )
    for v in chosen:
        extra = deep_merge(v.extra, v.make(tmp, env)) if v.make is not None else v.extra
        path = tmp / f"{v.key}.yaml"
        path.write_text(yaml.safe_dump(deep_merge(base, extra)))
        out.append(Config(v.key, v.label, ["run", "-c", str(path)], admin, "", env))
    return out


def report(cfgs: list[Config]) -> None:
    base = {c.bin: c for c in cfgs if c.key == "baseline"}
    print("| config | ready s | CPU to ready s | RSS at ready MB | RSS idle MB | Δ idle MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in cfgs:
        if c.error is not None or not c.runs:
            print(f"| {c.label} | FAILED | | | | |")
            continue
        idle = statistics.median(r.rss_idle for r in c.runs)
        b = base.get(c.bin)
        delta = "–"
        if c.key != "baseline" and b is not None and b.runs:
            delta = f"{idle - statistics.median(r.rss_idle for r in b.runs):+.1f}"
        print(
            f"| {c.label} | {statistics.median(r.ready for r in c.runs):.2f} "
            f"| {statistics.median(r.cpu for r in c.runs):.2f} "
            f"| {statistics.median(r.rss_ready for r in c.runs):.1f} | {idle:.1f} | {delta} |"
        )
    print(
        f"\nmedians of {max(len(c.runs) for c in cfgs)} starts each; ready = exec to /readyz "
        "200; Δ idle = idle RSS minus the baseline's"
    )


def compare(runs: list[Config], current: str, ref: str) -> None:
    """Each config at ``ref`` and now: idle RSS and time to ready, medians."""
    print(
        f"\n| config | idle RSS at {ref} → now MB | ready at {ref} → now s | CPU to ready → now s |"
    )
    print("|---|---:|---:|---:|")
    now = {c.key: c for c in runs if c.bin == current and c.runs}
    for c in runs:
        if c.bin == current or not c.runs or c.key not in now:
            continue
        n = now[c.key]
        rss = [statistics.median(r.rss_idle for r in x.runs) for x in (c, n)]
        ready = [statistics.median(r.ready for r in x.runs) for x in (c, n)]
        cpu = [statistics.median(r.cpu for r in x.runs) for x in (c, n)]
        print(
            f"| {n.label} | {rss[0]:.1f} → {rss[1]:.1f} ({rss[1] - rss[0]:+.1f}) "
            f"| {ready[0]:.2f} → {ready[1]:.2f} | {cpu[0]:.2f} → {cpu[1]:.2f} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="idle-memory-"))
    # the bench's own OTEL_* settings must not turn tracing on in the baseline
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    services: list[subprocess.Popen[bytes]] = []
    try:
        chosen = chosen_variants(args)
        if any("redis" in v.services for v in chosen):
            proc, env["BENCH_REDIS_URL"] = start_redis(tmp)
            services.append(proc)
        cfgs = configs(args, chosen, tmp, env)
        bins = [args.sidecar_bin]
        if args.baseline_ref:
            bins.append(baseline_worktree(args.baseline_ref, tmp))
        if args.cached_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        runs: list[Config] = []
        for c in cfgs:
            for b in bins:
                label = c.label if b == args.sidecar_bin else f"{c.label} [at {args.baseline_ref}]"
                runs.append(Config(c.key, label, c.argv, c.admin, b, env))
        print(environment(env), file=sys.stderr)
        if args.cached_bytecode:
            for c in runs:  # unmeasured: writes the bytecode every later start reads
                start_once(c, 0.0, args.ready_timeout, tmp / f"{c.key}.log")
        for i in range(args.runs):
            for c in runs:
                if c.error is not None:
                    continue
                try:
                    r = start_once(c, args.idle, args.ready_timeout, tmp / f"{c.key}.log")
                except RuntimeError as e:
                    c.error = str(e)
                    print(f"{c.label}: FAILED: {e}", file=sys.stderr)
                    continue
                c.runs.append(r)
                print(
                    f"round {i + 1} {c.label}: ready {r.ready:.3f} s (CPU {r.cpu:.2f} s), "
                    f"RSS {r.rss_ready:.1f} -> {r.rss_idle:.1f} MB",
                    file=sys.stderr,
                )
        report(runs)
        if args.baseline_ref:
            compare(runs, args.sidecar_bin, args.baseline_ref)
        print(f"\n{environment(env)}")
        if args.why:
            why(runs, tmp, args)
        return 1 if any(c.error for c in runs) else 0
    finally:
        for proc in services:
            stop(proc)
        remove_baseline(tmp)
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def why(runs: list[Config], tmp: Path, args: argparse.Namespace) -> None:
    python = str(Path(args.sidecar_bin).parent / "python")
    base: dict[str, dict[str, Imported]] = {}
    print("\n### What each config imports (one start under -X importtime)\n")
    for c in runs:
        if c.error is not None:
            continue
        packages = import_report(c, tmp, args.ready_timeout)
        if c.key == "baseline":
            base[c.bin] = packages
            heavy = sorted(packages.items(), key=lambda kv: -kv[1].ms)[:12]
            shown = ", ".join(f"{k} {v.ms:.0f} ms" for k, v in heavy)
            print(f"- {c.label}: {len(packages)} top-level packages; slowest: {shown}")
            continue
        extra = {k: v for k, v in packages.items() if k not in base.get(c.bin, {})}
        extra = {k: v for k, v in extra.items() if v.ms >= 0.5 and not k.startswith("_")}
        if not extra:
            print(f"- {c.label}: nothing more than the baseline")
            continue
        shown = ", ".join(
            f"{k} ({v.ms:.0f} ms, {alone_rss(v.modules, python):.1f} MB alone)"
            for k, v in sorted(extra.items(), key=lambda kv: -kv[1].ms)
        )
        print(f"- {c.label}: + {shown}")


if __name__ == "__main__":
    sys.exit(main())
