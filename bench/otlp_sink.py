#!/usr/bin/env python3
"""A minimal OTLP/gRPC trace sink for benchmarks: accepts ``TraceService/Export`` and answers
success without decoding the spans (so the sink's own CPU stays small next to wrk).

    python bench/otlp_sink.py --port 4317      # prints "ready" once it listens

Started by ``bench/http_proxy.py`` for the tracing variants (pinned to the load core, stopped by
PID). Counts export requests and bytes, printed when it stops.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    counts = {"requests": 0, "bytes": 0}

    def export(request: bytes, context: Any) -> bytes:
        counts["requests"] += 1
        counts["bytes"] += len(request)
        return b""  # an empty ExportTraceServiceResponse: full success

    handler = grpc.unary_unary_rpc_method_handler(export)  # raw bytes in and out
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
    )
    if not server.add_insecure_port(f"127.0.0.1:{args.port}"):
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    server.stop(1).wait()
    print(f"exports {counts['requests']}, bytes {counts['bytes']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
