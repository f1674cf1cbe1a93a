"""The gateway under attack by a hostile or broken provider: answers that are no JSON, nested,
errors sent with 200, odd statuses, redirects, garbage Retry-After and usage, SSE streams of
garbage, oversized, nested, endless or silent events. Every attack ends with a 4xx/5xx in the
app's front's error shape (never the sidecar's own 500), and nothing grows without bound."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import sidecar_llm
from aiohttp import web
from hostile import (
    ANTHROPIC_TEXT,
    CONTENT,
    NESTED,
    NESTED_EVENT,
    PING,
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
from providers import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY

from sidecar.testing import FakeUpstream

pytestmark = pytest.mark.usefixtures("provider_keys", http_client.__name__)


HOSTILE_ANSWERS: dict[str, Handler] = {
    "nested-json-400": answer(400, NESTED, content_type="application/json"),
    "non-json-200": answer(200, b"<html>hello</html>", content_type="text/html"),
    "malformed-json-200": answer(200, b'{"choices": [', content_type="application/json"),
    "nested-json-200": answer(200, NESTED, content_type="application/json"),
    "error-body-200": answer(200, b'{"error": {"message": "boom", "type": "server_error"}}'),
    "array-200": answer(200, b"[1, 2, 3]", content_type="application/json"),
    "huge-header": answer(200, b"{}", **{"x-huge": "a" * 70_000}),
    "sse-to-a-plain-call": streamed(CONTENT, b"data: [DONE]\n\n"),
}


@pytest.mark.parametrize("attack", list(HOSTILE_ANSWERS))
async def test_broken_plain_answers_are_a_5xx(
    attack: str, fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider answering no JSON, malformed, nested or error JSON with 200, a huge header or
    a redirect gets the app a 5xx in its front's shape, never a 200 or the sidecar's own 500."""
    fake_upstream.handler = HOSTILE_ANSWERS[attack]
    # a refusal the sidecar cannot read is still the provider's refusal
    statuses = range(400, 401) if attack == "nested-json-400" else range(500, 600)
    async with sidecar_factory(hostile_config(fake_upstream.url), plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            assert_front_error(front, await post(s, front, ask("m")), statuses)


async def test_tool_arguments_nested_past_the_parser_are_a_502(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """An OpenAI answer whose tool-call arguments (a string) nest past the parser, translated
    for the Anthropic front: a 502 in its shape, not the sidecar's own 500."""
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[" * 100_000}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    chat = {"id": "c", "object": "chat.completion", "created": 0, "model": "x", "choices": []}
    chat["choices"] = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
    fake_upstream.handler = answer(200, json.dumps(chat).encode(), content_type="application/json")
    async with sidecar_factory(hostile_config(fake_upstream.url), plugins=[sidecar_llm]) as s:
        assert_front_error("anthropic", await post(s, "anthropic", ask("m")), range(502, 503))


@pytest.mark.parametrize("status", [600, 799, 999])
async def test_statuses_past_5xx_reach_the_app_as_502(
    status: int, fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider answering a status no HTTP client knows (600-999): the app gets 502 in its
    front's shape, and the failure label stays one of the documented reasons."""
    fake_upstream.handler = answer(status, b'{"error": {"message": "odd"}}')
    async with sidecar_factory(hostile_config(fake_upstream.url), plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            assert_front_error(front, await post(s, front, ask("m")), range(502, 503))
        metrics = await admin(s, "/metrics")
    assert f'reason="{str(status)[0]}xx"' not in metrics


@pytest.mark.parametrize("value", ["garbage", "-5", "1e9", "inf", "1e400", "nan"])
async def test_retry_after_is_bounded(
    value: str, fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider's Retry-After of garbage, negative, huge or infinite: the app gets 429 with a
    whole-second Retry-After of at most ``max_retry_after``, and the cooldown is bounded too."""
    fake_upstream.handler = answer(429, b'{"error": {"message": "slow down"}}', retry_after=value)
    config = hostile_config(fake_upstream.url, cooldown={"max_retry_after": "7s"})
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            first = await post(s, front, ask("m"))  # 503 once cooling down
            assert first.status_code in (429, 503)
            assert_front_error(front, first, range(429, 504))
            if "retry-after" in first.headers:
                assert 1 <= int(first.headers["retry-after"]) <= 7
        cooling = json.loads(await admin(s, "/upstreams"))
        for entry in json.dumps(cooling).split('"seconds_left": ')[1:]:
            assert float(entry.split("}")[0]) <= 7


HOSTILE_STREAMS: dict[str, tuple[str, Handler]] = {
    "garbage-lines": ("openai", streamed(b"garbage\n\n:\n\ndata: {not json\n\n", CONTENT)),
    "no-content-then-end": ("openai", streamed(b'data: {"choices": []}\n\n')),
    "silent": ("openai", streamed(b": keep-alive\n\n", forever=b": keep-alive\n\n", every=0.05)),
    "oversized-event": ("openai", streamed(b"data: " + b"x" * 8192, CONTENT)),
    "json-to-a-stream": ("openai", answer(200, b'{"choices": []}', content_type="text/json")),
    "error-event-first": ("openai", streamed(sse('{"error": {"message": "no"}}'), CONTENT)),
    "nested-event": ("openai", streamed(NESTED_EVENT, CONTENT)),
    "nested-anthropic": ("anthropic", streamed(NESTED_EVENT)),
    "pings-forever": ("anthropic", streamed(forever=PING * 200, every=0.001)),
}


@pytest.mark.parametrize("attack", list(HOSTILE_STREAMS))
async def test_broken_streams_before_content_are_a_5xx(
    attack: str, fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A stream of garbage, no content, silence, an oversized or nested event, JSON instead of
    SSE, an error event or endless pings before any content: a 5xx in the front's shape."""
    kind, fake_upstream.handler = HOSTILE_STREAMS[attack]
    config = hostile_config(fake_upstream.url, kind, max_response_bytes=4096)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            assert_front_error(front, await post(s, front, ask("m", stream=True)), range(500, 600))


async def test_events_held_before_content_are_bounded(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """Events without content are held until the first content: past ``max_response_bytes`` of
    them the attempt fails (502), instead of holding whatever the provider sends in its time."""
    fake_upstream.handler = streamed(PING * 200, sse(ANTHROPIC_TEXT))  # 200 pings: ~8 kB
    config = hostile_config(fake_upstream.url, "anthropic", max_response_bytes=4096)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        answer = await post(s, "anthropic", ask("m", stream=True))
    assert_front_error("anthropic", answer, range(502, 503))


def test_a_long_event_in_small_pieces_costs_linear_time() -> None:
    """A provider trickling one 4 MB event in 4 kB pieces costs the parser milliseconds, not the
    seconds of searching the whole pending line again for every piece (the loop would stall)."""
    from sidecar_llm.translate.sse import SSEParser

    parser = SSEParser(16 << 20)
    started = time.process_time()
    parser.feed(b"data: ")
    for _ in range((4 << 20) // 4096):
        assert parser.feed(b"x" * 4096) == []
    events = parser.feed(b"\r") + parser.feed(b"\n\n")
    assert time.process_time() - started < 1.0
    assert [len(e.data) for e in events] == [4 << 20]


async def test_an_endless_stream_ends_at_the_upstreams_timeout(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider streaming content forever: the app's stream ends with an error event once the
    upstream's timeout has passed."""
    fake_upstream.handler = streamed(forever=CONTENT, every=0.005)
    config = hostile_config(fake_upstream.url)
    config["upstreams"]["llm"]["timeout"] = "1500ms"
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        async with asyncio.timeout(10):
            answer = await post(s, "openai", ask("m", stream=True))
    assert answer.status_code == 200
    assert answer.text.rstrip().endswith('"type": "server_error", "param": null, "code": null}}')


async def test_answers_nested_near_the_parsers_limit_are_no_500(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """Answers and stream events nested just under what the parser takes, encoded again (and
    translated) for the app: each is the answer or a 502, never the sidecar's own 500."""
    depth = [0]

    async def nested(request: web.Request) -> web.StreamResponse:
        value = "[" * depth[0] + "]" * depth[0]
        block = f'{{"type": "tool_use", "id": "t", "name": "f", "input": {{"a": {value}}}}}'
        if not (await request.json()).get("stream"):
            message = f'{{"id": "m", "type": "message", "role": "assistant", "content": [{block}]'
            message += ', "stop_reason": "tool_use", "usage": {}}'
            return await answer(200, message.encode(), content_type="application/json")(request)
        start = f'{{"type": "content_block_start", "index": 0, "content_block": {block}}}'
        return await streamed(sse(start, "content_block_start"))(request)

    fake_upstream.handler = nested
    config = hostile_config(fake_upstream.url, "anthropic", cooldown={"failures": 1000})
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        for depth[0] in range(900, 1001):
            for stream in (False, True):
                r = await post(s, "openai", ask("m", stream=stream))
                if r.status_code != 200:
                    assert_front_error("openai", r, range(502, 503))


async def test_an_answer_arriving_in_pieces_is_read_whole(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A plain answer (or an error body) the provider sends in several pieces, with pauses, is
    read whole: the app gets the answer (or the provider's message), not a protocol failure."""
    chat = '{"id": "c", "object": "chat.completion", "created": 0, "model": "x", "choices": '
    chat += '[{"index": 0, "message": {"role": "assistant", "content": "whole"}, '
    chat += '"finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    refusal = '{"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}'
    body = [chat]

    async def in_pieces(request: web.Request) -> web.StreamResponse:
        status = 200 if body[0] is chat else 400
        response = web.StreamResponse(status=status, headers={"content-type": "application/json"})
        await response.prepare(request)
        for i in range(0, len(body[0]), 16):
            await response.write(body[0][i : i + 16].encode())
            await asyncio.sleep(0.002)
        await response.write_eof()
        return response

    fake_upstream.handler = in_pieces
    async with sidecar_factory(hostile_config(fake_upstream.url), plugins=[sidecar_llm]) as s:
        r = await post(s, "openai", ask("m"))
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "whole"
        body[0] = refusal
        r = await post(s, "openai", ask("m"))
        assert_front_error("openai", r, range(400, 401))
        assert r.json()["error"]["message"] == "max_tokens is too large"


async def test_a_redirect_takes_no_key_elsewhere(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider redirecting the call elsewhere: the app gets a 5xx, and the key stays with the
    provider it belongs to (the redirect is not followed)."""
    async with FakeUpstream() as elsewhere:
        for kind in ("openai", "anthropic"):
            path = "/chat/completions" if kind == "openai" else "/v1/messages"
            fake_upstream.handler = answer(307, b"", location=f"{elsewhere.url}{path}")
            config = hostile_config(fake_upstream.url, kind)
            async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
                for front in ("openai", "anthropic"):
                    assert_front_error(front, await post(s, front, ask("m")), range(500, 600))
        sent = [f"{r.headers}" for r in elsewhere.requests]
    assert not any(key in h for h in sent for key in (OPENAI_TEST_KEY, ANTHROPIC_TEST_KEY))
    assert elsewhere.requests == []


@pytest.mark.parametrize("tokens", ["-5", '"many"', "1e400", "1e30", "[1]"])
async def test_garbage_usage_counts_as_nothing(
    tokens: str, fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """A provider reporting negative, non-numeric or infinite token counts: the app still gets
    its answer, and the token metrics never go negative."""
    usage = f'{{"prompt_tokens": {tokens}, "completion_tokens": {tokens}}}'
    chat = '{"id": "c", "object": "chat.completion", "created": 0, "model": "x", "choices": '
    chat += '[{"index": 0, "message": {"role": "assistant", "content": "hi"}, '
    chat += f'"finish_reason": "stop"}}], "usage": {usage}}}'
    fake_upstream.handler = answer(200, chat.encode(), content_type="application/json")
    async with sidecar_factory(hostile_config(fake_upstream.url), plugins=[sidecar_llm]) as s:
        for front in ("openai", "anthropic"):
            r = await post(s, front, ask("m"))
            assert r.status_code == 200, r.text[:300]
        metrics = await admin(s, "/metrics")
    for line in metrics.splitlines():
        if line.startswith("sidecar_llm_tokens_total{"):
            assert float(line.rsplit(" ", 1)[1]) >= 0, line
