"""Server reflection on the gRPC port (``grpc.reflection.v1alpha`` and ``v1``): lists the
sidecar's own services and describes their schemas, so ``grpcurl -plaintext 127.0.0.1:15002
list`` and ``describe`` work.

It answers what grpcio-reflection's servicer answers (the same lookups in protobuf's default
descriptor pool, the same ``NOT_FOUND`` and ``INVALID_ARGUMENT`` error responses), without
grpcio, so either server of the gRPC port binds it (:mod:`.service_table`). Both versions'
messages are the same on the wire, so v1 calls are read and answered with the v1alpha messages.
Only the sidecar's own services are listed: it holds no descriptors of the services it proxies.

Imports protobuf and the descriptors it describes (health, the admin API): the HTTP/2 front
loads this module on the first reflection or admin call, not at start-up.
"""

from __future__ import annotations

__all__ = ["Reflection"]

from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as pb

from ..v1 import admin_pb2

#: the files it can describe: loaded into the default pool by importing their modules
DESCRIBED = (health_pb2.DESCRIPTOR.name, admin_pb2.DESCRIPTOR.name, pb.DESCRIPTOR.name)
#: grpc status codes of the error responses (``ErrorResponse.error_code``)
NOT_FOUND, INVALID_ARGUMENT = 5, 3


class Reflection:
    """``ServerReflectionInfo``: one answer per request, in order, for the whole stream."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = tuple(sorted(names))
        self._pool = descriptor_pool.Default()

    async def info(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield self.answer(request)

    def answer(self, request: Any) -> Any:
        """The ``ServerReflectionResponse`` to one ``ServerReflectionRequest``."""
        asked = request.WhichOneof("message_request")
        pool = self._pool
        try:
            if asked == "list_services":
                services = [pb.ServiceResponse(name=name) for name in self._names]
                return pb.ServerReflectionResponse(
                    list_services_response=pb.ListServiceResponse(service=services),
                    original_request=request,
                )
            if asked == "file_by_filename":
                return _files(pool.FindFileByName(request.file_by_filename), request)
            if asked == "file_containing_symbol":
                return _files(
                    pool.FindFileContainingSymbol(request.file_containing_symbol), request
                )
            if asked == "file_containing_extension":
                ask = request.file_containing_extension
                message = pool.FindMessageTypeByName(ask.containing_type)
                extension = pool.FindExtensionByNumber(message, ask.extension_number)
                return _files(pool.FindFileContainingSymbol(extension.full_name), request)
            if asked == "all_extension_numbers_of_type":
                message = pool.FindMessageTypeByName(request.all_extension_numbers_of_type)
                numbers = sorted(e.number for e in pool.FindAllExtensions(message))
                return pb.ServerReflectionResponse(
                    all_extension_numbers_response=pb.ExtensionNumberResponse(
                        base_type_name=message.full_name, extension_number=numbers
                    ),
                    original_request=request,
                )
        except KeyError:
            return _error(NOT_FOUND, "not found", request)
        return _error(INVALID_ARGUMENT, "invalid argument", request)


def _files(found: Any, request: Any) -> Any:
    """The file that was found and every file it depends on, as ``FileDescriptorProto``s."""
    files: dict[str, Any] = {}
    todo = [found]
    while todo:
        f = todo.pop()
        if f.name not in files:
            files[f.name] = f
            todo.extend(f.dependencies)
    serialized = []
    for f in files.values():
        proto = descriptor_pb2.FileDescriptorProto()
        f.CopyToProto(proto)
        serialized.append(proto.SerializeToString())
    return pb.ServerReflectionResponse(
        file_descriptor_response=pb.FileDescriptorResponse(file_descriptor_proto=serialized),
        original_request=request,
    )


def _error(code: int, message: str, request: Any) -> Any:
    return pb.ServerReflectionResponse(
        error_response=pb.ErrorResponse(error_code=code, error_message=message),
        original_request=request,
    )
