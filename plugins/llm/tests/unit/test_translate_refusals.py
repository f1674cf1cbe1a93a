"""What cannot be translated is refused with the field's path, never silently dropped."""

from __future__ import annotations

from typing import Any

import pytest
from sidecar_llm.translate import Untranslatable, anthropic_to_openai_chat, openai_chat_to_anthropic

USER = {"role": "user", "content": "hi"}


def openai_body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [USER], **fields}


def anthropic_body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [USER], **fields}


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


OPENAI_REFUSALS = [
    (openai_body(n=2), "n"),
    (openai_body(logprobs=True), "logprobs"),
    (openai_body(top_logprobs=3), "top_logprobs"),
    (openai_body(presence_penalty=0.5), "presence_penalty"),
    (openai_body(frequency_penalty=-1), "frequency_penalty"),
    (openai_body(seed=7), "seed"),
    (openai_body(logit_bias={"50256": -100}), "logit_bias"),
    (openai_body(response_format={"type": "json_object"}), "response_format"),
    (openai_body(audio={"voice": "alloy", "format": "wav"}), "audio"),
    (openai_body(modalities=["text", "audio"]), "modalities"),
    (openai_body(functions=[{"name": "f"}]), "functions"),
    (openai_body(reasoning_effort="high"), "reasoning_effort"),
    (openai_body(service_tier="priority"), "service_tier"),
    (openai_body(a_field_from_next_year=True), "a_field_from_next_year"),
    (openai_body(temperature=1.5), "temperature"),
    (openai_body(tool_choice={"type": "allowed_tools"}), "tool_choice"),
    (openai_body(tools=[{"type": "custom", "custom": {"name": "f"}}]), "tools[0].type"),
    (
        openai_body(tools=[{"type": "function", "function": {"name": "f", "x": 1}}]),
        "tools[0].function.x",
    ),
    (openai_body(messages=[USER, {"role": "system", "content": "late"}]), "messages[1].role"),
    (openai_body(messages=[{**USER, "name": "alice"}]), "messages[0].name"),
    (openai_body(messages=[USER, {"role": "assistant", "content": "Sure"}]), "messages[1].role"),
    (openai_body(messages=[{"role": "function", "content": "x"}]), "messages[0].role"),
    (
        openai_body(messages=user_parts({"type": "input_audio", "input_audio": {}})),
        "messages[0].content[0].type",
    ),
    (
        openai_body(messages=user_parts({"type": "file", "file": {"file_id": "f"}})),
        "messages[0].content[0].type",
    ),
    (
        openai_body(
            messages=user_parts(
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}
            )
        ),
        "messages[0].content[0].image_url.detail",
    ),
    (
        openai_body(
            messages=user_parts(
                {"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,AAAA"}}
            )
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        openai_body(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{not json"},
                        },
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),  # fmt: skip
    (
        openai_body(messages=[{"role": "assistant", "content": "x", "audio": {"id": "a"}}]),
        "messages[0].audio",
    ),
    (
        openai_body(messages=[{"role": "tool", "tool_call_id": "c", "content": "x", "x": 1}]),
        "messages[0].x",
    ),
]


@pytest.mark.parametrize(("body", "field"), OPENAI_REFUSALS)
def test_openai_fields_without_an_anthropic_equivalent_are_refused(
    body: dict[str, Any], field: str
) -> None:
    """Each refusal names the exact field the app must change."""
    with pytest.raises(Untranslatable) as refused:
        openai_chat_to_anthropic(body, default_max_tokens=100)
    assert refused.value.field == field
    assert str(refused.value) == f"{field}: {refused.value.reason}"
    assert refused.value.reason


ANTHROPIC_REFUSALS = [
    (anthropic_body(top_k=5), "top_k"),
    (anthropic_body(thinking={"type": "enabled", "budget_tokens": 2048}), "thinking"),
    (anthropic_body(container="c"), "container"),
    (anthropic_body(output_config={"effort": "low"}), "output_config"),
    (anthropic_body(stop_sequences=["a", "b", "c", "d", "e"]), "stop_sequences"),
    (anthropic_body(metadata={"user_id": "u", "x": 1}), "metadata"),
    (anthropic_body(tool_choice={"type": "later"}), "tool_choice.type"),
    (
        anthropic_body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools[0].type",
    ),
    (anthropic_body(tools=[{"name": "f", "input_schema": {}, "x": 1}]), "tools[0].x"),
    (anthropic_body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
    (
        anthropic_body(messages=[USER, {"role": "assistant", "content": "The answer is ("}]),
        "messages[1].role",
    ),
    (
        anthropic_body(
            messages=user_parts(
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": "JVBERi0=",
                    },
                }
            )
        ),
        "messages[0].content[0].type",
    ),  # fmt: skip
    (
        anthropic_body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}],
                },
            ]
        ),
        "messages[1].content[0].type",
    ),  # fmt: skip
    (
        anthropic_body(
            messages=user_parts(
                {"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}
            )
        ),
        "messages[0].content[0].is_error",
    ),
    (
        anthropic_body(
            messages=user_parts(
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                }
            )
        ),
        "messages[0].content[0].content[0].type",
    ),  # fmt: skip
    (
        anthropic_body(
            messages=user_parts({"type": "image", "source": {"type": "file", "file_id": "f"}})
        ),
        "messages[0].content[0].source.type",
    ),
    (
        anthropic_body(
            messages=user_parts({"type": "text", "text": "x", "citations": [{"type": "c"}]})
        ),
        "messages[0].content[0].citations",
    ),
]


@pytest.mark.parametrize(("body", "field"), ANTHROPIC_REFUSALS)
def test_anthropic_fields_without_an_openai_equivalent_are_refused(
    body: dict[str, Any], field: str
) -> None:
    """Each refusal names the exact field the app must change."""
    with pytest.raises(Untranslatable) as refused:
        anthropic_to_openai_chat(body)
    assert refused.value.field == field


def test_disabled_thinking_and_auto_service_tier_are_not_refused() -> None:
    """Anthropic's explicit defaults change nothing, so they pass."""
    body = anthropic_body(thinking={"type": "disabled"}, service_tier="auto")
    assert anthropic_to_openai_chat(body)["messages"] == [USER]


def test_an_untranslatable_error_is_a_value_error_with_a_readable_message() -> None:
    """Callers catching ValueError see it, and its text is the 400 message."""
    with pytest.raises(ValueError, match=r"^n: Anthropic returns one choice per call$"):
        openai_chat_to_anthropic(openai_body(n=3), default_max_tokens=1)
