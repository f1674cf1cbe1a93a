"""The sidecar's own gRPC services (:mod:`.service_table`) as grpcio method handlers, for the
gRPC port's grpcio server (``grpc.server: grpcio``).

Each method becomes grpcio's handler of its kind, with the table's message readers and writers
as (de)serializers; a :class:`~.control.ServiceAbort` ends the call with its status through
``context.abort``. Imported only by that server (:mod:`.services`), which has grpcio loaded.
"""

from __future__ import annotations

__all__ = ["add_methods"]

from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from .control import ServiceAbort
from .service_table import Bidi, Method, ServerStream, Unary

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def add_methods(server: Any, methods: Mapping[str, Method]) -> None:
    """Add ``methods`` (by path) to ``server``, a ``grpc.aio.Server`` not yet started; they are
    found before any generic handler added after them."""
    services: dict[str, dict[str, Any]] = {}
    for path, method in methods.items():
        service, _, name = path[1:].partition("/")
        services.setdefault(service, {})[name] = _handler(method)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(s, handlers) for s, handlers in services.items()]
    )


def _handler(method: Method) -> Any:
    decode, encode = method.decode, method.encode
    match method:
        case Unary():
            run = method.run

            async def unary(request: Any, context: Any) -> Any:
                try:
                    return await run(request)
                except ServiceAbort as e:
                    await context.abort(_CODES[e.code], e.details)

            return grpc.unary_unary_rpc_method_handler(unary, decode, encode)
        case ServerStream():
            stream = method.run

            async def server_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    async for reply in stream(request):
                        yield reply
                except ServiceAbort as e:
                    await context.abort(_CODES[e.code], e.details)

            return grpc.unary_stream_rpc_method_handler(server_stream, decode, encode)
        case Bidi():
            bidi = method.run

            async def both_ways(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
                try:
                    async for reply in bidi(requests):
                        yield reply
                except ServiceAbort as e:
                    await context.abort(_CODES[e.code], e.details)

            return grpc.stream_stream_rpc_method_handler(both_ways, decode, encode)
