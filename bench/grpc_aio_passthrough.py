#!/usr/bin/env python3
"""The grpc.aio floor: the least a grpc.aio raw-bytes pass-through can do, as a benchmark peer.

What it is: a grpc.aio server whose one generic handler answers every method as
``stream_stream`` (the wire does not say a method's cardinality, so that is the only kind that
is correct for all four) and forwards raw message bytes to one grpc.aio channel:
request metadata (minus reserved names) and the remaining deadline go up; initial metadata,
messages, trailing metadata, status code and details come back.

What it is not: the sidecar. No filter chain, no routing, no limits, no error translation
beyond passing the upstream's status through. ``bench/grpc_proxy.py`` runs it next to the
sidecar so the sidecar's figures can be read as "grpc.aio's own cost" plus "what the sidecar
adds on top".

    .venv/bin/python bench/grpc_aio_passthrough.py \\
        --listen 127.0.0.1:50071 --upstream 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

#: transport metadata each side's grpc library sets itself
RESERVED = frozenset({"te", "content-type", "grpc-timeout", "grpc-encoding",
                      "grpc-accept-encoding", "user-agent", "host"})  # fmt: skip
OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class PassThrough(grpc.GenericRpcHandler):
    def __init__(self, channel: aio.Channel, unary_suffix: str | None = None) -> None:
        self.channel = channel
        #: methods ending in this are proxied as unary_unary (cardinality known, e.g. from config)
        self.unary_suffix = unary_suffix
        self.handlers: dict[str, Any] = {}  # built once per method name

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        handler = self.handlers.get(method)
        if handler is None:
            handler = self.handlers[method] = self._handler(method)
        return handler

    def _handler(self, method: str) -> Any:
        if self.unary_suffix and method.endswith(self.unary_suffix):
            return self._unary_handler(method)
        multi = self.channel.stream_stream(method)

        async def relay(
            requests: AsyncIterator[bytes], context: aio.ServicerContext
        ) -> AsyncIterator[bytes]:
            metadata = [(k, v) for k, v in context.invocation_metadata() or () if k not in RESERVED]
            call = multi(requests, metadata=metadata, timeout=context.time_remaining())
            initial = await call.initial_metadata()
            if initial:
                await context.send_initial_metadata(initial)
            async for message in call:
                yield message
            trailing = await call.trailing_metadata()
            if trailing:
                context.set_trailing_metadata(trailing)
            code = await call.code()
            if code != grpc.StatusCode.OK:
                context.set_code(code)
                context.set_details(await call.details() or "")

        return grpc.stream_stream_rpc_method_handler(relay)

    def _unary_handler(self, method: str) -> Any:
        single = self.channel.unary_unary(method)

        async def relay(request: bytes, context: aio.ServicerContext) -> bytes:
            metadata = [(k, v) for k, v in context.invocation_metadata() or () if k not in RESERVED]
            call = single(request, metadata=metadata, timeout=context.time_remaining())
            try:
                response: bytes = await call
            except aio.AioRpcError as e:
                context.set_trailing_metadata(e.trailing_metadata() or ())
                await context.abort(e.code(), e.details() or "")
            initial = await call.initial_metadata()
            if initial:
                await context.send_initial_metadata(initial)
            trailing = await call.trailing_metadata()
            if trailing:
                context.set_trailing_metadata(trailing)
            return response

        return grpc.unary_unary_rpc_method_handler(relay)


async def serve(listen: str, upstream: str, unary_suffix: str | None) -> None:
    channel = aio.insecure_channel(upstream, options=OPTIONS)
    server = aio.server(
        options=[*OPTIONS, ("grpc.max_concurrent_streams", 10_000), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers((PassThrough(channel, unary_suffix),))
    if not server.add_insecure_port(listen):
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"grpc.aio pass-through on {listen} -> {upstream}", flush=True)
    await stop.wait()
    await server.stop(grace=1.0)
    await channel.close()


def main() -> None:
    p = argparse.ArgumentParser(description="grpc.aio raw-bytes pass-through (a bench peer)")
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop")
    p.add_argument(
        "--unary-suffix",
        help="proxy methods ending in this as unary_unary (what knowing each method's "
        "cardinality, e.g. from config, would allow); default: every method stream_stream",
    )
    args = p.parse_args()
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    asyncio.run(serve(args.listen, args.upstream, args.unary_suffix))


if __name__ == "__main__":
    main()
