"""The sidecar's own gRPC services as one table of methods, and a call to one answered from it.

A method is its kind (unary, server-streaming, bidi), how its messages are read and written,
and the code that answers (:mod:`.health_service`, :mod:`.admin_api`, :mod:`.reflection_service`).
Both servers of the gRPC port bind this one table: grpcio's registers it as method handlers
(:mod:`.services_grpcio`); the HTTP/2 front answers a call with :func:`answer`, an
:class:`~sidecar.exchange.Exchange` in, a :class:`~sidecar.exchange.Response` out (messages as
the body, the status as trailers), and no grpcio.

:func:`health_methods` need nothing outside the sidecar (their messages are
:mod:`.health_codec`'s); :func:`protobuf_methods` (the admin API and reflection) load protobuf
and the generated messages when called, which the HTTP/2 front does on the first call to one.
"""

from __future__ import annotations

__all__ = [
    "ADMIN",
    "REFLECTION",
    "Bidi",
    "Method",
    "ServerStream",
    "Unary",
    "answer",
    "health_methods",
    "protobuf_methods",
    "unimplemented",
]

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exchange import Body, Exchange, Response
from .control import ServiceAbort
from .health_codec import decode_check_request, encode_check_response, encode_list_response
from .metadata import status_trailers

if TYPE_CHECKING:
    from ..api import ControlView
    from .health_service import HealthService

HEALTH = "grpc.health.v1.Health"
ADMIN = "sidecar.v1.Admin"
#: both versions: the same messages on the wire (:mod:`.reflection_service`)
REFLECTION = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")
#: gRPC status codes this module answers with itself
OK, UNKNOWN, INVALID_ARGUMENT, UNIMPLEMENTED = 0, 2, 3, 12

log = logging.getLogger("sidecar.grpc")

Decode = Callable[[bytes], Any]
Encode = Callable[[Any], bytes]


@dataclass(frozen=True)
class Unary:
    decode: Decode
    encode: Encode
    run: Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class ServerStream:
    decode: Decode
    encode: Encode
    run: Callable[[Any], AsyncIterator[Any]]


@dataclass(frozen=True)
class Bidi:
    decode: Decode
    encode: Encode
    run: Callable[[AsyncIterator[Any]], AsyncIterator[Any]]


Method = Unary | ServerStream | Bidi


def health_methods(health: HealthService) -> dict[str, Method]:
    """``grpc.health.v1.Health`` by method path: no protobuf needed."""

    async def check(service: str) -> int:
        return health.check(service)

    async def listed(_request: None) -> dict[str, int]:
        return health.statuses()

    def no_fields(data: bytes) -> None:
        return None  # HealthListRequest has none (unknown ones are skipped, as protobuf does)

    return {
        f"/{HEALTH}/Check": Unary(decode_check_request, encode_check_response, check),
        f"/{HEALTH}/List": Unary(no_fields, encode_list_response, listed),
        f"/{HEALTH}/Watch": ServerStream(decode_check_request, encode_check_response, health.watch),
    }


def protobuf_methods(sidecar: ControlView, listed: Iterable[str]) -> dict[str, Method]:
    """``sidecar.v1.Admin`` and reflection (listing ``listed``) by method path. Imports
    protobuf and the generated messages (see the module docstring)."""
    from grpc_reflection.v1alpha import reflection_pb2

    from ..v1 import admin_pb2
    from .admin_api import AdminApi
    from .reflection_service import Reflection

    admin = AdminApi(sidecar)
    reflection = Reflection(listed)

    def serialize(message: Any) -> bytes:
        data: bytes = message.SerializeToString()
        return data

    methods: dict[str, Method] = {
        f"/{ADMIN}/GetStatus": Unary(
            admin_pb2.GetStatusRequest.FromString, serialize, admin.get_status
        ),
        f"/{ADMIN}/ListUpstreams": Unary(
            admin_pb2.ListUpstreamsRequest.FromString, serialize, admin.list_upstreams
        ),
        f"/{ADMIN}/Reload": Unary(admin_pb2.ReloadRequest.FromString, serialize, admin.reload),
    }
    for service in REFLECTION:
        methods[f"/{service}/ServerReflectionInfo"] = Bidi(
            reflection_pb2.ServerReflectionRequest.FromString, serialize, reflection.info
        )
    return methods


# --- a call answered from the table (the HTTP/2 front) ----------------------------------------


def unimplemented(path: str) -> Response:
    return _status_only(UNIMPLEMENTED, f"unknown method {path[:200]}")


async def answer(method: Method, exchange: Exchange) -> Response:
    """The answer to one call of ``method``: a trailers-only status when it failed before its
    first message, else its messages as the body and the status in the trailers."""
    resp = Response(200, length=None)
    if isinstance(method, Bidi):
        resp.body = _stream(method.run(_decoded(exchange.body, method.decode)), method.encode, resp)
        return resp
    try:
        request = method.decode(await _one(exchange.body))
    except ValueError as e:  # not the method's message (protobuf's DecodeError is one too)
        return _status_only(INVALID_ARGUMENT, f"a malformed request message: {e}"[:200])
    if isinstance(method, ServerStream):
        resp.body = _stream(method.run(request), method.encode, resp)
        return resp
    try:
        reply = method.encode(await method.run(request))
    except ServiceAbort as e:
        return _status_only(e.code, e.details)
    except Exception:
        log.exception("the sidecar's own gRPC service failed")
        return _status_only(UNKNOWN, "the sidecar failed to answer (its log says why)")
    resp.body = _messages([reply], resp)
    return resp


def _status_only(code: int, details: str) -> Response:
    resp = Response(200)
    resp.trailers = status_trailers(code, details, None)
    return resp


async def _one(body: Body) -> bytes:
    """The single request message of a unary or server-streaming call."""
    if isinstance(body, bytes):
        return body
    messages = [m async for m in body]  # the app half-closes after its one message
    if len(messages) != 1:
        raise ValueError(f"expected one request message, got {len(messages)}")
    return messages[0]


async def _decoded(body: Body, decode: Decode) -> AsyncIterator[Any]:
    if isinstance(body, bytes):
        yield decode(body)
        return
    async for message in body:
        yield decode(message)


async def _messages(replies: list[bytes], resp: Response) -> AsyncIterator[bytes]:
    # an iterator, not bytes: an empty message (a default-valued reply) is still a message
    for reply in replies:
        yield reply
    resp.trailers = status_trailers(OK, None, None)


async def _stream(
    items: AsyncIterator[Any], encode: Encode, resp: Response
) -> AsyncIterator[bytes]:
    """The replies as messages; the status (OK, or what ended it) set last."""
    try:
        async for item in items:
            yield encode(item)
    except ServiceAbort as e:
        resp.trailers = status_trailers(e.code, e.details, None)
        return
    except ValueError as e:  # a malformed request message of a bidi stream
        resp.trailers = status_trailers(INVALID_ARGUMENT, f"a malformed message: {e}"[:200], None)
        return
    # anything else (the app's stream broke or went away) is the listener's to answer
    resp.trailers = status_trailers(OK, None, None)
