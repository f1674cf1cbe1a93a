"""An OTLP/HTTP trace receiver on 127.0.0.1 for the tracing tests: it keeps every span it is
sent, with the name of the instrumentation scope that made it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Collector:
    def __init__(self) -> None:
        #: (scope name, span) in the order received
        self.spans: list[tuple[str, Any]] = []
        self.endpoint = ""

    async def export(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans += [(scope_spans.scope.name, s) for s in scope_spans.spans]
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def of(self, scope: str) -> list[Any]:
        return [span for name, span in self.spans if name == scope]

    async def until(self, scope: str, count: int, limit: float = 10.0) -> list[Any]:
        """The spans of ``scope`` once there are ``count``; fails after ``limit`` seconds."""
        async with asyncio.timeout(limit):
            while len(self.of(scope)) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # the exporter's batches have no event to wait on
        return self.of(scope)

    def tracing(self) -> dict[str, Any]:
        """``telemetry.tracing`` of a sidecar exporting here, in small quick batches."""
        return {"protocol": "http/protobuf", "endpoint": self.endpoint, "schedule_delay": "20ms"}


@asynccontextmanager
async def collector() -> AsyncIterator[Collector]:
    rx = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", rx.export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rx.endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/traces"
    try:
        yield rx
    finally:
        await runner.cleanup()
