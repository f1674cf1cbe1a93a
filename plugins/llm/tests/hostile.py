"""Helpers for the gateway's attack tests: raw calls to the sidecar in either front's shape,
the error-shape check, and hostile providers (fixed answers and SSE streams of any bytes) served
by ``sidecar.testing.FakeUpstream``. No test here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from gateway import anthropic_provider, gateway_config, group, openai_provider

CHAT, MESSAGES = "/llm/v1/chat/completions", "/llm/v1/messages"
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
DEEP = 100_000  # nesting no JSON parser recurses through
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def assert_front_error(front: str, response: httpx.Response, statuses: range) -> None:
    """``response`` is an error in ``front``'s shape with a status in ``statuses``."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    if front == "openai":
        assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)
    else:
        assert body["type"] == "error" and isinstance(body["error"]["type"], str)


#: the client ``post`` uses (one per test: a client per call costs more than the call)
HTTP: dict[str, httpx.AsyncClient] = {}


@pytest.fixture
async def http_client() -> AsyncIterator[None]:
    async with httpx.AsyncClient(timeout=20) as http:
        HTTP["client"] = http
        yield
        del HTTP["client"]


async def post(s: Any, front: str, body: bytes | dict[str, Any]) -> httpx.Response:
    path, headers = (CHAT, {}) if front == "openai" else (MESSAGES, ANTHROPIC_HEADERS)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"http://127.0.0.1:{s.http_port}{path}"
    return await HTTP["client"].post(url, content=raw, headers=headers)


async def admin(s: Any, path: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(f"http://127.0.0.1:{s.admin_port}{path}")).text


def ask(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]} | (
        fields
    )


def answer(status: int, body: bytes, **headers: str) -> Handler:
    """A fixed answer; ``retry_after="5"`` is the header ``retry-after: 5``."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=sent)

    return handle


def streamed(*frames: bytes, forever: bytes | None = None, every: float = 0.01) -> Handler:
    """A 200 SSE answer of ``frames``, then ``forever`` every ``every`` s until the client goes."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            for frame in frames:
                await response.write(frame)
            while forever is not None:
                await response.write(forever)
                await asyncio.sleep(every)
        except ConnectionError:
            pass
        return response

    return handle


def hostile_config(url: str, kind: str = "openai", **options: Any) -> dict[str, Any]:
    provider = openai_provider if kind == "openai" else anthropic_provider
    return gateway_config(
        {"bad": provider(url, timeout="1s")}, {"m": group(("bad", "model-x"))}, **options
    )


CONTENT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
NESTED = b"[" * DEEP + b"]" * DEEP
NESTED_EVENT = b"data: " + b"[" * 1500 + b"]" * 1500 + b"\n\n"  # under the event bound


def sse(data: str, event: str | None = None) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


PING = sse('{"type": "ping"}', "ping")
ANTHROPIC_TEXT = '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}'
