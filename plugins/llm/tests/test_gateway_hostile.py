"""The gateway under attack: a hostile app sending malformed requests, and a hostile or broken
provider answering it. Every attack ends with a 4xx/5xx in the front's error shape (never the
sidecar's own 500), the sidecar keeps serving, nothing grows without bound, keys never leak."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sidecar_llm
from aiohttp import web
from gateway import anthropic_provider, gateway_config, group, openai_provider
from providers import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, FakeAnthropic, FakeOpenAI

from sidecar.testing import FakeUpstream, async_wait_until

pytestmark = pytest.mark.usefixtures("provider_keys")

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


@pytest.fixture(autouse=True)
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


# -- a hostile app ---------------------------------------------------------------------------

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


# -- a hostile provider ----------------------------------------------------------------------


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


def sse(data: str, event: str | None = None) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


PING = sse('{"type": "ping"}', "ping")
ANTHROPIC_TEXT = '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}'
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

        async def leave_early() -> None:
            async with httpx.AsyncClient(timeout=0.2) as http:
                url = f"http://127.0.0.1:{s.http_port}{CHAT}"
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(url, json=ask("m", stream=True))

        await asyncio.gather(*(leave_early() for _ in range(20)))
        assert live[0] > 0
        await async_wait_until(lambda: live[0] == 0, 10)
        await async_wait_until(lambda: len(asyncio.all_tasks()) <= before, 10)


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
