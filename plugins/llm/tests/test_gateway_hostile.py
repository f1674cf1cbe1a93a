"""The gateway under attack by a hostile app: malformed JSON, wrong types in every field the
fronts read, oversized bodies, apps leaving streams, invented model names and paths; and keys
that must never leave the sidecar. Every attack ends with a 4xx/5xx in the front's error shape
(never the sidecar's own 500), the sidecar keeps serving, nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
import sidecar_llm
from aiohttp import web
from gateway import anthropic_provider, gateway_config, group, openai_provider
from hostile import (
    CHAT,
    CONTENT,
    DEEP,
    HTTP,
    Handler,
    admin,
    answer,
    ask,
    assert_front_error,
    hostile_config,
    http_client,
    post,
    sse,
    streamed,
)
from providers import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, FakeAnthropic, FakeOpenAI

from sidecar.testing import FakeUpstream, async_wait_until

pytestmark = pytest.mark.usefixtures("provider_keys", http_client.__name__)


# -- a hostile app ---------------------------------------------------------------------------

#: an assistant turn whose tool-call arguments (a string in the body) nest past the parser
NESTED_CALL = {
    "role": "assistant",
    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "[" * DEEP}}],
}
BAD_FIELDS: list[dict[str, Any]] = [
    {"messages": "x"},
    {"messages": 5},
    {"messages": [5]},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "wizard", "content": "x"}]},
    {"tools": "garbage"},
    {"tools": [1, {"x": 2}]},
    {"tool_choice": 5},
    {"stop": 5},
    {"stop_sequences": 5},
    {"system": 5},
    {"stream": "yes"},
    {"stream": 1},
    {"stream": True, "stream_options": "x"},
    {"stream": True, "stream_options": [1]},
    {"messages": json.loads("[" * 900 + "]" * 900)},
    {"messages": [{"role": "user", "content": "hi"}, NESTED_CALL, {"role": "tool", "content": ""}]},
]
#: values only the provider can judge: sent on (the fakes are lax), never a sidecar failure
PROVIDERS_CALL: list[dict[str, Any]] = [
    {"max_tokens": 10**30},
    {"max_tokens": -1},
    {"temperature": "hot"},
]


async def test_malformed_requests_get_a_4xx_in_the_fronts_shape(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """Bodies that are no JSON, no object, nested past any parser, or wrong in any field's type
    are refused with a 4xx in the front's shape, and cool no deployment down."""
    config = gateway_config(
        {"oa": openai_provider(fake_openai.url), "an": anthropic_provider(fake_anthropic.url)},
        {"on-openai": group(("oa", "gpt-4o")), "on-anthropic": group(("an", "claude"))},
        cooldown={"failures": 1000},  # the fake OpenAI fails (500) on some of these
    )
    bodies: list[bytes | dict[str, Any]] = [b"not json", b"[1, 2]", b"\xff\xfe", b"[" * DEEP]
    bodies.append(b'{"model": "on-openai", "messages": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            for raw in bodies:
                assert_front_error(front, await post(s, front, raw), range(400, 500))
            for model in ("on-openai", "on-anthropic"):
                for bad in BAD_FIELDS + PROVIDERS_CALL:
                    answer = await post(s, front, ask(model, **bad))
                    if (
                        model.endswith(front) or bad in PROVIDERS_CALL
                    ):  # sent on as it came: the provider's to refuse
                        if answer.status_code != 200:  # (the fake is lax, or fails on some)
                            assert_front_error(front, answer, range(400, 600))
                        continue
                    assert answer.status_code != 200, (front, model, bad)
                    assert_front_error(front, answer, range(400, 500))
        assert json.loads(await admin(s, "/upstreams"))  # still serving
        for depth in range(900, 1001):  # parsed, but maybe too deep to encode again
            nested = b'{"model": "on-openai", "messages": [], "x": ' + b"[" * depth
            answer = await post(s, "openai", nested + b"]" * depth + b"}")
            if answer.status_code != 200:
                assert_front_error("openai", answer, range(400, 500))
        assert json.loads(await admin(s, "/upstreams"))["llm"]["cooling_down"] == []
        assert (await post(s, "openai", ask("on-anthropic"))).status_code == 200


async def test_oversized_request_bodies_get_413(
    fake_openai: FakeOpenAI, sidecar_factory: Any
) -> None:
    """A body over ``max_request_bytes`` (with a length or chunked) is 413 in the front's shape."""
    config = gateway_config(
        {"oa": openai_provider(fake_openai.url)},
        {"gpt-4o": group(("oa", "gpt-4o"))},
        max_request_bytes=1024,
    )
    big = ask("gpt-4o", messages=[{"role": "user", "content": "x" * 4096}])
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            assert_front_error(front, await post(s, front, big), range(413, 414))

        async def chunked() -> Any:
            for _ in range(64):
                yield b"x" * 1024

        async with httpx.AsyncClient(timeout=20) as http:
            url = f"http://127.0.0.1:{s.http_port}{CHAT}"
            assert_front_error("openai", await http.post(url, content=chunked()), range(413, 414))
    assert fake_openai.model_requests() == []


async def test_apps_leaving_streams_leak_no_connections_or_tasks(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """20 concurrent streams whose apps go away mid-stream, then 20 whose apps go away before
    any content: every provider stream is closed and no task is left behind."""
    live: list[int] = [0]

    async def counted_with(handler: Handler, request: web.Request) -> web.StreamResponse:
        live[0] += 1
        try:
            return await handler(request)
        finally:
            live[0] -= 1

    content = streamed(CONTENT, forever=CONTENT, every=0.01)
    fake_upstream.handler = lambda request: counted_with(content, request)
    config = hostile_config(fake_upstream.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        before = len(asyncio.all_tasks())

        async def leave() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                url = f"http://127.0.0.1:{s.http_port}{CHAT}"
                async with http.stream("POST", url, json=ask("m", stream=True)) as r:
                    assert r.status_code == 200
                    async for _ in r.aiter_bytes():
                        break

        await asyncio.gather(*(leave() for _ in range(20)))
        await async_wait_until(lambda: live[0] == 0, 10)
        await async_wait_until(lambda: len(asyncio.all_tasks()) <= before, 10)

        # apps leaving while their streams are held (no content yet): closed by the attempt's
        # timeout at the latest
        silent = streamed(forever=b": keep-alive\n\n", every=0.01)
        fake_upstream.handler = lambda request: counted_with(silent, request)

        async def held() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                await http.post(f"http://127.0.0.1:{s.http_port}{CHAT}", json=ask("m", stream=True))

        calls = [asyncio.create_task(held()) for _ in range(20)]
        await async_wait_until(lambda: live[0] == 20, 10)  # every stream open at the provider
        for task in calls:
            task.cancel()  # the app goes away
        await asyncio.gather(*calls, return_exceptions=True)
        await async_wait_until(lambda: live[0] == 0, 10)
        await async_wait_until(lambda: len(asyncio.all_tasks()) <= before, 10)


# -- secrets, headers, labels ----------------------------------------------------------------


async def test_keys_never_leave_the_sidecar(
    fake_upstream: FakeUpstream, sidecar_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider echoing its key in error messages and types, plain and streamed: no key in
    any answer's body or headers, log line, /metrics, /config or /upstreams."""
    keys = (OPENAI_TEST_KEY, ANTHROPIC_TEST_KEY)

    def echoing(status: int, stream: bool, shape: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            key = request.headers.get("x-api-key") or request.headers["authorization"][7:]
            echo = {"message": f"bad key {key}", "type": key, "code": key}
            error = json.dumps({"error": echo} | ({"type": "error"} if shape == "a" else {}))
            if stream:
                return await streamed(*([CONTENT] if status else []), sse(error))(request)
            return await answer(status, error.encode())(request)

        return handle

    answers = [echoing(400, False, "o"), echoing(404, False, "a"), echoing(429, False, "o")]
    answers += [echoing(200, True, "o"), echoing(0, True, "a")]
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    config = hostile_config(fake_upstream.url)
    config["upstreams"]["llm"]["options"]["providers"]["an"] = anthropic_provider(fake_upstream.url)
    config["upstreams"]["llm"]["options"]["groups"]["c"] = group(("an", "claude"))
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for handler in answers:
            fake_upstream.handler = handler
            for front in ("openai", "anthropic"):
                for model in ("m", "c"):
                    for stream in (False, True):
                        r = await post(s, front, ask(model, stream=stream))
                        seen.append(f"{r.headers} {r.text}")
        for path in ("/metrics", "/config", "/upstreams"):
            seen.append(await admin(s, path))
    seen.extend(f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text}" for r in caplog.records)
    everything = "\n".join(seen)
    for key in keys:
        assert key not in everything


async def test_no_header_injection_and_no_invented_metric_labels(
    fake_openai: FakeOpenAI, sidecar_factory: Any
) -> None:
    """Model names and paths the app invents (with CR/LF, or just many) reach no response header
    and no metric label; a provider's own headers are not passed on."""
    config = gateway_config({"oa": openai_provider(fake_openai.url)}, {"m": group(("oa", "gpt"))})
    invented = [f"invented-model-{i}" for i in range(20)] + ["m\r\nx-injected: 1", "m\nx: y"]
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for name in invented:
            for front in ("openai", "anthropic"):
                r = await post(s, front, ask(name))
                assert_front_error(front, r, range(404, 405))
                assert "x-injected" not in r.headers and "x" not in r.headers
        for i in range(10):  # paths too: no endpoint, no label
            url = f"http://127.0.0.1:{s.http_port}/llm/v1/invented-path-{i}"
            assert_front_error("openai", await HTTP["client"].post(url), range(404, 405))
        ok = await post(s, "openai", ask("m"))
        assert ok.status_code == 200 and "x-request-id" not in ok.headers
        metrics = await admin(s, "/metrics")
    assert "invented-" not in metrics and "x-injected" not in metrics
