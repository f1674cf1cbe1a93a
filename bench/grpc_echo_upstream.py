#!/usr/bin/env python3
"""The gRPC benchmark's upstream: an echo server for raw message bytes, and nothing else.

It is the peer every variant of ``bench/grpc_proxy.py`` calls (directly or through a proxy). It
never deserialises: any method whose name ends in ``Unary`` answers its one request message
with the same bytes; any other method is a bidi echo, one response message per request
message, in order. ``/bench.Stats/Get`` answers ``{"calls": N, "messages": M}`` (JSON bytes):
how many echo calls finished and how many messages they echoed, so the benchmark can check
that what the load generator counted as answered really reached the upstream.

It is grpcio's synchronous server (C-core transport, a thread pool running the handlers): on
this machine it serves ~8.5k unary calls/s or ~25k bidi messages/s on one core, against ~5.6k
and ~25k for a grpc.aio server. Still not free, so the benchmark measures its CPU too and says
when it, not the proxy, limits throughput.

    .venv/bin/python bench/grpc_echo_upstream.py --port 50051
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

STATS_METHOD = "/bench.Stats/Get"
#: every bidi stream holds a thread for its whole life: enough for the benchmark's concurrency
THREADS = 256


class EchoHandler(grpc.GenericRpcHandler):
    """Raw-bytes echo for every method; counts what it served."""

    def __init__(self, initial_metadata: tuple[tuple[str, str], ...] = ()) -> None:
        #: sent before the first message when not empty (grpcio otherwise sends headers with
        #: no metadata of the server's: an answer whose initial metadata is empty)
        self.initial_metadata = initial_metadata
        self.calls = 0
        self.messages = 0
        self._lock = threading.Lock()
        self._unary = grpc.unary_unary_rpc_method_handler(self._echo_unary)
        self._stream = grpc.stream_stream_rpc_method_handler(self._echo_stream)
        self._stats = grpc.unary_unary_rpc_method_handler(self._get_stats)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if method == STATS_METHOD:
            return self._stats
        return self._unary if method.endswith("Unary") else self._stream

    def _echo_unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if self.initial_metadata:
            context.send_initial_metadata(self.initial_metadata)
        with self._lock:
            self.calls += 1
            self.messages += 1
        return request

    def _echo_stream(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        if self.initial_metadata:
            context.send_initial_metadata(self.initial_metadata)
        n = 0
        for message in requests:
            n += 1
            yield message
        with self._lock:
            self.messages += n
            self.calls += 1

    def _get_stats(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            return json.dumps({"calls": self.calls, "messages": self.messages}).encode()


def main() -> None:
    p = argparse.ArgumentParser(description="raw-bytes gRPC echo server for bench/grpc_proxy.py")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--initial-metadata",
        action="store_true",
        help="send initial metadata (x-bench: echo) before the first message of every call",
    )
    args = p.parse_args()
    port = args.port
    server = grpc.server(
        futures.ThreadPoolExecutor(THREADS),
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_concurrent_streams", 10_000),
            ("grpc.so_reuseport", 0),  # a port taken by another process is an error
        ],
    )
    server.add_generic_rpc_handlers(
        (EchoHandler((("x-bench", "echo"),) if args.initial_metadata else ()),)
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    server.start()
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    print(f"grpc echo upstream on 127.0.0.1:{port}", flush=True)
    stopped.wait()
    server.stop(grace=1.0).wait()


if __name__ == "__main__":
    main()
