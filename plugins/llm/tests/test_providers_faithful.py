"""The fake providers speak the real wire formats: the official SDKs, called directly, parse them.

No sidecar here. Each answer the llm plugin's tests rely on (plain, streamed, tools, every
scripted failure) is read by the ``openai`` / ``anthropic`` SDK itself, with its own retries off
(``max_retries=0``) except where a test checks them, so a fake that drifts from the real format
fails here first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from providers import (
    ANTHROPIC_TEST_KEY,
    OPENAI_TEST_KEY,
    Close,
    Fail,
    FakeAnthropic,
    FakeOpenAI,
    Hang,
    Reply,
    StreamThenError,
    StreamThenFail,
    ToolCall,
    refused_url,
)

GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-5"
ASK: Any = [{"role": "user", "content": "what is the weather in Paris"}]
WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
PARIS = ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_paris")


@pytest.fixture
def oai(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.url, api_key=OPENAI_TEST_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def ant(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=fake_anthropic.url, api_key=ANTHROPIC_TEST_KEY, max_retries=0
    ) as client:
        yield client


# -- OpenAI ---------------------------------------------------------------------------------------


def test_openai_plain_answer_echoes_with_word_usage(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """A plain completion parses: echo text, `stop`, usage in words, the request id header."""
    raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=ASK)
    done = raw.parse()
    assert done.choices[0].message.content == "echo: what is the weather in Paris"
    assert done.choices[0].finish_reason == "stop" and done.model == GPT
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (6, 7)
    assert raw.headers["x-request-id"].startswith("req_")
    [seen] = fake_openai.requests
    assert seen.headers["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert seen.body == {"model": GPT, "messages": ASK}


def test_openai_stream_helper_assembles_text_and_usage_chunk(oai: openai.OpenAI) -> None:
    """Streamed with include_usage, the SDK's helper gets the text and the final usage chunk."""
    with oai.chat.completions.stream(
        model=GPT, messages=ASK, stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta" and e.delta]
        final = stream.get_final_completion()
    assert "".join(deltas) == "echo: what is the weather in Paris" and len(deltas) == 7
    assert final.usage is not None and final.usage.completion_tokens == 7


def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    """Without stream_options.include_usage no chunk carries usage and every one has a choice."""
    chunks = list(oai.chat.completions.create(model=GPT, messages=ASK, stream=True))
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_tool_call_round_trip(
    oai: openai.OpenAI, fake_openai: FakeOpenAI, streamed: bool
) -> None:
    """A scripted tool call parses (streamed: arguments from fragments); its result is read."""
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    fake_openai.script(Reply(tool_calls=[PARIS]))
    if streamed:
        with oai.chat.completions.stream(model=GPT, messages=ASK, tools=tools) as stream:
            done = stream.get_final_completion()
    else:
        done = oai.chat.completions.create(model=GPT, messages=ASK, tools=tools)
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.id == "call_paris" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == PARIS.arguments
    history: Any = [
        *ASK,
        choice.message.model_dump(exclude_none=True, exclude={"annotations", "refusal"}),
        {"role": "tool", "tool_call_id": "call_paris", "content": "sunny, 21 C"},
    ]
    again = oai.chat.completions.create(model=GPT, messages=history, tools=tools)
    assert again.choices[0].message.content == "echo: sunny, 21 C"


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_openai_scripted_failure_is_the_sdks_exception(
    oai: openai.OpenAI,
    fake_openai: FakeOpenAI,
    status: int,
    error_class: type[openai.APIStatusError],
    error_type: str,
) -> None:
    """Each scripted status becomes the SDK's class for it, with OpenAI's error body."""
    fake_openai.script(Fail(status, retry_after=7))
    with pytest.raises(error_class) as failed:
        oai.chat.completions.create(model=GPT, messages=ASK)
    assert failed.value.status_code == status and failed.value.type == error_type
    assert failed.value.response.headers["retry-after"] == "7"


def test_openai_refuses_a_wrong_key_and_malformed_requests(fake_openai: FakeOpenAI) -> None:
    """A wrong key is a 401, never echoed; unknown fields and orphan tool messages are 400s."""
    with openai.OpenAI(base_url=fake_openai.url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as denied:
            wrong.models.list()
    assert "sk-wrong" not in denied.value.response.text
    with openai.OpenAI(base_url=fake_openai.url, api_key=OPENAI_TEST_KEY, max_retries=0) as c:
        with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
            c.chat.completions.create(model=GPT, messages=ASK, extra_body={"top_k": 3})
        with pytest.raises(openai.BadRequestError) as orphan:
            c.chat.completions.create(
                model=GPT, messages=[{"role": "tool", "tool_call_id": "x", "content": "hi"}]
            )
        assert orphan.value.param == "messages.[0].role"
        with pytest.raises(openai.BadRequestError) as options:
            c.chat.completions.create(
                model=GPT, messages=ASK, stream_options={"include_usage": True}
            )
        assert options.value.param == "stream_options"
    assert fake_openai.pending == 0 and len(fake_openai.requests) == 4


def test_openai_sdk_retries_honour_retry_after(fake_openai: FakeOpenAI) -> None:
    """The SDK's own retry waits the fake's `retry-after` and then gets the scripted answer."""
    fake_openai.script(Fail(429, retry_after=1), Reply(text="late"))
    with openai.OpenAI(base_url=fake_openai.url, api_key=OPENAI_TEST_KEY, max_retries=1) as c:
        started = time.monotonic()
        done = c.chat.completions.create(model=GPT, messages=ASK)
    assert done.choices[0].message.content == "late" and time.monotonic() - started >= 0.9
    retry = fake_openai.requests[1].headers["x-stainless-retry-count"]
    assert retry == "1"


def test_openai_connection_faults_are_connection_errors(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Close, a cut stream (after content arrived), and a hang past the timeout all surface."""
    fake_openai.script(Close(), StreamThenFail(after_chunks=2), Hang())
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=GPT, messages=ASK)
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model=GPT, messages=ASK, stream=True):
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "echo: what"
    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(model=GPT, messages=ASK, timeout=0.3)


def test_openai_error_event_mid_stream_raises(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """An in-stream `{"error": ...}` line after content is raised by the SDK as an APIError."""
    fake_openai.script(StreamThenError(after_chunks=1, status=500))
    with pytest.raises(openai.APIError, match="error while processing"):
        list(oai.chat.completions.create(model=GPT, messages=ASK, stream=True))


def test_openai_models_and_embeddings(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """The model list parses, and embeddings in both formats (base64 is the SDK's default)."""
    fake_openai.script(Reply())
    assert [m.id for m in oai.models.list()][:2] == ["gpt-4o", "gpt-4o-mini"]
    assert fake_openai.pending == 1  # listing models consumes no scripted step
    packed = oai.embeddings.create(model="text-embedding-3-small", input=["a b c", "d"])
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=["a b c", "d"], encoding_format="float"
    )
    assert [e.embedding for e in packed.data] == [e.embedding for e in floats.data]
    assert len(packed.data[0].embedding) == 8 and packed.usage.prompt_tokens == 4


def test_refused_url_is_a_connection_error() -> None:
    """Nothing listens on refused_url(): both SDKs report a connection error."""
    with openai.OpenAI(base_url=refused_url("/v1"), api_key="k", max_retries=0) as c:
        with pytest.raises(openai.APIConnectionError):
            c.models.list()
    with anthropic.Anthropic(base_url=refused_url(), api_key="k", max_retries=0) as a:
        with pytest.raises(anthropic.APIConnectionError):
            a.messages.create(model=CLAUDE, max_tokens=10, messages=ASK)


# -- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_plain_answer_echoes_with_word_usage(
    ant: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """A plain message parses: echo text, end_turn, usage in words (system counted), request id."""
    done = ant.messages.create(
        model=CLAUDE,
        max_tokens=100,
        system="be brief",
        messages=ASK,
    )
    assert [b.text for b in done.content if b.type == "text"] == [
        "echo: what is the weather in Paris"
    ]
    assert (done.stop_reason, done.usage.input_tokens, done.usage.output_tokens) == (
        "end_turn",
        8,
        7,
    )
    assert done._request_id is not None and done._request_id.startswith("req_")
    [seen] = fake_anthropic.requests
    assert seen.headers["anthropic-version"] and seen.body["system"] == "be brief"


def test_anthropic_stream_events_in_the_real_order(fake_anthropic: FakeAnthropic) -> None:
    """On the wire: message_start, block start, ping, deltas, block stop, message_delta, stop."""
    headers = {"x-api-key": ANTHROPIC_TEST_KEY, "anthropic-version": "2023-06-01"}
    body = {"model": CLAUDE, "max_tokens": 100, "messages": ASK, "stream": True}
    with httpx.Client(base_url=fake_anthropic.url, timeout=5) as http:
        answer = http.post("/v1/messages", json=body, headers=headers)
    assert answer.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in answer.text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * 7,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_tool_use_round_trip(
    ant: anthropic.Anthropic, fake_anthropic: FakeAnthropic, streamed: bool
) -> None:
    """A scripted tool_use parses (streamed: input from input_json_delta); its result is read."""
    fake_anthropic.script(Reply(text="Let me look.", tool_calls=[PARIS]))
    tools: Any = [WEATHER_TOOL]
    if streamed:
        with ant.messages.stream(model=CLAUDE, max_tokens=100, messages=ASK, tools=tools) as s:
            done = s.get_final_message()
    else:
        done = ant.messages.create(model=CLAUDE, max_tokens=100, messages=ASK, tools=tools)
    assert done.stop_reason == "tool_use"
    assert [b.type for b in done.content] == ["text", "tool_use"]
    use = done.content[1]
    assert use.type == "tool_use" and (use.id, use.name, use.input) == (
        "call_paris",
        "get_weather",
        PARIS.arguments,
    )
    result = {"type": "tool_result", "tool_use_id": "call_paris", "content": "sunny, 21 C"}
    history: Any = [
        *ASK,
        {"role": "assistant", "content": done.content},
        {"role": "user", "content": [result]},
    ]
    again = ant.messages.create(model=CLAUDE, max_tokens=100, messages=history, tools=tools)
    assert again.content[0].type == "text" and again.content[0].text == "echo: sunny, 21 C"


def test_anthropic_limits_stop_the_answer(ant: anthropic.Anthropic) -> None:
    """max_tokens cuts the answer (`max_tokens`); a stop sequence ends it (`stop_sequence`)."""
    short = ant.messages.create(model=CLAUDE, max_tokens=2, messages=ASK)
    assert (short.stop_reason, short.usage.output_tokens) == ("max_tokens", 2)
    cut = ant.messages.create(model=CLAUDE, max_tokens=50, messages=ASK, stop_sequences=["weather"])
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", "weather")
    assert cut.content[0].type == "text" and cut.content[0].text == "echo: what is the "


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_scripted_failure_is_the_sdks_exception(
    ant: anthropic.Anthropic,
    fake_anthropic: FakeAnthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    """429, 500 and 529 become the SDK's classes (529 an InternalServerError), with retry-after."""
    fake_anthropic.script(Fail(status, retry_after=3))
    with pytest.raises(error_class) as failed:
        ant.messages.create(model=CLAUDE, max_tokens=10, messages=ASK)
    assert isinstance(failed.value, anthropic.APIStatusError) and failed.value.status_code == status
    assert failed.value.type == error_type and failed.value.request_id is not None
    assert failed.value.response.headers["retry-after"] == "3"
    assert (status >= 500) == isinstance(failed.value, anthropic.InternalServerError)


def test_anthropic_checks_key_version_and_max_tokens(fake_anthropic: FakeAnthropic) -> None:
    """A wrong key is 401; no anthropic-version or no max_tokens is Anthropic's 400."""
    with anthropic.Anthropic(base_url=fake_anthropic.url, api_key="sk-bad", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            bad.messages.create(model=CLAUDE, max_tokens=10, messages=ASK)
    assert "sk-bad" not in denied.value.response.text
    headers = {"x-api-key": ANTHROPIC_TEST_KEY}
    with httpx.Client(base_url=fake_anthropic.url, timeout=5) as http:
        body = {"model": CLAUDE, "max_tokens": 5, "messages": ASK}
        no_version = http.post("/v1/messages", json=body, headers=headers)
        headers["anthropic-version"] = "2023-06-01"
        no_max = http.post("/v1/messages", json={"model": CLAUDE, "messages": ASK}, headers=headers)
    assert no_version.status_code == 400
    assert no_max.status_code == 400 and no_max.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": no_max.headers["request-id"],
    }


def test_anthropic_connection_faults_and_error_events(
    ant: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Close and a cut stream are connection errors, a hang times out, `event: error` raises."""
    fake_anthropic.script(Close(), StreamThenFail(after_chunks=1), Hang(), StreamThenError(1))
    with pytest.raises(anthropic.APIConnectionError):
        ant.messages.create(model=CLAUDE, max_tokens=10, messages=ASK)
    with pytest.raises(anthropic.APIConnectionError):
        with ant.messages.stream(model=CLAUDE, max_tokens=10, messages=ASK) as s:
            assert next(iter(s.text_stream)) == "echo:"
            list(s.text_stream)
    with pytest.raises(anthropic.APITimeoutError):
        ant.messages.create(model=CLAUDE, max_tokens=10, messages=ASK, timeout=0.3)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        with ant.messages.stream(model=CLAUDE, max_tokens=10, messages=ASK) as s:
            list(s.text_stream)
    assert overloaded.value.type == "overloaded_error"


# -- use from async tests -------------------------------------------------------------------------


async def test_async_clients_reach_the_threaded_fakes_and_extra_servers(
    fake_anthropic: FakeAnthropic, start_fake_provider: Any
) -> None:
    """From the test's own loop, async SDK clients reach the fakes; a stalled stream times out."""
    backup = start_fake_provider(FakeOpenAI(api_key="sk-backup"))
    async with openai.AsyncOpenAI(base_url=backup.url, api_key="sk-backup", max_retries=0) as c:
        done = await c.chat.completions.create(model=GPT, messages=ASK)
    assert done.choices[0].message.content == "echo: what is the weather in Paris"
    fake_anthropic.script(Hang(after_chunks=2))
    got: list[str] = []
    async with anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=ANTHROPIC_TEST_KEY, max_retries=0, timeout=0.3
    ) as a:
        with pytest.raises(anthropic.APITimeoutError):
            async with a.messages.stream(model=CLAUDE, max_tokens=10, messages=ASK) as s:
                async for text in s.text_stream:
                    got.append(text)
    assert got == ["echo:", " what"]
    await fake_anthropic.wait_requests(1)
