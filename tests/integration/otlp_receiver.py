"""An in-process OTLP trace receiver for tests: what a collector would get from the sidecar.

No OpenTelemetry Collector binary exists on this machine, so this is one built on
``opentelemetry-proto``'s collector service definitions, served the two ways the OTLP exporters
speak: gRPC (``TraceService/Export`` on a ``grpc.aio`` server) and HTTP/protobuf (``POST
/v1/traces`` on aiohttp). Both listen on 127.0.0.1, port 0, and record every span they receive
as a :class:`ReceivedSpan`, plus the request metadata/headers of each export.

    async with OtlpReceiver("grpc") as rx:
        ... rx.endpoint ...
        spans = await rx.wait_for(2)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

Protocol = Literal["grpc", "http/protobuf"]
KINDS = {
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
}
STATUS = {
    trace_pb2.Status.STATUS_CODE_UNSET: "UNSET",
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}


@dataclass
class ReceivedSpan:
    """One span as the collector got it; ids in lower-case hex."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    flags: int = 0


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out = []
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    ReceivedSpan(
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        attributes=_attrs(s.attributes),
                        status=STATUS.get(s.status.code, str(s.status.code)),
                        status_message=s.status.message,
                        events=[(e.name, _attrs(e.attributes)) for e in s.events],
                        resource=resource,
                        flags=s.flags,
                    )
                )
    return out


@dataclass
class OtlpReceiver:
    """A collector stand-in for one protocol; ``endpoint`` is what the sidecar is pointed at."""

    protocol: Protocol = "grpc"
    spans: list[ReceivedSpan] = field(default_factory=list)
    #: request metadata (gRPC) or headers (HTTP) of each export, lower-case names.
    exports: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _grpc: grpc.aio.Server | None = None
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def endpoint(self) -> str:
        if self.protocol == "grpc":
            return f"http://127.0.0.1:{self.port}"
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest, meta: Any) -> None:
        self.exports.append({k.lower(): v for k, v in meta})
        self.spans.extend(_spans(request))
        self._arrived.set()

    async def start(self) -> OtlpReceiver:
        if self.protocol == "grpc":
            receiver = self

            class Service(trace_service_pb2_grpc.TraceServiceServicer):
                async def Export(  # noqa: N802 - the generated service's method name
                    self, request: Any, context: grpc.aio.ServicerContext
                ) -> trace_service_pb2.ExportTraceServiceResponse:
                    meta = [(k, v) for k, v in context.invocation_metadata() or ()]
                    receiver._record(request, meta)
                    return trace_service_pb2.ExportTraceServiceResponse()

            server = grpc.aio.server()
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            if not self.port:
                raise RuntimeError("the OTLP gRPC receiver could not bind 127.0.0.1")
            await server.start()
            self._grpc = server
        else:
            app = web.Application()
            app.router.add_post("/v1/traces", self._http_export)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            self.port = sock.getsockname()[1]
        return self

    async def _http_export(self, request: web.Request) -> web.Response:
        parsed = trace_service_pb2.ExportTraceServiceRequest()
        parsed.ParseFromString(await request.read())
        self._record(parsed, request.headers.items())
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(None)
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> OtlpReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, limit: float = 15.0) -> list[ReceivedSpan]:
        """At least ``count`` spans received (bounded wait); returns all received so far."""
        async with asyncio.timeout(limit):
            while len(self.spans) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.spans)

    def by_kind(self, kind: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.kind == kind]
