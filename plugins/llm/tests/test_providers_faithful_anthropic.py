"""The fake Anthropic speaks the real wire format: the official ``anthropic`` SDK parses it.

No sidecar here. Plain, streamed (the SDK's stream helper and the raw event order), tool use,
the limits that stop an answer, and every scripted failure, read by the SDK itself with its own
retries off (``max_retries=0``). The OpenAI half is ``test_providers_faithful.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from providers import (
    ANTHROPIC_TEST_KEY,
    Close,
    Fail,
    FakeAnthropic,
    Hang,
    Reply,
    StreamThenError,
    StreamThenFail,
    ToolCall,
)

CLAUDE = "claude-sonnet-4-5"
ASK: Any = [{"role": "user", "content": "what is the weather in Paris"}]
WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
PARIS = ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="call_paris")


@pytest.fixture
def ant(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=fake_anthropic.url, api_key=ANTHROPIC_TEST_KEY, max_retries=0
    ) as client:
        yield client


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


USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"n": 2}, "n: Extra inputs are not permitted"),  # an OpenAI field
        ({"messages": [{"role": "system", "content": "x"}, *ASK]},
         "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"messages": [{"role": "user", "content": [RESULT]}]},
         "messages.0.content.0: unexpected `tool_use_id`"),
        ({"messages": [*ASK, {"role": "assistant", "content": [USE]}, *ASK]},
         "messages.1: `tool_use` ids were found without `tool_result` blocks"),
        ({"messages": [*ASK, {"role": "assistant", "content": [{**USE, "input": "{}"}]}]},
         "messages.1.content.0.tool_use.input: Input should be a valid dictionary"),
        ({"tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ],
)  # fmt: skip
def test_anthropic_refuses_what_anthropic_refuses(
    ant: anthropic.Anthropic, fake_anthropic: FakeAnthropic, extra: dict[str, Any], message: str
) -> None:
    """Malformed Messages requests (a translation bug, say) get Anthropic's 400 with its reason."""
    fake_anthropic.script(Reply())
    body = {"model": CLAUDE, "max_tokens": 10, "messages": ASK, **extra}
    odd = {k: body.pop(k) for k in ("n", "temperature") if k in body}  # sent as is
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant.messages.create(**body, extra_body=odd)
    assert refused.value.type == "invalid_request_error"
    assert refused.value.api_message is not None and refused.value.api_message.startswith(message)
    assert fake_anthropic.pending == 1  # a refused call consumes no scripted step


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
