#!/usr/bin/env python3
"""LLM gateway benchmark: CPU per call and per streamed chunk, direct vs through the sidecar.

One run starts the llm plugin's fake providers (``plugins/llm/tests/providers.py``: OpenAI and
Anthropic wire formats, answers echoing the prompt, one stream event per word) in one process,
and one sidecar with an ``llm`` upstream whose providers are those fakes. wrk then POSTs the same
request body to each case, direct to the fake and through the sidecar, interleaved, N rounds, and
prints a markdown table of medians: RPS, p50, p99, CPU µs per call of the sidecar and of the fake.

The per-chunk cost is a slope, not a quotient: each streamed case runs with a short and a long
prompt (the echo answer has one event per word), and the sidecar's CPU per call difference is
divided by the difference in content events, so the per-call part cancels out.

Pinning (2 cores): the sidecar runs alone on core 0; wrk and the fakes share core 1.

    .venv/bin/python bench/llm_gateway.py            # 3 interleaved rounds of 5 s each
    .venv/bin/python bench/llm_gateway.py --quick    # 1 round of 1 s, a smoke run
    .venv/bin/python bench/llm_gateway.py --only openai,openai-stream
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
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
from http_proxy import (
    LOAD_CORE,
    PROXY_CORE,
    Processes,
    cpu_delta_seconds,
    fmt_us,
    free_port,
    parse_wrk,
    run_reaped,
    tail,
    tree_cpu,
    wait_http,
)

REPO = Path(__file__).resolve().parent.parent
FAKES = REPO / "plugins" / "llm" / "tests"
OPENAI_KEY = "sk-bench-openai"
ANTHROPIC_KEY = "sk-ant-bench"
SHORT, LONG = 1, 201  # prompt words of the short and the long streamed case


@dataclasses.dataclass(frozen=True)
class Case:
    """One request shape: which front the client speaks, which provider answers, streamed or not."""

    key: str
    front: str  # "openai" (chat completions) or "anthropic" (messages)
    provider: str  # the fake that answers, direct or behind the sidecar
    stream: bool

    def body(self, words: int) -> dict[str, Any]:
        prompt = " ".join(["word"] * words)
        body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}]}
        if self.front == "anthropic":
            body |= {"model": "claude-sonnet-4-5", "max_tokens": 1024}
        else:
            body["model"] = "gpt-4o" if self.provider == "openai" else "claude-via-openai"
        if self.stream:
            body["stream"] = True
        return body


CASES = [
    Case("openai", "openai", "openai", False),
    Case("openai-stream", "openai", "openai", True),
    Case("anthropic", "anthropic", "anthropic", False),
    Case("anthropic-stream", "anthropic", "anthropic", True),
    Case("translated", "openai", "anthropic", False),
    Case("translated-stream", "openai", "anthropic", True),
]


def gateway_config(urls: dict[str, str], admin: int, http: int) -> dict[str, Any]:
    """The sidecar: one ``llm`` upstream, each group on one fake, the keys read from env."""
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "http": {"address": f"127.0.0.1:{http}"},
        "grpc": {"address": f"127.0.0.1:{free_port()}"},
        "telemetry": {"log_level": "warning"},
        "upstreams": {
            "llm": {
                "adapter": "llm",
                "options": {
                    "providers": {
                        "oa": {"kind": "openai", "base_url": urls["openai"],
                               "api_key": {"env": "BENCH_OPENAI_KEY"}},
                        "an": {"kind": "anthropic", "base_url": urls["anthropic"],
                               "api_key": {"env": "BENCH_ANTHROPIC_KEY"}},
                    },
                    "groups": {
                        "gpt-4o": {"deployments": [{"provider": "oa", "model": "gpt-4o"}]},
                        "claude-sonnet-4-5": {
                            "deployments": [{"provider": "an", "model": "claude-sonnet-4-5"}]
                        },
                        "claude-via-openai": {
                            "deployments": [{"provider": "an", "model": "claude-sonnet-4-5"}]
                        },
                    },
                },
            }
        },
    }  # fmt: skip


def request_for(
    case: Case, words: int, urls: dict[str, str], sidecar: str | None
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """URL, body and headers of ``case``: through the sidecar, or direct to its fake (with the
    key, in the fake's own format: the direct reference of a translated case is native)."""
    if sidecar is None:
        case = dataclasses.replace(case, front=case.provider)
    path = "/v1/messages" if case.front == "anthropic" else "/v1/chat/completions"
    headers = {"content-type": "application/json"}
    if case.front == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    if sidecar is not None:
        return f"{sidecar}/llm{path}", case.body(words), headers
    if case.front == "anthropic":
        headers["x-api-key"] = ANTHROPIC_KEY
        return urls["anthropic"] + path, case.body(words), headers
    headers["authorization"] = f"Bearer {OPENAI_KEY}"
    return urls["openai"].removesuffix("/v1") + path, case.body(words), headers


def lua_script(path: Path, body: dict[str, Any], headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{json.dumps(body)}]==]"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def check(url: str, body: dict[str, Any], headers: dict[str, str]) -> str | None:
    """One call before measuring: 200 and a whole answer, or what went wrong."""
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback only
            text = resp.read().decode()
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    last = text.rstrip()[-60:]
    whole = "[DONE]" in last or "message_stop" in last if body.get("stream") else last[-1:] == "}"
    return None if whole else f"incomplete answer: {text[-300:]!r}"


@dataclasses.dataclass
class Run:
    rps: float
    p50: float
    p99: float
    sidecar_us: float | None  # sidecar CPU per call
    fake_us: float  # fake providers' CPU per call
    problems: list[str]


def wrk(url: str, script: Path, connections: int, seconds: int) -> list[str]:
    """wrk on the load core (whole seconds: wrk takes no fractions)."""
    argv = ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    return [*argv, "--timeout", "5s", "--latency", "-s", str(script), url]


def measure(
    url: str, script: Path, args: argparse.Namespace, sidecar: int | None, fakes: int, log: Path
) -> Run:
    if args.warmup > 0:
        run_reaped(wrk(url, script, args.connections, args.warmup), args.warmup + 30)
    os.truncate(log, 0)
    pids = [fakes] + ([sidecar] if sidecar else [])
    before = tree_cpu(pids)
    rc, out, err = run_reaped(wrk(url, script, args.connections, args.duration), args.duration + 60)
    after = tree_cpu(pids)
    if rc != 0:
        raise RuntimeError(f"wrk failed ({rc}):\n{out}\n{err}")
    rps, p50, p99, calls, non2xx, sock = parse_wrk(out)
    calls = max(calls, 1)
    fake = cpu_delta_seconds({fakes: before[fakes]}, {fakes: after[fakes]}) * 1e6 / calls
    side = None
    if sidecar:
        mine = {p: v for p, v in after.items() if p != fakes}
        side = cpu_delta_seconds(before, mine) * 1e6 / calls
    problems = [f"{non2xx} non-2xx"] if non2xx else []
    problems += [f"socket errors {sock}"] if sock else []
    if sidecar:
        problems += log_problems(log, args.connections)
    return Run(rps, p50, p99, side, fake, problems)


def log_problems(log: Path, connections: int) -> list[str]:
    """Warnings, errors and tracebacks the sidecar logged during a run.

    Up to ``connections`` access lines of aborted calls are expected: wrk closes its connections
    with calls (often streams) in flight when it stops; they may land in the next run's log.
    """
    found: list[str] = []
    aborted = 0
    for line in log.read_text(errors="replace").splitlines():
        if '"sidecar.access"' in line and '"aborted": true' in line:
            aborted += 1
        elif re.search(r'"level": "(warning|error|critical)"|Traceback', line):
            found.append(line[:300])
    if aborted > connections:
        found.append(f"{aborted} aborted calls logged, more than wrk's {connections} in flight")
    return found[:5]


async def serve_fakes(ready_file: Path) -> None:
    """The fakes' process: both providers until SIGTERM; records cleared so memory stays flat."""
    sys.path.insert(0, str(FAKES))
    from providers import FakeAnthropic, FakeOpenAI

    fakes = [await FakeOpenAI(OPENAI_KEY).start(), await FakeAnthropic(ANTHROPIC_KEY).start()]
    ready_file.write_text(json.dumps({"openai": fakes[0].url, "anthropic": fakes[1].url}))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        for fake in fakes:
            fake.requests.clear()  # a bench makes millions of calls; no test reads them here
        await asyncio.sleep(0.5)  # noqa: ASYNC110 - a periodic chore, not a wait for state
    for fake in fakes:
        await fake.stop()


def start_services(procs: Processes, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    ready = tmp / "fakes.json"
    log = tmp / "fakes.log"
    fakes = procs.start([sys.executable, __file__, "--serve-fakes", str(ready)], LOAD_CORE, log)
    deadline = time.monotonic() + args.ready_timeout
    while not ready.exists() or not ready.read_text():
        if fakes.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"fake providers did not start:\n{tail(log)}")
        time.sleep(0.05)
    urls: dict[str, str] = json.loads(ready.read_text())
    admin, http = free_port(), free_port()
    cfg = tmp / "sidecar.yaml"
    cfg.write_text(yaml.safe_dump(gateway_config(urls, admin, http), sort_keys=False))
    env = {**os.environ, "BENCH_OPENAI_KEY": OPENAI_KEY, "BENCH_ANTHROPIC_KEY": ANTHROPIC_KEY}
    side_log = tmp / "sidecar.log"
    sidecar = procs.start([args.sidecar_bin, "run", "-c", str(cfg)], PROXY_CORE, side_log, env)
    err = wait_http(f"http://127.0.0.1:{admin}/readyz", args.ready_timeout, proc=sidecar)
    if err is not None:
        sys.exit(f"sidecar not ready: {err}\n{tail(side_log)}")
    return {"urls": urls, "fakes": fakes.pid, "sidecar": sidecar.pid, "log": side_log,
            "http": f"http://127.0.0.1:{http}"}  # fmt: skip


def run_all(args: argparse.Namespace, procs: Processes, tmp: Path) -> str:
    svc = start_services(procs, tmp, args)
    cases = [c for c in CASES if c.key in args.only.split(",")]
    plan: list[tuple[Case, int, str]] = []  # (case, prompt words, "direct" | "sidecar")
    for case in cases:
        for words in (SHORT, LONG) if case.stream else (20,):
            for via in ("direct", "sidecar"):
                sidecar = svc["http"] if via == "sidecar" else None
                url, body, headers = request_for(case, words, svc["urls"], sidecar)
                if (problem := check(url, body, headers)) is not None:
                    sys.exit(f"{case.key} {via}: {problem}\n{tail(svc['log'])}")
                plan.append((case, words, via))
    results: dict[tuple[str, int, str], list[Run]] = {}
    for rnd in range(args.runs):
        for case, words, via in plan:
            front = svc["http"] if via == "sidecar" else None
            url, body, headers = request_for(case, words, svc["urls"], front)
            script = lua_script(tmp / f"{case.key}-{words}-{via}.lua", body, headers)
            pid = svc["sidecar"] if via == "sidecar" else None
            run = measure(url, script, args, pid, svc["fakes"], svc["log"])
            results.setdefault((case.key, words, via), []).append(run)
            side = "–" if run.sidecar_us is None else f"{run.sidecar_us:.0f}"
            print(f"[{rnd + 1}/{args.runs}] {case.key:18} {words:4} words {via:8} "
                  f"{run.rps:8,.0f} rps  p50 {fmt_us(run.p50):>9}  sidecar {side:>6} µs/call  "
                  f"fake {run.fake_us:5.0f} µs/call {'; '.join(run.problems)}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return report(cases, results, args)


def report(
    cases: list[Case], results: dict[tuple[str, int, str], list[Run]], args: argparse.Namespace
) -> str:
    def med(key: tuple[str, int, str], field: str) -> float:
        return statistics.median(float(getattr(r, field) or 0.0) for r in results[key])

    def slope(case: str, via: str, field: str) -> float:
        """Per content event: the long and the short stream differ by LONG - SHORT events."""
        return (med((case, LONG, via), field) - med((case, SHORT, via), field)) / (LONG - SHORT)

    lines = [
        "| case | prompt words | path | RPS | p50 | p99 | sidecar CPU µs/call | fake CPU µs/call |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    summary: list[str] = []
    for case in cases:
        for words in (SHORT, LONG) if case.stream else (20,):
            for via in ("direct", "sidecar"):
                k = (case.key, words, via)
                side = f"{med(k, 'sidecar_us'):.0f}" if via == "sidecar" else "–"
                lines.append(
                    f"| {case.key} | {words} | {via} | {med(k, 'rps'):,.0f} | "
                    f"{fmt_us(med(k, 'p50'))} | {fmt_us(med(k, 'p99'))} | {side} | "
                    f"{med(k, 'fake_us'):.0f} |"
                )
        if case.stream:  # the echo answer has prompt words + 1 content events
            summary.append(
                f"{case.key}: sidecar CPU per streamed chunk ≈ "
                f"{slope(case.key, 'sidecar', 'sidecar_us'):.1f} µs (the fake's own: "
                f"{slope(case.key, 'direct', 'fake_us'):.1f} µs)"
            )
        else:
            summary.append(
                f"{case.key}: sidecar CPU per non-streamed call ≈ "
                f"{med((case.key, 20, 'sidecar'), 'sidecar_us'):.0f} µs "
                f"(the fake's own: {med((case.key, 20, 'direct'), 'fake_us'):.0f} µs)"
            )
    problems = sorted({p for rs in results.values() for r in rs for p in r.problems})
    head = (
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s, median of {args.runs} "
        f"interleaved runs; sidecar on core {PROXY_CORE}, wrk + fakes on core {LOAD_CORE}."
    )
    out = head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary)
    if problems:
        out += "\n\nProblems seen:\n" + "\n".join(f"- {p}" for p in problems[:10])
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="LLM gateway CPU: direct vs through the sidecar.")
    p.add_argument("-d", "--duration", type=int, help="seconds per wrk run (default 5)")
    p.add_argument("-c", "--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("-n", "--runs", type=int, help="interleaved runs per case (default 3)")
    p.add_argument("--warmup", type=int, help="seconds of unmeasured wrk first (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke: 1 run of 1 s, no warm-up")
    p.add_argument("--only", default=",".join(c.key for c in CASES), help="cases to run")
    p.add_argument("--sidecar-bin", default=str(REPO / ".venv" / "bin" / "sidecar"))
    p.add_argument("--ready-timeout", type=float, default=15.0, help="start-up bound (s)")
    p.add_argument("--serve-fakes", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, normal, quick in (("duration", 5, 1), ("runs", 3, 1), ("warmup", 1, 0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    unknown = set(args.only.split(",")) - {c.key for c in CASES}
    if unknown:
        p.error(f"--only: unknown case(s) {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_fakes is not None:
        asyncio.run(serve_fakes(args.serve_fakes))
        return 0
    if not {PROXY_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"needs cores {PROXY_CORE} and {LOAD_CORE}")
    os.sched_setaffinity(0, {LOAD_CORE})  # keep this script off the sidecar's core
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="sidecar-llm-bench-") as tmp:
        try:
            print(run_all(args, procs, Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            procs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
