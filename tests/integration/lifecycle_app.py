"""A stand-in app for the pod lifecycle tests, run as its own process beside a sidecar process.

``python -m tests.integration.lifecycle_app --http URL [--grpc TARGET] --out FILE --after S``

Before SIGTERM it warms up as a real app would: a keep-alive HTTP connection that served one call
(its pool; it is reused after the signal), a second one that served one call and is never used
again (an idle pool connection), and a gRPC channel that made one call. Then it waits. On
SIGTERM it keeps calling out through the sidecar for ``--after`` seconds, as an app finishing
its own work does: each round one call on the keep-alive connection, one on a new connection,
and one gRPC call on its channel; then it exits 0, which closes all its connections.

Every call is one JSON line in ``--out`` (flushed as it ends): kind, wall-clock start and end,
the status (``null`` with the error when the call failed), the body, the ``Connection`` header.
It uses ``http.client``, which never retries: a call the sidecar drops is a failed line here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import threading
import time
from typing import IO, Any
from urllib.parse import urlsplit

import grpc

from tests.grpc_echo import echo_pb2

#: seconds between two rounds of calls after SIGTERM (the app's own pace).
PACE = 0.05
#: the longest the app waits for SIGTERM before giving up (the test's bound).
WAIT_FOR_SIGNAL = 60.0
UNARY = "/echo.v1.Echo/Unary"


class App:
    def __init__(self, http_url: str, grpc_target: str | None, out: IO[str]) -> None:
        url = urlsplit(http_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.path = url.path.rstrip("/")
        self.out = out
        self.keep_alive = self.connection()
        self.channel = grpc.insecure_channel(grpc_target) if grpc_target else None
        self.unary = (
            self.channel.unary_unary(
                UNARY,
                request_serializer=echo_pb2.EchoRequest.SerializeToString,
                response_deserializer=echo_pb2.EchoResponse.FromString,
            )
            if self.channel is not None
            else None
        )

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def record(self, kind: str, started: float, **fields: Any) -> None:
        line = {"kind": kind, "start": started, "end": time.time(), **fields}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def http_call(self, conn: http.client.HTTPConnection, kind: str) -> None:
        started = time.time()
        try:
            conn.request("GET", f"{self.path}/{kind}")
            resp = conn.getresponse()
            body = resp.read().decode("latin-1")
            # http.client reconnects on the next request after a "Connection: close" answer
            self.record(
                kind,
                started,
                status=resp.status,
                body=body,
                connection=resp.getheader("connection"),
            )
        except (OSError, http.client.HTTPException) as e:
            conn.close()  # the next request opens a new connection
            self.record(kind, started, status=None, error=repr(e))

    def grpc_call(self) -> None:
        if self.unary is None:
            return
        started = time.time()
        try:
            answer = self.unary(echo_pb2.EchoRequest(payload=b"app"), timeout=10)
            self.record("grpc", started, status=200, body=answer.payload.decode())
        except grpc.RpcError as e:
            self.record("grpc", started, status=None, error=f"{e.code()}: {e.details()}")

    def warm_up(self) -> http.client.HTTPConnection:
        self.http_call(self.keep_alive, "keep-alive")
        idle = self.connection()
        self.http_call(idle, "idle-pool")
        self.grpc_call()
        return idle  # held open, never used again: an idle pool connection

    def after_signal(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.http_call(self.keep_alive, "keep-alive")
            fresh = self.connection()
            self.http_call(fresh, "new-connection")
            fresh.close()
            self.grpc_call()
            time.sleep(PACE)  # the app's pace, not synchronisation


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True, help="the sidecar's URL for the upstream")
    parser.add_argument("--grpc", help="the sidecar's gRPC port (127.0.0.1:PORT)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--after", type=float, default=3.0, help="seconds of calls after SIGTERM")
    args = parser.parse_args()
    signalled = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: signalled.set())
    with open(args.out, "a") as out:
        app = App(args.http, args.grpc, out)
        idle = app.warm_up()
        out.write(json.dumps({"kind": "ready", "start": time.time()}) + "\n")
        out.flush()
        if not signalled.wait(WAIT_FOR_SIGNAL):
            return 3
        out.write(json.dumps({"kind": "signal", "start": time.time()}) + "\n")
        app.after_signal(args.after)
        idle.close()
        app.keep_alive.close()
        if app.channel is not None:
            app.channel.close()
        out.write(json.dumps({"kind": "exit", "start": time.time()}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
