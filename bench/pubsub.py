#!/usr/bin/env python3
"""Pub/sub plugin benchmark: publishing directly with each broker's client vs through the
sidecar, and deliveries per second from a subscription to an app.

For each backend (Redis Streams, RabbitMQ, MQTT, Kafka on Tansu) one run starts the broker (the
plugin tests' own helpers, on free 127.0.0.1 ports), then:

- **publish**: the broker's own Python client publishing with the confirmation the sidecar waits
  for (``bench/pubsub_direct.py``), against wrk posting ``POST /events/<topic>`` to a sidecar
  over keep-alive connections (each answered 204 once the broker confirmed), at one publisher
  (latency p50/p99) and at ``--concurrency`` (messages/s), interleaved over ``--runs`` rounds.
  The sidecar's CPU per publish is its utime + stime over the wrk run. What reached the broker
  is counted after each run (every 204 must be there).
- **deliveries**: a second sidecar with a subscription delivering to a minimal app
  (``bench/counting_server.py``), which holds the first deliveries while ``--messages`` are
  loaded into the broker, then is released: messages/s until every one was answered 200, and
  the sidecar's CPU per delivery; every id must arrive and be counted ``ack``.

Pinning (2 cores): the sidecar, or the direct publisher in its place, runs on core 0; the
brokers, wrk, the app and this script on core 1.

    .venv/bin/python bench/pubsub.py                      # every backend, 3 rounds of 5 s
    .venv/bin/python bench/pubsub.py --seconds 1 --runs 1 --messages 500 --only redis
    .venv/bin/python bench/pubsub.py --sidecar-bin /tmp/sidecar-compiled/venv/bin/sidecar
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
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
from pubsub_direct import DATA, EXCHANGE, Counter, Publisher, publish_many
from pubsub_measure import Measured, direct_publish, metric_sum, sidecar_cpu, wrk_publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins" / "pubsub" / "tests"))
from pubsub_brokers import (  # noqa: E402 - the plugin tests' broker helpers
    MosquittoBroker,
    RabbitMQBroker,
    RedisBroker,
    TansuBroker,
)

#: each backend's broker, started by the plugin tests' helper class
BACKENDS: dict[str, Any] = {"redis": RedisBroker, "rabbitmq": RabbitMQBroker,
                            "mqtt": MosquittoBroker, "kafka": TansuBroker}  # fmt: skip
DELIVER_TOPIC, GROUP = "deliver", "bench"


def start_broker(backend: str, messages: int) -> Any:
    broker = BACKENDS[backend]()
    if backend == "mqtt":  # mosquitto must queue the whole preload for the held consumer
        broker.conf.write_text(
            f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest stdout\nmax_queued_messages {messages + 10_000}\n"
        )
    return broker.start()


def sidecar_config(backend: str, url: str, topics: list[str], admin: int, http: int,
                   app: str | None = None, concurrency: int = 1) -> dict[str, Any]:  # fmt: skip
    options: dict[str, Any] = {"topics": topics}
    if backend == "rabbitmq":
        options["backend"] = {"exchange": EXCHANGE}
    config: dict[str, Any] = {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "http": {"address": f"127.0.0.1:{http}"},
        "grpc": {"address": f"127.0.0.1:{free_port()}"},
        "telemetry": {"log_level": "warning"},
        "upstreams": {"events": {"adapter": "pubsub", "url": url, "options": options}},
    }
    if app is not None:
        options["subscriptions"] = [
            {"topic": DELIVER_TOPIC, "group": GROUP, "path": "/in", "concurrency": concurrency,
             "timeout": "300s", "retry": {"attempts": 5, "backoff": "100ms"}}
        ]  # fmt: skip
        config["plugins"] = {"pubsub": {"app": app, "consumer": "bench-1"}}
    return config


def start_sidecar(procs: Processes, tmp: Path, name: str, config: dict[str, Any],
                  args: argparse.Namespace) -> tuple[int, str, Path]:  # fmt: skip
    """-> (pid, its HTTP base URL, its log), once ``/readyz`` answered 200."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = tmp / f"{name}.log"
    proc = procs.start([args.sidecar_bin, "run", "-c", str(path)], PROXY_CORE, log)
    admin = config["admin"]["address"]
    err = wait_http(f"http://{admin}/readyz", args.ready_timeout, proc=proc)
    if err is not None:
        raise RuntimeError(f"sidecar {name} not ready: {err}\n{tail(log)}")
    return proc.pid, f"http://{config['http']['address']}", log


def post_once(url: str) -> int:
    body = json.dumps(DATA).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"}, method="POST")  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
        return int(resp.status)


def log_problems(log: Path, in_flight: int = 0) -> list[str]:
    """Warnings, errors and tracebacks in a sidecar's log.

    wrk stops with up to ``in_flight`` calls unanswered: each is logged as an aborted call (499)
    and its publish is cancelled. On RabbitMQ aiormq then logs the confirm that comes back for it
    as ignored, or closes the publishing channel if the cancel hit an RPC (the backend declares
    the exchange before each publish). Up to ``in_flight`` of each are expected.
    """
    found: list[str] = []
    aborted = ignored = 0
    for line in log.read_text(errors="replace").splitlines():
        if '"status": 499' in line:
            aborted += 1
        elif ("confirmed" in line and "was ignored" in line) or (
            "aiormq.channel" in line and "Closing channel" in line and "cancelled" in line
        ):
            ignored += 1
        elif '"level": "warning"' in line or '"level": "error"' in line or "Traceback" in line:
            found.append(line[:300])
    if aborted > in_flight or ignored > in_flight:
        found.append(f"{aborted} aborted calls, {ignored} ignored confirms: over {in_flight}")
    return found[:5]


async def bench_publish(backend: str, broker: Any, procs: Processes, tmp: Path,
                        args: argparse.Namespace) -> list[Measured]:  # fmt: skip
    counter = await Counter(backend, broker.url).open()
    try:
        cases = [("direct", 1), ("sidecar", 1), ("direct", args.concurrency),
                 ("sidecar", args.concurrency)]  # fmt: skip
        topics = {case: f"{case[0]}.c{case[1]}" for case in cases}
        for topic in topics.values():
            await counter.prepare(topic)
        via = [topics[c] for c in cases if c[0] == "sidecar"]
        admin, http = free_port(), free_port()
        config = sidecar_config(backend, broker.url, via, admin, http)
        pid, base, log = start_sidecar(procs, tmp, f"{backend}-publish", config, args)
        if (status := post_once(f"{base}/events/{via[0]}")) != 204:
            raise RuntimeError(f"{backend}: a publish through the sidecar answered {status}")
        lua = tmp / "publish.lua"
        lua.write_text('wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n'
                       f"wrk.body = [==[{json.dumps(DATA)}]==]\n")  # fmt: skip
        await wrk_publish(f"{base}/events/{via[-1]}", lua, args.concurrency, args.warmup)
        results: list[Measured] = []
        os.truncate(log, 0)  # the warm-up's aborted calls are not the first run's
        for rnd in range(args.runs):
            for mode, conc in cases:
                topic = topics[(mode, conc)]
                if mode == "direct":
                    m = await direct_publish(backend, broker.url, topic, conc, counter, args)
                else:
                    m = await wrk_publish(f"{base}/events/{topic}", lua, conc, args.seconds,
                                          counter=counter, topic=topic, pid=pid)  # fmt: skip
                    m.problems += log_problems(log, args.concurrency)
                    os.truncate(log, 0)
                m.backend, m.mode, m.concurrency = backend, mode, conc
                results.append(m)
                print(f"[{rnd + 1}/{args.runs}] {backend:8} {mode:7} c={conc:<3} {m.line()}",
                      file=sys.stderr, flush=True)  # fmt: skip
        return results
    finally:
        await counter.close()


async def bench_deliveries(backend: str, broker: Any, procs: Processes, tmp: Path,
                           args: argparse.Namespace) -> Measured:  # fmt: skip
    seen: set[str] = set()
    dups = 0

    def check(path: str, headers: dict[str, str], body: bytes) -> int:
        nonlocal dups
        ce_id = headers.get("ce-id", "")
        dups += ce_id in seen
        seen.add(ce_id)
        return 200 if ce_id and path == "/in" else 400

    app = await CountingServer(check).start()
    app.holding = True
    counter = await Counter(backend, broker.url).open()
    publisher = await Publisher(backend, broker.url).open()
    try:
        if backend == "kafka":  # the topic exists before the sidecar's group joins it
            await counter.prepare(DELIVER_TOPIC)
        admin, http = free_port(), free_port()
        config = sidecar_config(backend, broker.url, [DELIVER_TOPIC], admin, http, app.url,
                                args.delivery_concurrency)  # fmt: skip
        pid, _, log = start_sidecar(procs, tmp, f"{backend}-deliver", config, args)
        await publish_many(publisher, DELIVER_TOPIC, args.messages, 64)
        first = min(args.delivery_concurrency, args.messages)
        deadline = time.monotonic() + args.ready_timeout + 60  # a Kafka group join takes ~3 s
        while len(app.held) < first and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if len(app.held) < first:
            raise RuntimeError(f"{backend}: {len(app.held)} deliveries held, expected {first}")
        cpu0, t0 = sidecar_cpu(pid), time.monotonic()
        app.release()
        deadline = t0 + max(60.0, args.messages / 50)
        while len(seen) < args.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        t1, cpu1 = (app.last_at or time.monotonic()), sidecar_cpu(pid)
        m = Measured(backend=backend, mode="deliver", concurrency=args.delivery_concurrency)
        m.count = len(seen)
        m.rate = len(seen) / max(t1 - t0, 1e-9)
        m.cpu_us = (cpu1 - cpu0) * 1e6 / max(len(seen), 1)
        if len(seen) != args.messages:
            m.problems.append(f"{len(seen)} of {args.messages} messages delivered")
        if dups or app.refused:
            m.problems.append(f"{dups} delivered twice, {app.refused} refused by the app")
        acked = await metric_sum(f"http://127.0.0.1:{admin}/metrics",
                                 "sidecar_pubsub_deliveries_total", 'outcome="ack"',
                                 args.messages)  # fmt: skip
        if acked != args.messages:
            m.problems.append(f"{acked:g} acks counted by the sidecar, not {args.messages}")
        m.problems += log_problems(log)
        print(f"        {backend:8} deliver c={args.delivery_concurrency:<3} {m.line()}",
              file=sys.stderr, flush=True)  # fmt: skip
        return m
    finally:
        await publisher.close()
        await counter.close()
        await app.close()


def report(publish: list[Measured], deliveries: list[Measured], args: argparse.Namespace) -> str:
    def med(rows: list[Measured], field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rows))

    def pick(backend: str, mode: str, conc: int) -> list[Measured]:
        return [m for m in publish if (m.backend, m.mode, m.concurrency) == (backend, mode, conc)]

    n = args.concurrency
    lines = [
        f"| backend | direct msgs/s @{n} | sidecar msgs/s @{n} | sidecar ÷ direct | "
        "direct p50 / p99 @1 | sidecar p50 / p99 @1 | added p50 / p99 | "
        f"sidecar CPU µs/publish @{n} / @1 | direct client CPU µs/publish @{n} | "
        "deliveries/s | sidecar CPU µs/delivery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in [b for b in BACKENDS if b in args.only]:
        dn, sn = pick(backend, "direct", n), pick(backend, "sidecar", n)
        d1, s1 = pick(backend, "direct", 1), pick(backend, "sidecar", 1)
        dl = [m for m in deliveries if m.backend == backend]
        if not (dn and sn and d1 and s1):
            lines.append(f"| {backend} | FAILED |" + " |" * 9)
            continue
        rate_d, rate_s = med(dn, "rate"), med(sn, "rate")
        p = {f"{k}{f}": med(rows, f) for k, rows in (("d", d1), ("s", s1)) for f in ("p50", "p99")}
        deliver = f"{dl[0].rate:,.0f} | {dl[0].cpu_us:.0f}" if dl else "FAILED | FAILED"
        lines.append(
            f"| {backend} | {rate_d:,.0f} | {rate_s:,.0f} | {rate_s / rate_d:.2f} | "
            f"{p['dp50']:.0f} / {p['dp99']:.0f} µs | {p['sp50']:.0f} / {p['sp99']:.0f} µs | "
            f"{p['sp50'] - p['dp50']:+.0f} / {p['sp99'] - p['dp99']:+.0f} µs | "
            f"{med(sn, 'cpu_us'):.0f} / {med(s1, 'cpu_us'):.0f} | {med(dn, 'cpu_us'):.0f} | "
            f"{deliver} |"
        )
    problems = [f"{m.backend} {m.mode} c={m.concurrency}: {p}"
                for m in publish + deliveries for p in m.problems]  # fmt: skip
    head = (
        f"build: {sidecar_build(args.sidecar_bin)}\n"
        f"publish: {args.runs} interleaved rounds of {args.seconds:g} s (median), wrk -t1 "
        f"keep-alive vs the broker's client; deliveries: {args.messages} messages, subscription "
        f"concurrency {args.delivery_concurrency}; sidecar or direct client on core "
        f"{PROXY_CORE}, brokers + wrk + app on core {LOAD_CORE}."
    )
    out = head + "\n\n" + "\n".join(lines)
    out += "\n\nchecks: " + ("every count as expected" if not problems else "FAILED")
    if problems:
        out += "\n" + "\n".join(f"- {p}" for p in problems[:20])
    return out


async def run_all(args: argparse.Namespace, procs: Processes, tmp: Path) -> tuple[str, bool]:
    publish: list[Measured] = []
    deliveries: list[Measured] = []
    failed = False
    for backend in [b for b in BACKENDS if b in args.only]:
        broker = None
        try:
            broker = start_broker(backend, args.messages)
            publish += await bench_publish(backend, broker, procs, tmp, args)
            procs.close()  # the publish sidecar: not left running beside the next one
            deliveries.append(await bench_deliveries(backend, broker, procs, tmp, args))
        except Exception as e:  # noqa: BLE001 - one backend failing still reports the others
            print(f"{backend}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            failed = True
        finally:
            procs.close()
            if broker is not None:
                broker.close()
    failed |= any(m.problems for m in publish + deliveries)
    return report(publish, deliveries, args), failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Pub/sub: direct broker clients vs the sidecar.")
    p.add_argument("--seconds", type=int, default=5, help="per publish run (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured seconds first (1)")
    p.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("-c", "--concurrency", type=int, default=32, help="publishers (default 32)")
    p.add_argument("--messages", type=int, default=20_000, help="delivered messages (20000)")
    p.add_argument("--delivery-concurrency", type=int, default=16, help="subscription's (16)")
    p.add_argument("--only", default=",".join(BACKENDS), help="backends, comma-separated")
    p.add_argument("--sidecar-bin", default=str(REPO / ".venv" / "bin" / "sidecar"))
    p.add_argument("--ready-timeout", type=float, default=30.0, help="start-up bound (s)")
    args = p.parse_args(argv)
    args.only = args.only.split(",")
    if unknown := set(args.only) - set(BACKENDS):
        p.error(f"--only: unknown backend(s) {sorted(unknown)}")
    if args.seconds < 1 or args.warmup < 1:
        p.error("--seconds and --warmup are whole seconds for wrk, at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not {PROXY_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {PROXY_CORE} and {LOAD_CORE}")
    os.sched_setaffinity(0, {LOAD_CORE})  # this script and the brokers it starts: the load core
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="sidecar-pubsub-bench-") as tmp:
        try:
            text, failed = asyncio.run(run_all(args, procs, Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            with contextlib.suppress(Exception):
                procs.close()
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
