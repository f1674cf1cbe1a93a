"""The HTTP/2 core (sidecar.http2) against ``h2``, as a gRPC front's server side: N unary
gRPC-like exchanges piped in memory, the same ``h2`` client for both, only the server's work
timed (receive the request, answer headers + one message + trailers, acknowledge the data).

    .venv/bin/python bench/http2_core.py [N]

Prints each server's exchanges per second of its own CPU time and the ratio; no sockets, one
process, a few seconds. Run it on the build you want to measure (pure or compiled).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events

from sidecar.http2 import events as ev
from sidecar.http2.connection import Connection

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/bench.Echo/Unary"),
    (b":authority", b"127.0.0.1:15002"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"5S"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
MESSAGE = b"\0" + (64).to_bytes(4, "big") + b"m" * 64


def h2_client() -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    return conn


def ours() -> tuple[Any, Callable[[bytes], bytes]]:
    server = Connection(client_side=False)
    server.initiate_connection()

    def serve(data: bytes) -> bytes:
        for event in server.receive_data(data):
            kind = type(event)
            if kind is ev.DataReceived:
                assert isinstance(event, ev.DataReceived)
                server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is ev.StreamEnded:
                assert isinstance(event, ev.StreamEnded)
                sid = event.stream_id
                server.send_headers(sid, RESPONSE)
                server.send_data(sid, MESSAGE)
                server.send_headers(sid, TRAILERS, end_stream=True)
        return server.data_to_send()

    return server, serve


def theirs() -> tuple[Any, Callable[[bytes], bytes]]:
    config = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    server = h2.connection.H2Connection(config)
    server.initiate_connection()

    def serve(data: bytes) -> bytes:
        for event in server.receive_data(data):
            kind = type(event)
            if kind is h2.events.DataReceived:
                server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif kind is h2.events.StreamEnded:
                sid = event.stream_id
                server.send_headers(sid, RESPONSE)
                server.send_data(sid, MESSAGE)
                server.send_headers(sid, TRAILERS, end_stream=True)
        return server.data_to_send()

    return server, serve


def run(make: Callable[[], tuple[Any, Callable[[bytes], bytes]]], n: int) -> float:
    """Server CPU seconds for ``n`` exchanges."""
    client = h2_client()
    _, serve = make()
    client.receive_data(serve(client.data_to_send()))
    serve(client.data_to_send())  # the client's SETTINGS ACK
    spent = 0.0
    sid = 1
    for _ in range(n):
        client.send_headers(sid, REQUEST)
        client.send_data(sid, MESSAGE, end_stream=True)
        request = client.data_to_send()
        start = time.process_time()
        answer = serve(request)
        spent += time.process_time() - start
        got = client.receive_data(answer)
        assert isinstance(got[-1], h2.events.StreamEnded), got
        for event in got:
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, sid)
        pending = client.data_to_send()  # its WINDOW_UPDATEs, if any
        if pending:
            start = time.process_time()
            serve(pending)
            spent += time.process_time() - start
        sid += 2
    return spent


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    run(ours, 500)  # warm both up
    run(theirs, 500)
    best: dict[str, float] = {}
    for _ in range(3):  # interleaved rounds, best of each: a shared machine is noisy
        for name, make in (("sidecar.http2", ours), ("h2", theirs)):
            spent = run(make, n)
            best[name] = min(best.get(name, spent), spent)
    for name, spent in best.items():
        print(f"{name:14} {n / spent:9.0f} exchanges/s  {spent / n * 1e6:6.1f} us each")
    print(f"ratio: sidecar.http2 is {best['h2'] / best['sidecar.http2']:.2f}x h2's throughput")


if __name__ == "__main__":
    main()
