#!/usr/bin/env python3
"""GraphQL plugin benchmark: CPU per operation through the sidecar vs the server called direct.

One run starts the graphql plugin's test server (``plugins/graphql/tests/graphql_server.py``:
ariadne on uvicorn) and one sidecar with a ``graphql`` upstream in front of it. wrk POSTs the
same operation to each case, interleaved, N rounds, and prints a markdown table of medians:
RPS, p50, p99, and CPU µs per operation of the sidecar and of the server.

Cases: ``direct`` (wrk → server), ``sidecar`` (wrk → sidecar → server: the document parsed,
measured and classified on every call, its analysis cached), ``sidecar-apq`` (the document sent
by its SHA-256 alone, resolved from the in-memory APQ cache).

Pinning (2 cores): the sidecar runs alone on core 0; wrk and the server share core 1.

    .venv/bin/python bench/graphql.py            # 3 interleaved rounds of 5 s each
    .venv/bin/python bench/graphql.py --quick    # 1 round of 1 s, a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import urllib.request
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
    sidecar_build,
    tail,
    tree_cpu,
    wait_http,
)

REPO = Path(__file__).resolve().parent.parent
SERVER_DIR = REPO / "plugins" / "graphql" / "tests"
QUERY = "query Product($id: ID!) { user(id: $id) { id name friend { id name } } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()
PLAIN = {"query": QUERY, "operationName": "Product", "variables": {"id": "1"}}
BY_HASH = {
    "operationName": "Product",
    "variables": {"id": "1"},
    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": DIGEST}},
}
#: run with ``python -P``: this file's directory (and name) must not shadow graphql-core
SERVE = """
import sys
sys.path.insert(0, {path!r})
import uvicorn
from graphql_server import Script, make_app
uvicorn.run(make_app(Script()), host="127.0.0.1", port={port}, log_level="warning",
            lifespan="off", access_log=False)
"""


def lua(body: dict[str, Any]) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
        answer: dict[str, Any] = json.loads(r.read())
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument(
        "--sidecar-bin",
        default=str(Path(sys.executable).with_name("sidecar")),
        help="the sidecar to measure (default: this venv's; the compiled build: "
        "/tmp/sidecar-compiled/venv/bin/sidecar)",
    )
    args = parser.parse_args(argv)
    rounds, duration = (1, 1.0) if args.quick else (args.rounds, args.duration)
    sidecar_bin = args.sidecar_bin
    procs = Processes()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            server_port = free_port()
            script = SERVE.format(path=str(SERVER_DIR), port=server_port)
            server = procs.start(
                [sys.executable, "-P", "-c", script], LOAD_CORE, tmp / "server.log"
            )
            direct = f"http://127.0.0.1:{server_port}/graphql"
            err = wait_http(direct + "?query=%7Bhello%7D", 20, proc=server)
            if err is not None:
                print(f"the server did not start: {err}\n{tail(tmp / 'server.log')}")
                return 1
            admin, http = free_port(), free_port()
            config = {
                "admin": {"address": f"127.0.0.1:{admin}"},
                "http": {"address": f"127.0.0.1:{http}"},
                "grpc": {"address": f"127.0.0.1:{free_port()}"},
                "telemetry": {"log_level": "warning", "access_log": {"enabled": False}},
                "upstreams": {
                    "gql": {
                        "adapter": "graphql",
                        "url": f"http://127.0.0.1:{server_port}",
                        "options": {"operations": ["Product"]},
                    }
                },
            }
            (tmp / "sidecar.yaml").write_text(yaml.safe_dump(config))
            sidecar = procs.start(
                [sidecar_bin, "run", "-c", str(tmp / "sidecar.yaml")],
                PROXY_CORE,
                tmp / "sidecar.log",
            )
            err = wait_http(f"http://127.0.0.1:{admin}/readyz", 20, proc=sidecar)
            if err is not None:
                print(f"the sidecar did not start: {err}\n{tail(tmp / 'sidecar.log')}")
                return 1
            via = f"http://127.0.0.1:{http}/gql/graphql"
            post(via, {**BY_HASH, "query": QUERY})  # registers the document for sidecar-apq
            assert post(via, BY_HASH)["data"]["user"]["id"] == "1"
            cases = {
                "direct": (direct, PLAIN),
                "sidecar": (via, PLAIN),
                "sidecar-apq": (via, BY_HASH),
            }
            results: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
            for _ in range(rounds):
                for key, (url, body) in cases.items():
                    (tmp / f"{key}.lua").write_text(lua(body))
                    argv = ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1"]
                    argv += [f"-c{args.connections}", f"-d{duration:g}s", "--latency"]
                    argv += ["-s", str(tmp / f"{key}.lua"), url]
                    before_s, before_u = tree_cpu([sidecar.pid]), tree_cpu([server.pid])
                    code, out, stderr = run_reaped(argv, duration + 30)
                    after_s, after_u = tree_cpu([sidecar.pid]), tree_cpu([server.pid])
                    if code != 0:
                        print(f"wrk failed: {stderr}")
                        return 1
                    rps, p50, p99, requests, non2xx, _ = parse_wrk(out)
                    if non2xx:
                        print(f"{key}: {non2xx} answers were not 2xx")
                        return 1
                    results[key].append(
                        {
                            "rps": rps,
                            "p50": p50,
                            "p99": p99,
                            "sidecar": cpu_delta_seconds(before_s, after_s) * 1e6 / requests,
                            "server": cpu_delta_seconds(before_u, after_u) * 1e6 / requests,
                        }
                    )
        finally:
            procs.close()
    print(f"build: {sidecar_build(sidecar_bin)}")
    print(f"{rounds} round(s) of {duration:g} s, {args.connections} connections; medians\n")
    print("| case | RPS | p50 | p99 | sidecar CPU/op | server CPU/op |")
    print("|---|---|---|---|---|---|")
    for key, runs in results.items():
        m = {f: statistics.median(r[f] for r in runs) for f in runs[0]}
        sidecar_cpu = "-" if key == "direct" else fmt_us(m["sidecar"])
        print(
            f"| {key} | {m['rps']:.0f} | {fmt_us(m['p50'])} | {fmt_us(m['p99'])} "
            f"| {sidecar_cpu} | {fmt_us(m['server'])} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
