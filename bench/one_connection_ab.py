#!/usr/bin/env python3
"""Two sidecar builds at one connection, compared by paired short runs: the latency a change adds
or saves when nothing queues, where ``http_proxy.py --one-connection`` cannot see a few µs.

At one connection a proxy runs cold (its core idles between requests), and this machine's timing
drifts by tens of µs from one 5 s run to the next: a difference of medians taken minutes apart
mostly measures the drift. Here both builds run side by side with the same config in front of
one nginx upstream (pinned as in ``http_proxy.py``), and each round runs ``wrk -c1`` for
``--duration`` seconds against each, in alternating order (A B, then B A: whichever runs first
in a round has an edge of a few µs on this machine), so each round's difference sees the same
machine state. It prints both builds' median p50 and the median of the per-round differences.

    .venv/bin/python bench/one_connection_ab.py NEW/bin/sidecar OLD/bin/sidecar
    .venv/bin/python bench/one_connection_ab.py NEW/bin/sidecar OLD/bin/sidecar --variant sidecar

Needs ``wrk``, ``nginx``, ``taskset`` and two cores; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import http_proxy as hp


def p50_us(url: str, seconds: float) -> float:
    """``wrk -c1`` against ``url`` for ``seconds``: its p50 in µs."""
    out = subprocess.run(
        hp.wrk_argv(url, 1, seconds), capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    if m is None:
        raise RuntimeError(f"no p50 in wrk's output:\n{out}")
    return float(m.group(1)) * {"us": 1.0, "ms": 1e3, "s": 1e6}[m.group(2)]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("a", metavar="A", help="a sidecar executable (the change)")
    p.add_argument("b", metavar="B", help="another (the build before it)")
    p.add_argument("--variant", default="sidecar-full", help="http_proxy.py's (sidecar-full)")
    p.add_argument("-n", "--rounds", type=int, default=30, help="rounds (30)")
    p.add_argument("-d", "--duration", type=float, default=1.0, help="seconds per run (1)")
    args = p.parse_args(argv)
    known = {v.key: v for v in hp.SIDECAR_VARIANTS}
    if args.variant not in known or known[args.variant].services:
        sys.exit(f"--variant: one of {sorted(k for k, v in known.items() if not v.services)}")
    variant = known[args.variant]
    procs = hp.Processes()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as t:
        tmp = Path(t)
        try:
            up = hp.free_port()
            hp.start_nginx(procs, tmp, "upstream", hp.NGINX_UPSTREAM.format(port=up), hp.LOAD_CORE)
            err = hp.wait_http(f"http://127.0.0.1:{up}/", 10, hp.BODY)
            if err:
                raise RuntimeError(f"upstream nginx not answering: {err}")
            env = {"BENCH_API_KEY": "bench-api-key"}
            targets = []
            for tag, exe in (("a", args.a), ("b", args.b)):
                v = dataclasses.replace(variant, key=f"{variant.key}-{tag}")
                target = hp.start_sidecar(procs, tmp, v, up, exe, [], 20, env)
                if target.broken:
                    raise RuntimeError(f"{exe}: {target.broken}")
                subprocess.run(hp.wrk_argv(target.url, 1, 1, latency=False), capture_output=True)
                targets.append(target)
            a_runs: list[float] = []
            b_runs: list[float] = []
            for i in range(args.rounds):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                got = {k: p50_us(targets[k].url, args.duration) for k in order}
                a_runs.append(got[0])
                b_runs.append(got[1])
        except RuntimeError as e:
            print(f"FAILED: {e}", file=sys.stderr)
            return 1
        finally:
            procs.close()
    diffs = [x - y for x, y in zip(a_runs, b_runs, strict=True)]
    print(f"{variant.label}, wrk -c1, {args.rounds} rounds of {args.duration:g} s each, A B / B A")
    print(f"A {args.a} ({hp.sidecar_build(args.a)}): median p50 {statistics.median(a_runs):.0f} µs")
    print(f"B {args.b} ({hp.sidecar_build(args.b)}): median p50 {statistics.median(b_runs):.0f} µs")
    low, _, high = statistics.quantiles(diffs, n=4)
    print(f"A - B per round: median {statistics.median(diffs):+.1f} µs", end="")
    print(f" (quartiles {low:+.0f} / {high:+.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
