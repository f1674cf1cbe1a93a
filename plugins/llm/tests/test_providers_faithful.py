"""The fake providers speak the real wire formats: the official SDKs, called directly, parse them.

No sidecar here. Each answer the llm plugin's tests rely on (plain, streamed, tools, every
scripted failure) is read by the ``openai`` / ``anthropic`` SDK itself, with its own retries off
(``max_retries=0``) except where a test checks them, so a fake that drifts from the real format
fails here first. This file: OpenAI, what both share, use from async tests; Anthropic's half is
``test_providers_faithful_anthropic.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
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
PARIS = ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_paris")


@pytest.fixture
def oai(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.url, api_key=OPENAI_TEST_KEY, max_retries=0) as c:
        yield c


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


def test_openai_refuses_a_wrong_key_never_echoing_it(fake_openai: FakeOpenAI) -> None:
    """A wrong key is a 401 whose body does not repeat the key."""
    with openai.OpenAI(base_url=fake_openai.url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as denied:
            wrong.models.list()
    assert "sk-wrong" not in denied.value.response.text


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
OBJECT_CALL = {**CALL, "function": {"name": "f", "arguments": {}}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_k": 3}, None),  # an Anthropic field OpenAI does not know
        ({"messages": [{"role": "tool", "tool_call_id": "x", "content": "hi"}]},
         "messages.[0].role"),
        ({"messages": [*ASK, {"role": "assistant", "tool_calls": [CALL]}, *ASK]},
         "messages.[2].role"),
        ({"messages": [*ASK, {"role": "assistant", "tool_calls": [OBJECT_CALL]}]},
         "messages[1].tool_calls[0].function.arguments"),
        ({"messages": [{"role": "human", "content": "hi"}]}, "messages[0].role"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tools": [{"type": "function", "function": {"parameters": {}}}]},
         "tools[0].function.name"),
    ],
)  # fmt: skip
def test_openai_refuses_what_openai_refuses(
    oai: openai.OpenAI, fake_openai: FakeOpenAI, extra: dict[str, Any], param: str | None
) -> None:
    """Malformed chat requests (a translation bug, say) get OpenAI's 400 naming the parameter."""
    fake_openai.script(Reply())
    body = {"model": GPT, "messages": ASK, **extra}
    odd = {k: body.pop(k) for k in ("top_k",) if k in body}  # no SDK argument: sent as is
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(**body, extra_body=odd)
    assert refused.value.param == param and refused.value.type == "invalid_request_error"
    assert fake_openai.pending == 1  # a refused call consumes no scripted step


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
    """Close, a cut answer, a cut stream (after content), a hang past the timeout: all surface."""
    fake_openai.script(Close(), StreamThenFail(0), StreamThenFail(after_chunks=2), Hang())
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=GPT, messages=ASK)
    with pytest.raises(openai.APIConnectionError):  # headers, then half the JSON body
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
