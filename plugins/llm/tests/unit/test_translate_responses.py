"""Whole-response translation, Anthropic Message <-> OpenAI chat.completion, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from sidecar_llm.translate import (
    Untranslatable,
    anthropic_message_to_openai_chat,
    openai_chat_to_anthropic_message,
)
from translate_sdk import anthropic_answering, openai_answering

ANTHROPIC_TOOL_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 40,
    },
}

OPENAI_TOOL_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "prompt_tokens_details": {"cached_tokens": 64},
    },
}


def test_an_anthropic_tool_use_message_becomes_an_openai_completion() -> None:
    """Text, tool calls (input as a JSON string), finish reason, ids and usage all arrive."""
    out = anthropic_message_to_openai_chat(ANTHROPIC_TOOL_MESSAGE, model="claude", created=17)
    assert out == {
        "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 17,
        "model": "claude",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "toolu_01A",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 150,
            "completion_tokens": 40,
            "total_tokens": 190,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
    }


def test_an_openai_tool_call_completion_becomes_an_anthropic_message() -> None:
    """tool_calls become tool_use blocks with parsed input; cached tokens become cache reads."""
    out = openai_chat_to_anthropic_message(OPENAI_TOOL_COMPLETION, model="gpt-4o")
    assert out == {
        "id": "msg_chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {
                "type": "tool_use",
                "id": "call_abc",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 18,
            "output_tokens": 17,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 64,
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_anthropic_stop_reasons_become_openai_finish_reasons(
    stop_reason: str, finish_reason: str
) -> None:
    """An app on the OpenAI front sees why the answer ended in OpenAI's words."""
    message = {**ANTHROPIC_TOOL_MESSAGE, "stop_reason": stop_reason}
    out = anthropic_message_to_openai_chat(message, model="m", created=0)
    assert out["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_openai_finish_reasons_become_anthropic_stop_reasons(
    finish_reason: str, stop_reason: str
) -> None:
    """An app on the Anthropic front sees why the answer ended in Anthropic's words."""
    completion: dict[str, Any] = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"},
             "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }  # fmt: skip
    out = openai_chat_to_anthropic_message(completion, model="m")
    assert out["stop_reason"] == stop_reason
    assert out["content"] == [{"type": "text", "text": "Hi"}]
    assert out["usage"]["input_tokens"] == 3 and out["usage"]["output_tokens"] == 1


def test_an_openai_refusal_is_an_anthropic_refusal_with_its_text() -> None:
    """The refusal text reaches the app and the stop reason says it was a refusal."""
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None,
                                     "refusal": "I can't help with that."},
             "finish_reason": "stop"}
        ],
    }  # fmt: skip
    out = openai_chat_to_anthropic_message(completion, model="m")
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


def test_a_response_survives_anthropic_to_openai_to_anthropic() -> None:
    """Content, stop reason and usage come back the same after both translations."""
    openai = anthropic_message_to_openai_chat(ANTHROPIC_TOOL_MESSAGE, model="m", created=0)
    back = openai_chat_to_anthropic_message(openai, model="m")
    assert back["content"] == [
        {"type": "text", "text": "Let me check."},
        ANTHROPIC_TOOL_MESSAGE["content"][1],  # type: ignore[index]
    ]
    assert back["stop_reason"] == "tool_use"
    total_in = back["usage"]["input_tokens"] + back["usage"]["cache_read_input_tokens"]
    assert (total_in, back["usage"]["output_tokens"]) == (150, 40)


def test_provider_output_without_an_equivalent_is_refused_with_its_path() -> None:
    """A block or tool call the other side cannot carry is an error, not a silent loss."""
    thinking = {**ANTHROPIC_TOOL_MESSAGE, "content": [{"type": "thinking", "thinking": "..."}]}
    with pytest.raises(Untranslatable) as refused:
        anthropic_message_to_openai_chat(thinking, model="m", created=0)
    assert refused.value.field == "content[0].type"
    bad_arguments: dict[str, Any] = {
        "choices": [
            {"message": {"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
             "finish_reason": "tool_calls"}
        ]
    }  # fmt: skip
    with pytest.raises(Untranslatable) as refused:
        openai_chat_to_anthropic_message(bad_arguments, model="m")
    assert refused.value.field == "choices[0].message.tool_calls[0].function.arguments"


def test_the_openai_sdk_parses_a_translated_anthropic_message() -> None:
    """The openai client gets a ChatCompletion with the tool call and usage it expects."""
    out = anthropic_message_to_openai_chat(ANTHROPIC_TOOL_MESSAGE, model="claude", created=17)
    completion = openai_answering(out).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather?"}]
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.total_tokens == 190


def test_the_anthropic_sdk_parses_a_translated_openai_completion() -> None:
    """The anthropic client gets a Message with a typed tool_use block and usage."""
    out = openai_chat_to_anthropic_message(OPENAI_TOOL_COMPLETION, model="gpt-4o")
    message = anthropic_answering(out).messages.create(
        model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "Weather?"}]
    )
    block = message.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (18, 64)
