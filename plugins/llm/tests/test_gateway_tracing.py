"""Tracing: each provider attempt is a span (provider, model, tokens, failure reason) under the
sidecar's own span of the call, exported over OTLP to a collector on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sidecar_llm
from aiohttp import web
from gateway import gateway_config, group, openai_client, openai_provider, user
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from providers import Fail, FakeOpenAI, Reply


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, with its scope's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []

    async def export(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans += [(scope_spans.scope.name, s) for s in scope_spans.spans]
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    """The receiver and the endpoint the sidecar exports to."""
    rx = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", rx.export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rx, f"http://127.0.0.1:{port}/v1/traces"
    finally:
        await runner.cleanup()


@pytest.mark.usefixtures("provider_keys")
async def test_each_attempt_is_a_span_under_the_calls_span(
    fake_openai: FakeOpenAI,
    start_fake_provider: Any,
    sidecar_factory: Any,
    collector: tuple[Collector, str],
) -> None:
    """A call that fell over shows both attempts: the failed one with its reason, the answer
    with its tokens, both children of the sidecar's span of the upstream call."""
    rx, endpoint = collector
    backup = start_fake_provider(FakeOpenAI())
    fake_openai.script(Fail(503))
    backup.script(Reply(text="ok", input_tokens=11, output_tokens=22))
    tracing = {"protocol": "http/protobuf", "endpoint": endpoint, "schedule_delay": "20ms"}
    config = gateway_config(
        {"oa": openai_provider(fake_openai.url), "backup": openai_provider(backup.url)},
        {
            "gpt-4o": group(("oa", "gpt-4o"), fallbacks=["mini"]),
            "mini": group(("backup", "gpt-4o-mini")),
        },
        top={"telemetry": {"tracing": tracing}},
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        await openai_client(s.http_port).chat.completions.create(model="gpt-4o", messages=user("x"))
        async with asyncio.timeout(10):
            while len([1 for scope, _ in rx.spans if scope == "sidecar-llm"]) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # the exporter's batches have no event to wait on
    attempts = [span for scope, span in rx.spans if scope == "sidecar-llm"]
    attrs = [{a.key: a.value for a in span.attributes} for span in attempts]
    failed, answered = sorted(
        zip(attempts, attrs, strict=True), key=lambda p: p[0].start_time_unix_nano
    )
    assert failed[0].name == "chat gpt-4o" and failed[1]["error.type"].string_value == "5xx"
    assert answered[0].name == "chat gpt-4o-mini"
    assert answered[1]["sidecar.llm.provider"].string_value == "backup"
    assert answered[1]["gen_ai.request.model"].string_value == "gpt-4o"
    assert answered[1]["gen_ai.usage.input_tokens"].int_value == 11
    assert answered[1]["gen_ai.usage.output_tokens"].int_value == 22
    parents = {span.span_id: span for scope, span in rx.spans if scope != "sidecar-llm"}
    for span in (failed[0], answered[0]):
        parent = parents[span.parent_span_id]  # the sidecar's CLIENT span of the call
        assert parent.trace_id == span.trace_id and parent.kind == 3  # SPAN_KIND_CLIENT
