"""Spans of pipelined calls that each resume inside the read that brought their upstream's answer
(the next call then starts in that same read), against a real ``sidecar run`` child process (the
build the suite runs under) exporting to an in-process OTLP collector."""

from __future__ import annotations

import asyncio

from sidecar.testing import SidecarProcess
from tests.integration.otlp_receiver import OtlpReceiver
from tests.integration.raw_http import RawConnection, get
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, ok_response

WAIT = 10.0
APPS = 2
DEPTH = 4


def _trace(app: int, call: int) -> tuple[str, str]:
    """The trace id and parent span id the app sends with one call."""
    return f"{app + 1:02x}{call + 1:02x}" + "ab" * 14, f"{app + 1:02x}{call + 1:02x}" + "cd" * 6


async def test_each_pipelined_call_keeps_its_own_trace_and_span_nesting() -> None:
    """Pipelined calls on two app connections each continue their own trace: one SERVER span
    under the app's span, one CLIENT span under it, and the upstream told that CLIENT span;
    no span of one call lands in another's trace."""

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(ok_response(str(req.header("traceparent")).encode()))

    async with OtlpReceiver("grpc") as rx, RawUpstream(script) as up:
        config = {
            "telemetry": {
                "tracing": {"protocol": "grpc", "endpoint": rx.endpoint, "schedule_delay": "50ms"}
            },
            "upstreams": {"up": {"url": up.url}},
        }
        proc = await asyncio.to_thread(SidecarProcess(config).start)
        try:
            sent: dict[str, str] = {}  # trace id -> the traceparent the upstream got

            async def app(n: int) -> None:
                async with await RawConnection.open(proc.http_port) as conn:
                    wire = b""
                    for i in range(DEPTH):
                        trace_id, parent = _trace(n, i)
                        extra = f"traceparent: 00-{trace_id}-{parent}-01\r\n"
                        wire += get(f"/up/{n}/{i}", extra=extra)
                    await conn.send(wire)
                    for i in range(DEPTH):
                        resp = await conn.response(timeout=WAIT)
                        assert resp.status == 200, resp
                        sent[_trace(n, i)[0]] = resp.body.decode()

            await asyncio.wait_for(asyncio.gather(*(app(n) for n in range(APPS))), WAIT * 2)
            spans = await rx.wait_for(2 * APPS * DEPTH)
        finally:
            proc.kill()
    assert len(spans) == 2 * APPS * DEPTH, [(s.kind, s.trace_id) for s in spans]
    for n in range(APPS):
        for i in range(DEPTH):
            trace_id, parent = _trace(n, i)
            mine = [s for s in spans if s.trace_id == trace_id]
            kinds = sorted(s.kind for s in mine)
            assert kinds == ["CLIENT", "SERVER"], (trace_id, kinds)
            (server,) = [s for s in mine if s.kind == "SERVER"]
            (client,) = [s for s in mine if s.kind == "CLIENT"]
            assert server.parent_span_id == parent
            assert client.parent_span_id == server.span_id
            assert sent[trace_id] == f"00-{trace_id}-{client.span_id}-01"
