"""Request translation, OpenAI Chat Completions <-> Anthropic Messages, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from sidecar_llm.translate import anthropic_to_openai_chat, openai_chat_to_anthropic
from translate_sdk import anthropic_answering, openai_answering

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def to_anthropic(body: dict[str, Any], default_max_tokens: int = 4096) -> dict[str, Any]:
    return openai_chat_to_anthropic(body, default_max_tokens=default_max_tokens)


def openai_tools_conversation() -> dict[str, Any]:
    """A tools round trip the way the openai SDK sends it after running the tool."""
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ],
        "tool_choice": "auto",
        "max_tokens": 200,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "user": "user-42",
    }


def test_an_openai_tools_conversation_becomes_the_anthropic_request() -> None:
    """System, tool calls and consecutive tool results arrive as Anthropic expects them."""
    assert to_anthropic(openai_tools_conversation()) == {
        "model": "gpt-4o-mini",
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather",
                     "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                ],
            },
        ],
        "tools": [
            {"name": "get_weather", "description": "Current weather",
             "input_schema": WEATHER_SCHEMA},
        ],
        "tool_choice": {"type": "auto"},
        "max_tokens": 200,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }  # fmt: skip


def test_an_anthropic_tools_conversation_becomes_the_openai_request() -> None:
    """tool_use blocks become tool_calls and tool_result blocks become tool messages."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "tools": [{"name": "get_weather", "description": "Current weather",
                   "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "metadata": {"user_id": "user-42"},
    }  # fmt: skip
    assert anthropic_to_openai_chat(body) == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1",
             "content": [{"type": "text", "text": "18C"}]},
            {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": WEATHER_SCHEMA}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 300,
        "temperature": 0.5,
        "stop": ["END"],
        "user": "user-42",
    }  # fmt: skip


def test_anthropic_gets_the_default_max_tokens_when_the_app_gave_none() -> None:
    """Anthropic requires max_tokens: the configured default fills it in."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert to_anthropic(body, default_max_tokens=1234)["max_tokens"] == 1234


def test_max_completion_tokens_wins_over_the_deprecated_max_tokens() -> None:
    """The newer OpenAI limit is the one Anthropic is given."""
    body = {"model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 20}
    assert to_anthropic(body)["max_tokens"] == 20


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
def test_tool_choice_and_parallel_calls_reach_anthropic(
    choice: object, parallel: object, expected: object
) -> None:
    """Every OpenAI tool_choice, with parallel_tool_calls, maps to Anthropic's tool_choice."""
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
    }
    out = to_anthropic(body)
    assert out.get("tool_choice") == expected
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("choice", "expected_choice", "expected_parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "none"}, "none", None),
        ({"type": "any"}, "required", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
)
def test_tool_choice_and_parallel_calls_reach_openai(
    choice: dict[str, Any], expected_choice: object, expected_parallel: object
) -> None:
    """Every Anthropic tool_choice, with disable_parallel_tool_use, maps to OpenAI's."""
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "strict": True}],
        "tool_choice": choice,
    }
    out = anthropic_to_openai_chat(body)
    assert out["tool_choice"] == expected_choice
    assert out.get("parallel_tool_calls") == expected_parallel
    assert out["tools"][0]["function"]["strict"] is True


def test_images_by_url_and_base64_cross_both_ways() -> None:
    """An image URL and a base64 data URL keep their bytes and media type both ways."""
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url",
         "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "auto"}},
    ]  # fmt: skip
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    anthropic = to_anthropic(body)
    assert anthropic["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    back = anthropic_to_openai_chat(anthropic)
    assert back["messages"][0]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def test_several_system_and_developer_messages_become_system_blocks_and_back() -> None:
    """Several leading instructions stay separate text blocks, in order."""
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "hi"},
        ],
    }
    anthropic = to_anthropic(body)
    assert anthropic["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert anthropic_to_openai_chat(anthropic)["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "Be terse."},
            {"type": "text", "text": "Answer in French."},
        ],
    }


def test_streaming_requests_ask_each_provider_for_usage() -> None:
    """A streamed Anthropic-front call asks OpenAI for its usage chunk; stream stays on."""
    openai = anthropic_to_openai_chat(
        {"model": "m", "max_tokens": 5, "stream": True,
         "messages": [{"role": "user", "content": "x"}]}
    )  # fmt: skip
    assert (openai["stream"], openai["stream_options"]) == (True, {"include_usage": True})
    anthropic = to_anthropic(
        {"model": "m", "stream": True, "stream_options": {"include_usage": False},
         "messages": [{"role": "user", "content": "x"}]}
    )  # fmt: skip
    assert anthropic["stream"] is True and "stream_options" not in anthropic


def test_cache_hints_are_dropped_because_they_change_no_output() -> None:
    """Prompt-caching markers are dropped, never refused: they change cost, not the answer."""
    body = {
        "model": "m",
        "max_tokens": 5,
        "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}}],
    }  # fmt: skip
    out = anthropic_to_openai_chat(body)
    assert out["messages"][:2] == [
        {"role": "system", "content": [{"type": "text", "text": "S"}]},
        {"role": "user", "content": [{"type": "text", "text": "x"}]},
    ]
    assert "cache_control" not in out["tools"][0]["function"]


def test_neutral_values_of_untranslatable_fields_are_accepted() -> None:
    """Defaults SDKs send (n=1, zero penalties, text format, nulls) are not refusals."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0.0,
        "logprobs": False,
        "seed": None,
        "response_format": {"type": "text"},
        "store": False,
        "metadata": {"app": "x"},
    }
    assert to_anthropic(body)["messages"] == [{"role": "user", "content": "x"}]


def test_a_conversation_survives_openai_to_anthropic_to_openai() -> None:
    """OpenAI -> Anthropic -> OpenAI keeps roles, text, tool calls and tool results."""
    original = openai_tools_conversation()
    back = anthropic_to_openai_chat(to_anthropic(original))
    assert back["messages"][0] == {"role": "system", "content": "You are terse."}
    assert back["messages"][1] == {"role": "user", "content": "Weather in Paris and Rome?"}
    assert back["messages"][2]["tool_calls"] == original["messages"][2]["tool_calls"]
    assert back["messages"][3:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
    ]
    for key in ("tools", "tool_choice", "temperature", "top_p", "stop", "user"):
        assert back[key] == original[key], key
    assert back["max_completion_tokens"] == original["max_tokens"]


def test_a_conversation_survives_anthropic_to_openai_to_anthropic() -> None:
    """Anthropic -> OpenAI -> Anthropic gives back the same request."""
    original = {
        "model": "m",
        "max_tokens": 100,
        "system": "S",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1, 2]}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "stop_sequences": ["x"],
        "temperature": 1,
        "top_p": 0.5,
        "metadata": {"user_id": "u"},
    }  # fmt: skip
    assert to_anthropic(anthropic_to_openai_chat(original)) == original


def test_an_assistant_turn_the_openai_sdk_sends_back_translates() -> None:
    """Appending the SDK's response message to `messages` (as its docs show) is accepted."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    completion = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                     "message": {"role": "assistant", "content": None, "refusal": None,
                                 "annotations": [], "tool_calls": [call]}}],
    }  # fmt: skip
    sent: list[Any] = []
    client = openai_answering(completion, sent=sent)
    tools: Any = openai_tools_conversation()["tools"]
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    answer = client.chat.completions.create(model="gpt-4o", messages=[question], tools=tools)
    result: Any = {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    client.chat.completions.create(
        model="gpt-4o", messages=[question, answer.choices[0].message, result], tools=tools
    )
    assert to_anthropic(sent[1])["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}]},
    ]  # fmt: skip


def test_an_assistant_turn_the_anthropic_sdk_sends_back_translates() -> None:
    """Re-sending the SDK's `message.content` blocks (as its docs show) is accepted."""
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "Checking.", "citations": None},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }  # fmt: skip
    sent: list[Any] = []
    client = anthropic_answering(message, sent=sent)
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    answer = client.messages.create(model="c", max_tokens=9, messages=[question], tools=tools)
    result: Any = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}  # fmt: skip
    turns: Any = [question, {"role": "assistant", "content": answer.content}, result]
    client.messages.create(model="c", max_tokens=9, messages=turns, tools=tools)
    assert anthropic_to_openai_chat(sent[1])["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
    ]  # fmt: skip


def test_a_single_stop_string_and_the_safety_identifier_reach_anthropic() -> None:
    """`stop` may be one string; `safety_identifier` is the end-user id when `user` is absent."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stop": "END",
        "safety_identifier": "hash-1",
    }
    out = to_anthropic(body)
    assert (out["stop_sequences"], out["metadata"]) == (["END"], {"user_id": "hash-1"})
