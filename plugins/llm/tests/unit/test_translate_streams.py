"""Stream translation, fed the event sequences the providers' API references show.

The translated streams are also handed, as SSE bytes, to the official SDKs' stream helpers
through an in-memory httpx transport (no sockets), so "the SDK accepts it" is checked, not
assumed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sidecar_llm.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    ProviderStreamError,
    Untranslatable,
    Usage,
    encode_sse,
    is_content_anthropic,
    is_content_openai,
)
from translate_sdk import anthropic_answering, openai_answering

TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}


def anthropic_tool_stream() -> list[tuple[str, dict[str, Any]]]:
    """Text then a tool call with partial JSON, as Anthropic's streaming reference shows."""
    text_block = {"type": "text", "text": ""}
    tool_block = {"type": "tool_use", "id": "toolu_01T1", "name": "get_weather", "input": {}}
    message = {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 2},
    }  # fmt: skip

    def delta(index: int, **fields: Any) -> tuple[str, dict[str, Any]]:
        return "content_block_delta", {"type": "content_block_delta", "index": index,
                                       "delta": fields}  # fmt: skip

    return [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": text_block}),
        ("ping", {"type": "ping"}),
        delta(0, type="text_delta", text="Okay, "),
        delta(0, type="text_delta", text="checking."),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": tool_block}),
        delta(1, type="input_json_delta", partial_json=""),
        delta(1, type="input_json_delta", partial_json='{"city":'),
        delta(1, type="input_json_delta", partial_json=' "Paris"}'),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 89}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }  # fmt: skip


def openai_tool_stream() -> list[dict[str, Any]]:
    """Text then two tool calls and the usage chunk, as OpenAI's streaming reference shows."""

    def call(index: int, arguments: str, **start: Any) -> dict[str, Any]:
        return openai_chunk({"tool_calls": [
            {"index": index, **start, "function": {**start.pop("function", {}),
                                                   "arguments": arguments}}]})  # fmt: skip

    usage_chunk = openai_chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = {
        "prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
        "prompt_tokens_details": {"cached_tokens": 0},
    }  # fmt: skip
    return [
        openai_chunk({"role": "assistant", "content": "", "refusal": None}),
        openai_chunk({"content": "Checking "}),
        openai_chunk({"content": "both."}),
        call(0, "", id="call_1", type="function", function={"name": "get_weather"}),
        call(0, '{"city": '),
        call(0, '"Paris"}'),
        call(1, '{"city": "Rome"}', id="call_2", type="function",
             function={"name": "get_weather"}),
        openai_chunk({}, "tool_calls"),
        usage_chunk,
    ]  # fmt: skip


def test_anthropic_text_and_tool_use_become_openai_chunks() -> None:
    """Text deltas become content; a tool_use block becomes one tool call with its arguments."""
    stream = AnthropicToOpenAIStream("claude", 1700000000, include_usage=True)
    chunks = [c for event, data in anthropic_tool_stream() for c in stream.feed(event, data)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Okay, "},
        {"content": "checking."},
        {"tool_calls": [{"index": 0, "id": "toolu_01T1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]},
        {},
    ]  # fmt: skip
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
        "prompt_tokens_details": {"cached_tokens": 0},
    }  # fmt: skip
    assert {c["id"] for c in chunks} == {"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U"}
    assert stream.usage == Usage(input_tokens=472, output_tokens=89)


def test_the_usage_chunk_is_only_sent_when_the_app_asked_for_it() -> None:
    """Without include_usage the app sees no extra chunk, yet the gateway still counts usage."""
    stream = AnthropicToOpenAIStream("claude", 1, include_usage=False)
    chunks = [c for event, data in anthropic_tool_stream() for c in stream.feed(event, data)]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert stream.usage == Usage(input_tokens=472, output_tokens=89)


def test_the_openai_sdk_assembles_a_translated_anthropic_stream() -> None:
    """The openai SDK's stream helper rebuilds text, tool call, finish reason and usage."""
    stream = AnthropicToOpenAIStream("claude-sonnet-4-5", 1700000000, include_usage=True)
    body = b"".join(
        encode_sse(json.dumps(chunk))
        for event, data in anthropic_tool_stream()
        for chunk in stream.feed(event, data)
    ) + encode_sse("[DONE]")
    client = openai_answering(body)
    with client.chat.completions.stream(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        stream_options={"include_usage": True},
    ) as events:
        completion = events.get_final_completion()
    choice = completion.choices[0]
    assert choice.message.content == "Okay, checking."
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_01T1", "get_weather", '{"city": "Paris"}')
    ]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (472, 89)


def test_openai_text_and_tool_calls_become_anthropic_events() -> None:
    """Each content kind gets its own block, closed before the next opens, usage at the end."""
    stream = OpenAIToAnthropicStream("gpt-4o-mini")
    events = [e for chunk in openai_tool_stream() for e in stream.feed(chunk)] + stream.finish()
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta",
        "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    assert [data["index"] for name, data in events if name.startswith("content_block")] == [
        0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
    ]  # fmt: skip
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 82, "output_tokens": 17,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }  # fmt: skip
    assert stream.usage == Usage(input_tokens=82, output_tokens=17)
    assert stream.finish() == []


def test_the_anthropic_sdk_assembles_a_translated_openai_stream() -> None:
    """The anthropic SDK's stream helper rebuilds text, both tool uses, stop reason and usage."""
    stream = OpenAIToAnthropicStream("gpt-4o-mini")
    events = [e for chunk in openai_tool_stream() for e in stream.feed(chunk)] + stream.finish()
    body = b"".join(encode_sse(json.dumps(data), event=name) for name, data in events)
    client = anthropic_answering(body)
    with client.messages.stream(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools=[TOOL],  # type: ignore[list-item]
    ) as message_stream:
        message = message_stream.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "Checking both."
    assert [(b.id, b.input) for b in message.content[1:] if b.type == "tool_use"] == [
        ("call_1", {"city": "Paris"}),
        ("call_2", {"city": "Rome"}),
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (82, 17)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_an_openai_finish_reason_ends_the_anthropic_stream(finish: str, stop_reason: str) -> None:
    """The stop reason in message_delta follows OpenAI's finish_reason."""
    stream = OpenAIToAnthropicStream("m")
    stream.feed(openai_chunk({"content": "Hi"}))
    stream.feed(openai_chunk({}, finish))
    assert stream.finish()[0][1]["delta"]["stop_reason"] == stop_reason


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop")],
)
def test_an_anthropic_stop_reason_ends_the_openai_stream(stop_reason: str, finish: str) -> None:
    """The last choice chunk carries the finish_reason matching Anthropic's stop_reason."""
    stream = AnthropicToOpenAIStream("m", 0, include_usage=False)
    end = {"type": "message_delta", "delta": {"stop_reason": stop_reason},
           "usage": {"output_tokens": 3}}  # fmt: skip
    assert stream.feed("message_delta", end)[0]["choices"][0]["finish_reason"] == finish


def test_an_openai_stream_cut_before_any_chunk_still_closes_as_a_message() -> None:
    """finish() on an empty stream gives a complete, empty Anthropic message."""
    names = [name for name, _ in OpenAIToAnthropicStream("m").finish()]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_errors_inside_a_stream_are_raised_for_the_router() -> None:
    """An error event the provider sends after 200 is never passed on as content."""
    with pytest.raises(ProviderStreamError) as anthropic_error:
        AnthropicToOpenAIStream("m", 0, include_usage=False).feed(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Over"}}
        )
    assert (anthropic_error.value.error_type, anthropic_error.value.message) == (
        "overloaded_error",
        "Over",
    )
    with pytest.raises(ProviderStreamError) as openai_error:
        OpenAIToAnthropicStream("m").feed({"error": {"type": "server_error", "message": "x"}})
    assert openai_error.value.error_type == "server_error"


def test_content_is_the_first_event_with_text_or_tool_data() -> None:
    """The router holds the response until one of these; role and ping events do not count."""
    assert not is_content_openai(openai_chunk({"role": "assistant", "content": ""}))
    assert is_content_openai(openai_chunk({"content": "Hi"}))
    assert is_content_openai(openai_chunk({"tool_calls": [{"index": 0, "id": "c"}]}))
    assert not is_content_openai({"choices": [], "usage": {"prompt_tokens": 1}})
    events = anthropic_tool_stream()
    assert [is_content_anthropic(name, data) for name, data in events] == [
        False, False, False, True, True, False, True, True, True, True, False, False, False,
    ]  # fmt: skip


def test_interleaved_openai_tool_call_arguments_are_refused() -> None:
    """Anthropic blocks cannot reopen, so arguments for an already closed call are an error."""
    stream = OpenAIToAnthropicStream("m")
    stream.feed(openai_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}))
    stream.feed(openai_chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}))
    late = openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    with pytest.raises(Untranslatable) as refused:
        stream.feed(late)
    assert refused.value.field == "choices[0].delta.tool_calls"
