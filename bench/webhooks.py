#!/usr/bin/env python3
"""Webhooks plugin benchmark: deliveries per second from the sidecar to a receiver, and the
app's 202 latency, against a plain aiohttp client sending the same signed requests.

One run starts a receiver (``bench/counting_server.py``: it verifies each ``webhook-signature``
with one HMAC-SHA256 and counts each (endpoint, ``webhook-id``) once) and a sidecar whose
``webhooks`` upstream has ``--endpoints`` endpoints, all on that receiver, subscribed to every
event type. Each round, interleaved:

1. **accept**: the receiver holds what reaches it, and the app (this script, aiohttp) posts
   ``--events`` events at ``--app-concurrency``: each 202 comes once the event and its
   deliveries are fsynced in the file store. Latency p50/p99 of a post, the sidecar's CPU per
   accepted event.
2. **deliver**: the receiver is released; deliveries/s until every event reached every
   endpoint, and the sidecar's CPU per delivery (utime + stime from ``/proc/<pid>/stat``).
3. **direct**: the peer, ``--direct-client`` in a process of its own on the sidecar's core:
   aiohttp POSTing the same bodies, signed the same way, to the same endpoints, with as many
   requests in flight as the sidecar may have (endpoints × ``--endpoint-concurrency``).

With ``--queue redis`` the sidecar queues in Redis Streams instead of the directory (the plugin's
other queue), on a private ``redis-server`` with ``appendfsync always``, so that each accept is
as durable as the file store's fsync; Redis's own CPU is not the sidecar's.

Checks: every post answered 202 naming every endpoint, every delivery signed right and
received once, the sidecar's ``delivered`` count and an empty pending queue at the end.

    .venv/bin/python bench/webhooks.py                      # 3 rounds of 2000 events × 3 endpoints
    .venv/bin/python bench/webhooks.py --events 100 --runs 1   # smoke
    .venv/bin/python bench/webhooks.py --queue redis
    .venv/bin/python bench/webhooks.py --sidecar-bin /tmp/sidecar-compiled/venv/bin/sidecar
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from counting_server import CountingServer
from http_proxy import (
    LOAD_CORE,
    PROXY_CORE,
    Processes,
    free_port,
    sidecar_build,
    tail,
    wait_http,
)
from pubsub_measure import metric_sum, run_bounded, sidecar_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "webhooks" / "tests"))
from webhooks_redis import RedisServer  # noqa: E402 - the plugin tests' redis-server helper

REPO = Path(__file__).resolve().parent.parent
BODY = json.dumps({"order": 42, "customer": "c-1001", "items": [{"sku": "A-1", "qty": 2}]})
EVENT_TYPE = "order.created"
QUEUE_HELP = "the sidecar's queue: a directory (default) or Redis Streams (appendfsync always)"
LABELS = {"file": "sidecar (file store, fsynced)", "redis": "sidecar (Redis Streams queue)"}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Verifier:
    """The receiver's check: a valid Standard Webhooks signature, each (path, id) counted once."""

    def __init__(self, secret: str) -> None:
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.bad = 0

    def __call__(self, path: str, headers: dict[str, str], body: bytes) -> int:
        msg_id = headers.get("webhook-id", "")
        expected = sign(self.key, msg_id, headers.get("webhook-timestamp", ""), body)
        if expected not in headers.get("webhook-signature", "").split(" "):
            self.bad += 1
            return 401
        self.duplicates += (path, msg_id) in self.seen
        self.seen.add((path, msg_id))
        return 200


@dataclasses.dataclass
class Round:
    accept_p50: float = 0.0  # µs, one post answered 202
    accept_p99: float = 0.0
    accept_cpu_us: float = 0.0  # sidecar CPU per accepted event
    deliveries_s: float = 0.0
    delivery_cpu_us: float = 0.0
    direct_s: float = 0.0  # the aiohttp peer's requests/s
    direct_cpu_us: float = 0.0  # its CPU per request
    problems: list[str] = dataclasses.field(default_factory=list)


def sidecar_config(
    args: argparse.Namespace,
    receiver: str,
    store: Path,
    redis_url: str | None,
    admin: int,
    http: int,
) -> dict[str, Any]:
    endpoints = {
        f"e{i}": {"url": f"{receiver}/e{i}", "events": ["*"], "secrets": [{"env": "BENCH_WHSEC"}],
                  "concurrency": args.endpoint_concurrency, "timeout": "300s",
                  "breaker": {"failures": 0}}
        for i in range(args.endpoints)
    }  # fmt: skip
    options: dict[str, Any] = {
        "endpoints": endpoints,
        "max_pending": max(100_000, 2 * args.events * args.endpoints),
    }
    if redis_url is None:
        options["store_dir"] = str(store)
    else:
        options["redis"] = {"url": redis_url, "key_prefix": "bench:"}
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "http": {"address": f"127.0.0.1:{http}"},
        "grpc": {"address": f"127.0.0.1:{free_port()}"},
        "telemetry": {"log_level": "warning"},
        "upstreams": {"hooks": {"adapter": "webhooks", "options": options}},
    }


async def post_events(
    url: str, count: int, concurrency: int, endpoints: int
) -> tuple[list[float], list[str]]:
    """The app: ``count`` posts; (latency µs of each 202, problems)."""
    import aiohttp

    latencies: list[float] = []
    problems: list[str] = []
    left = iter(range(count))
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def one_app_task() -> None:
            for _ in left:
                t = time.perf_counter()
                async with http.post(url, data=BODY, headers=headers) as resp:
                    answer = await resp.read()
                latencies.append((time.perf_counter() - t) * 1e6)
                if resp.status != 202 or len(json.loads(answer).get("endpoints", [])) != endpoints:
                    problems.append(f"post answered {resp.status}: {answer[:200]!r}")

        await asyncio.gather(*(one_app_task() for _ in range(concurrency)))
    return latencies, problems[:5]


async def one_round(
    rnd: int,
    args: argparse.Namespace,
    receiver: CountingServer,
    verifier: Verifier,
    pid: int,
    admin: str,
    post_url: str,
) -> Round:
    r = Round()
    expect = args.events * args.endpoints
    verifier.seen.clear()
    receiver.holding = True
    cpu0 = sidecar_cpu(pid)
    latencies, r.problems = await post_events(post_url, args.events, args.app_concurrency,
                                              args.endpoints)  # fmt: skip
    cpu1 = sidecar_cpu(pid)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    r.accept_p50, r.accept_p99 = q[49], q[98]
    r.accept_cpu_us = (cpu1 - cpu0) * 1e6 / max(len(latencies), 1)
    t0 = time.monotonic()
    receiver.release()
    deadline = t0 + max(60.0, expect / 50)
    while len(verifier.seen) < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    t1, cpu2 = (receiver.last_at or time.monotonic()), sidecar_cpu(pid)
    got = len(verifier.seen)
    r.deliveries_s = got / max(t1 - t0, 1e-9)
    r.delivery_cpu_us = (cpu2 - cpu1) * 1e6 / max(got, 1)
    if got != expect:
        r.problems.append(f"{got} of {expect} deliveries received")
    pending = await metric_sum(admin + "/metrics", "sidecar_webhooks_queued", 'state="pending"', 0)
    if pending:
        r.problems.append(f"{pending:g} deliveries still pending after all were received")
    # the direct peer: the same signed requests, as many in flight as the sidecar may have
    verifier.seen.clear()
    argv = [
        "taskset",
        "-c",
        str(PROXY_CORE),
        sys.executable,
        __file__,
        "--direct-client",
        receiver.url,
        "--events",
        str(args.events),
        "--endpoints",
        str(args.endpoints),
        "--endpoint-concurrency",
        str(args.endpoint_concurrency),
        "--round",
        str(rnd),
    ]
    rc, out, err = await run_bounded(argv, 60 + expect / 50)
    if rc != 0:
        raise RuntimeError(f"direct client failed ({rc}):\n{err[-2000:]}")
    direct = json.loads(out.strip().splitlines()[-1])
    r.direct_s = direct["sent"] / direct["seconds"]
    r.direct_cpu_us = direct["cpu_s"] * 1e6 / max(direct["sent"], 1)
    if direct["sent"] != expect or len(verifier.seen) != expect or direct["failed"]:
        r.problems.append(f"direct: {direct['sent']} sent, {direct['failed']} failed, "
                          f"{len(verifier.seen)} of {expect} received")  # fmt: skip
    return r


async def direct_client(args: argparse.Namespace) -> dict[str, Any]:
    """The peer: every (event, endpoint) POSTed once, signed afresh, ``in flight`` at once."""
    import aiohttp

    key = base64.b64decode(os.environ["BENCH_WHSEC"].removeprefix("whsec_"))
    body = BODY.encode()
    jobs = iter([(f"direct_{args.round}_{n}", i) for n in range(args.events)
                 for i in range(args.endpoints)])  # fmt: skip
    in_flight = args.endpoints * args.endpoint_concurrency
    sent = failed = 0
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one_sender() -> None:
            nonlocal sent, failed
            for msg_id, endpoint in jobs:
                ts = str(int(time.time()))
                headers = {
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": ts,
                    "webhook-signature": sign(key, msg_id, ts, body),
                }
                async with http.post(
                    f"{args.direct_client}/e{endpoint}", data=body, headers=headers
                ) as resp:
                    await resp.read()
                sent += 1
                failed += resp.status != 200

        cpu, t = time.process_time(), time.monotonic()
        await asyncio.gather(*(one_sender() for _ in range(in_flight)))
        seconds, cpu = time.monotonic() - t, time.process_time() - cpu
    return {"sent": sent, "failed": failed, "seconds": seconds, "cpu_s": cpu}


def report(rounds: list[Round], args: argparse.Namespace) -> str:
    def med(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rounds))

    head = (
        f"build: {sidecar_build(args.sidecar_bin)}\n"
        f"{args.events} events × {args.endpoints} endpoints per round, {args.runs} rounds "
        f"(median); app posting at concurrency {args.app_concurrency}; up to "
        f"{args.endpoint_concurrency} deliveries in flight per endpoint; sidecar or direct "
        f"client on core {PROXY_CORE}, receiver + app on core {LOAD_CORE}."
    )
    rows = [
        "| path | deliveries/s | CPU µs/delivery | 202 p50 / p99 | sidecar CPU µs/accept |",
        "|---|---:|---:|---:|---:|",
        f"| {LABELS[args.queue]} | {med('deliveries_s'):,.0f} | "
        f"{med('delivery_cpu_us'):.0f} | {med('accept_p50') / 1000:.2f} / "
        f"{med('accept_p99') / 1000:.2f} ms | {med('accept_cpu_us'):.0f} |",
        f"| direct: aiohttp, same signed requests | {med('direct_s'):,.0f} | "
        f"{med('direct_cpu_us'):.0f} | – | – |",
    ]
    ratio = (
        f"sidecar ÷ direct: deliveries/s {med('deliveries_s') / med('direct_s'):.2f}, "
        f"CPU per delivery {med('delivery_cpu_us') / med('direct_cpu_us'):.2f}"
    )
    problems = [p for r in rounds for p in r.problems]
    out = head + "\n\n" + "\n".join(rows) + "\n\n" + ratio
    out += "\n\nchecks: " + ("every count as expected" if not problems else "FAILED")
    return out + "".join(f"\n- {p}" for p in problems[:20])


async def run_all(args: argparse.Namespace, procs: Processes, tmp: Path) -> tuple[str, bool]:
    verifier = Verifier(os.environ["BENCH_WHSEC"])
    receiver = await CountingServer(verifier).start()
    redis = None
    try:
        admin, http = free_port(), free_port()
        store = Path(args.store_dir) if args.store_dir else tmp / "store"
        if args.queue == "redis":  # fsynced at every write, as the file store is
            redis = RedisServer(persistent=True).start()
        config = sidecar_config(
            args, receiver.url, store, redis.url if redis else None, admin, http
        )
        path = tmp / "sidecar.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        log = tmp / "sidecar.log"
        proc = procs.start([args.sidecar_bin, "run", "-c", str(path)], PROXY_CORE, log)
        err = wait_http(f"http://127.0.0.1:{admin}/readyz", args.ready_timeout, proc=proc)
        if err is not None:
            raise RuntimeError(f"sidecar not ready: {err}\n{tail(log)}")
        rounds: list[Round] = []
        for rnd in range(args.runs):
            r = await one_round(rnd, args, receiver, verifier, proc.pid,
                                f"http://127.0.0.1:{admin}",
                                f"http://127.0.0.1:{http}/hooks/{EVENT_TYPE}")  # fmt: skip
            r.problems += [ln[:300] for ln in log.read_text(errors="replace").splitlines()
                           if '"level": "' in ln or "Traceback" in ln][:5]  # fmt: skip
            rounds.append(r)
            print(f"[{rnd + 1}/{args.runs}] sidecar {r.deliveries_s:8,.0f} deliveries/s "
                  f"{r.delivery_cpu_us:5.0f} µs/delivery, 202 p50 {r.accept_p50 / 1000:.2f} ms "
                  f"p99 {r.accept_p99 / 1000:.2f} ms, {r.accept_cpu_us:.0f} µs/accept; direct "
                  f"{r.direct_s:8,.0f}/s {r.direct_cpu_us:5.0f} µs/request "
                  f"{'; '.join(r.problems)}", file=sys.stderr, flush=True)  # fmt: skip
        delivered = await metric_sum(f"http://127.0.0.1:{admin}/metrics",
                                     "sidecar_webhooks_deliveries_total", 'outcome="delivered"',
                                     args.runs * args.events * args.endpoints)  # fmt: skip
        if delivered != args.runs * args.events * args.endpoints:
            rounds[-1].problems.append(f"the sidecar counted {delivered:g} delivered")
        if verifier.bad or receiver.refused:
            rounds[-1].problems.append(f"{verifier.bad} deliveries with a bad signature")
        return report(rounds, args), any(r.problems for r in rounds)
    finally:
        procs.close()  # the sidecar before its queue's Redis
        if redis is not None:
            redis.stop()
        await receiver.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Webhooks: sidecar deliveries vs a direct client.")
    p.add_argument("--events", type=int, default=2000, help="events per round (2000)")
    p.add_argument("--endpoints", type=int, default=3, help="endpoints per event (3)")
    p.add_argument("--endpoint-concurrency", type=int, default=8, help="per endpoint (8)")
    p.add_argument("--app-concurrency", type=int, default=1, help="app posts in flight (1)")
    p.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--queue", choices=["file", "redis"], default="file", help=QUEUE_HELP)
    p.add_argument("--store-dir", help="the sidecar's store (default: in the temp dir)")
    p.add_argument("--sidecar-bin", default=str(REPO / ".venv" / "bin" / "sidecar"))
    p.add_argument("--ready-timeout", type=float, default=30.0, help="start-up bound (s)")
    p.add_argument("--direct-client", help=argparse.SUPPRESS)
    p.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.direct_client:
        with contextlib.suppress(ImportError):
            import uvloop  # as the sidecar runs on it

            uvloop.install()
        print(json.dumps(asyncio.run(direct_client(args))))
        return 0
    if not {PROXY_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {PROXY_CORE} and {LOAD_CORE}")
    os.sched_setaffinity(0, {LOAD_CORE})
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.environ["BENCH_WHSEC"] = new_secret()  # the sidecar and the direct client read it
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="sidecar-webhooks-bench-") as tmp:
        try:
            text, failed = asyncio.run(run_all(args, procs, Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            procs.close()
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
