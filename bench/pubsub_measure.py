"""One measured publish run of the pub/sub bench, direct or through the sidecar, and its checks.

:func:`direct_publish` runs ``bench/pubsub_direct.py`` as its own process on the sidecar's core
and takes its figures (its messages, its CPU, its latencies); :func:`wrk_publish` drives the
sidecar with wrk and charges the sidecar's utime + stime (``/proc/<pid>/stat``, its children
included) to the 2xx answers. After each run the topic is counted on the broker: a direct run
must have put exactly what its client had confirmed, a sidecar run at least every 204 (and at
most the calls wrk left in flight more). Not here: brokers, sidecars, the report.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import urllib.request
from pathlib import Path

from http_proxy import CLK_TCK, LOAD_CORE, PROXY_CORE, parse_wrk, tree_cpu
from pubsub_direct import Counter

DIRECT = Path(__file__).resolve().parent / "pubsub_direct.py"


@dataclasses.dataclass
class Measured:
    backend: str = ""
    mode: str = ""  # "direct", "sidecar" or "deliver"
    concurrency: int = 1
    count: int = 0  # messages confirmed (publish) or delivered
    rate: float = 0.0  # per second
    p50: float = 0.0  # µs of one publish
    p99: float = 0.0
    cpu_us: float = 0.0  # CPU per message of the sidecar (or of the direct client)
    problems: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        text = f"{self.rate:9,.0f} msgs/s  "
        if self.mode != "deliver":
            text += f"p50 {self.p50:7.0f} µs  p99 {self.p99:7.0f} µs  "
        text += f"CPU {self.cpu_us:6.1f} µs/msg  ({self.count} msgs)"
        return text + ("  ⚠ " + "; ".join(self.problems) if self.problems else "")


def sidecar_cpu(pid: int) -> float:
    """CPU seconds of the sidecar and its children so far."""
    return sum(tree_cpu([pid]).values()) / CLK_TCK


async def run_bounded(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """A child process's exit code and output; killed and reaped past ``timeout`` or on error."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return int(proc.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace")


async def direct_publish(
    backend: str, url: str, topic: str, concurrency: int, counter: Counter,
    args: argparse.Namespace,
) -> Measured:  # fmt: skip
    before = await counter.count(topic)
    argv = ["taskset", "-c", str(PROXY_CORE), sys.executable, str(DIRECT), backend, url, topic,
            "--concurrency", str(concurrency), "--seconds", str(args.seconds),
            "--warmup", str(args.warmup)]  # fmt: skip
    rc, out, err = await run_bounded(argv, args.seconds + args.warmup + 60)
    if rc != 0:
        raise RuntimeError(f"direct {backend} publisher failed ({rc}):\n{err[-2000:]}")
    got = json.loads(out.strip().splitlines()[-1])
    m = Measured(count=got["measured"], rate=got["measured"] / got["seconds"])
    m.p50, m.p99 = got["p50_us"], got["p99_us"]
    m.cpu_us = got["cpu_s"] * 1e6 / max(got["measured"], 1)
    in_broker = await counter.settled_count(topic, before + got["published"]) - before
    if in_broker != got["published"]:
        m.problems.append(f"{got['published']} confirmed, {in_broker} in the broker")
    return m


async def wrk_publish(
    url: str, lua: Path, concurrency: int, seconds: float, *, counter: Counter | None = None,
    topic: str = "", pid: int = 0,
) -> Measured:  # fmt: skip
    """wrk on the load core posting ``lua``'s request; with ``counter``, a measured run."""
    before = await counter.count(topic) if counter is not None else 0
    cpu0 = sidecar_cpu(pid) if pid else 0.0
    argv = ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{concurrency}",
            f"-d{int(seconds)}s", "--timeout", "10s", "--latency", "-s", str(lua), url]  # fmt: skip
    rc, out, err = await run_bounded(argv, seconds + 60)
    cpu1 = sidecar_cpu(pid) if pid else 0.0
    if rc != 0:
        raise RuntimeError(f"wrk failed ({rc}):\n{out}\n{err}")
    rps, p50, p99, calls, non2xx, sock = parse_wrk(out)
    ok = calls - non2xx
    m = Measured(count=ok, rate=rps * ok / max(calls, 1), p50=p50, p99=p99)
    m.cpu_us = (cpu1 - cpu0) * 1e6 / max(ok, 1)
    if non2xx or sock:
        m.problems.append(f"{non2xx} answers not 204, socket errors {sock}")
    if counter is not None:
        # wrk stops with up to `concurrency` calls in flight: published, but not counted by it
        in_broker = await counter.settled_count(topic, before + ok) - before
        if not ok <= in_broker <= ok + concurrency:
            m.problems.append(f"{ok} answered 204, {in_broker} in the broker")
    return m


async def metric_sum(
    url: str, family: str, label: str, expect: float, within: float = 10.0
) -> float:
    """The sum of ``family``'s samples with ``label`` on a /metrics page, once it is ``expect``
    (acks are counted after the app's answer) or after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        text = await asyncio.to_thread(_get, url)
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(family + "{") and label in line
        )
        if total == expect or time.monotonic() > deadline:
            return total
        await asyncio.sleep(0.1)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return str(resp.read().decode())
