#!/usr/bin/env python3
"""What the sidecar container needs in a pod: memory and CPU, measured, and the resources to ask.

Runs ``sidecar run`` on the embedded default (sidecar/default.yaml: the ``echo`` upstream is
answered in the process, so only the sidecar is measured), with its listeners on free loopback
ports and ``admin.metrics_address`` on as a pod has it, then:

1. **idle**: RSS and CPU over ``--idle`` seconds after ``/readyz`` answered 200 (what a pod that
   gets no calls costs: the file polls, the metrics port);
2. **load**: ``wrk -t1 -c50 -d10s`` against ``/echo/hello`` (access log on, as by default, to a
   file): requests, CPU seconds per 1000 requests, cores used, RSS after the run and peak RSS.

The sidecar runs alone on core 0 and wrk on core 1 (``taskset``), as bench/http_proxy.py does.
It prints the figures and the suggested ``resources`` (how each is derived is printed with it):

    .venv/bin/python bench/pod_resources.py               # 5 s idle, 10 s of load
    .venv/bin/python bench/pod_resources.py -d 3 --idle 2 # a smoke run
    .venv/bin/python bench/pod_resources.py --rate 500    # size the CPU request for 500 calls/s

Requires wrk (``apt-get install -y wrk``) and taskset. Exit 1 if the sidecar or wrk failed.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml
from http_proxy import (
    CLK_TCK,
    LOAD_CORE,
    PROXY_CORE,
    REPO,
    children_of,
    cpu_delta_seconds,
    free_port,
    parse_wrk,
    run_reaped,
    tree_cpu,
    wait_http,
)

MiB = 1024 * 1024
TMPFS_MIB = 16  # the pod's /tmp emptyDir (medium: Memory) counts against the memory limit


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    return sum(status_kib(p, "VmRSS") for p in [pid, *children_of(pid)]) / 1024


def config(tmp: Path) -> tuple[Path, int, int]:
    """The embedded default on free ports; -> (path, http port, metrics port)."""
    data = yaml.safe_load(resources.files("sidecar").joinpath("default.yaml").read_text())
    http, metrics = free_port(), free_port()
    data["admin"] = {
        "address": f"127.0.0.1:{free_port()}",
        "metrics_address": f"127.0.0.1:{metrics}",
    }
    data["http"] = {"address": f"127.0.0.1:{http}"}
    data["grpc"] = {"address": f"127.0.0.1:{free_port()}"}
    path = tmp / "sidecar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, http, metrics


def ceil_to(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", "--duration", type=float, default=10.0, help="wrk seconds (10)")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections (50)")
    p.add_argument("--idle", type=float, default=5.0, help="idle measurement seconds (5)")
    p.add_argument(
        "--rate", type=float, default=100.0, help="calls/s one pod is sized for (CPU request; 100)"
    )
    p.add_argument("--sidecar", default=str(REPO / ".venv" / "bin" / "sidecar"))
    args = p.parse_args()
    pin = (os.cpu_count() or 1) >= 2

    with tempfile.TemporaryDirectory(prefix="pod-resources-") as tmp_name:
        tmp = Path(tmp_name)
        path, http, metrics = config(tmp)
        argv = [args.sidecar, "run", "-c", str(path)]
        if pin:
            argv = ["taskset", "-c", str(PROXY_CORE), *argv]
        log = tmp / "stderr.log"
        with open(log, "wb") as err, open(tmp / "access.log", "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            problem = wait_http(f"http://127.0.0.1:{metrics}/readyz", 30.0, proc=proc)
            if problem is None:
                problem = wait_http(f"http://127.0.0.1:{http}/echo/hello", 5.0, proc=proc)
            if problem is not None:
                print(f"sidecar not ready: {problem}\n{log.read_text()[-3000:]}", file=sys.stderr)
                return 1
            pid = proc.pid  # taskset execs the sidecar: the same process

            # 1. idle: a measurement window, nothing to wait for
            before = tree_cpu([pid])
            time.sleep(args.idle)
            idle_cpu_m = cpu_delta_seconds(before, tree_cpu([pid])) / args.idle * 1000
            idle_rss = tree_rss_mib(pid)

            # 2. load
            wrk = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration:g}s", "--latency"]
            if pin:
                wrk = ["taskset", "-c", str(LOAD_CORE), *wrk]
            before = tree_cpu([pid])
            started = time.monotonic()
            rc, wrk_out, wrk_err = run_reaped(
                [*wrk, f"http://127.0.0.1:{http}/echo/hello"], args.duration + 60
            )
            wall = time.monotonic() - started
            cpu_s = cpu_delta_seconds(before, tree_cpu([pid]))
            if rc != 0:
                print(f"wrk failed ({rc}): {wrk_out}\n{wrk_err}", file=sys.stderr)
                return 1
            rps, p50, p99, requests, non2xx, sock = parse_wrk(wrk_out)
            load_rss = tree_rss_mib(pid)
            peak_rss = status_kib(pid, "VmHWM") / 1024
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    per_1000 = cpu_s / requests * 1000
    cores = cpu_s / wall
    suggested = [
        (
            "requests.cpu",
            f"{ceil_to(idle_cpu_m + per_1000 * args.rate, 10)}m",
            f"idle + {args.rate:g} calls/s (--rate) x the CPU per call, rounded up to 10m",
        ),
        (
            "requests.memory",
            f"{ceil_to(load_rss * 1.2, 16)}Mi",
            "RSS after the load x 1.2, rounded up to 16Mi",
        ),
        (
            "limits.cpu",
            f"{max(1000, ceil_to(cores * 1000, 100))}m",
            "the cores used under the load, rounded up to 100m, and at least one: the data "
            "path is one event loop, which a lower limit throttles",
        ),
        (
            "limits.memory",
            f"{ceil_to(peak_rss * 2 + TMPFS_MIB, 32)}Mi",
            f"peak RSS x 2 (more connections than this run, bodies buffered for retries) "
            f"+ the {TMPFS_MIB}Mi /tmp tmpfs, rounded up to 32Mi",
        ),
    ]

    where = f"sidecar on core {PROXY_CORE}, wrk on core {LOAD_CORE}" if pin else "not pinned"
    print(
        f"sidecar run on the embedded default; wrk -t1 -c{args.connections} "
        f"-d{args.duration:g}s against /echo/hello; {where}; CPU ticks of {1000 / CLK_TCK:g} ms\n"
    )
    print("| measured | value |\n|---|---:|")
    print(f"| idle RSS | {idle_rss:.1f} MiB |")
    print(f"| idle CPU | {idle_cpu_m:.1f} millicores |")
    print(f"| load: requests | {requests:,} ({rps:,.0f}/s) |")
    print(f"| load: latency p50 / p99 | {p50 / 1000:.2f} / {p99 / 1000:.2f} ms |")
    print(f"| load: CPU seconds per 1000 requests | {per_1000:.3f} |")
    print(f"| load: cores used | {cores:.2f} |")
    print(f"| load: RSS after the run / peak RSS | {load_rss:.1f} / {peak_rss:.1f} MiB |")
    if non2xx or sock:
        print(f"| load: non-2xx / socket errors | {non2xx} / {sock} |")
    print("\n| suggested | value | from |\n|---|---:|---|")
    for name, value, why in suggested:
        print(f"| {name} | {value} | {why} |")
    values = {name: value for name, value, _ in suggested}
    print(
        "\nresources:\n"
        f"  requests: {{cpu: {values['requests.cpu']}, memory: {values['requests.memory']}}}\n"
        f"  limits: {{cpu: {values['limits.cpu']}, memory: {values['limits.memory']}}}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
