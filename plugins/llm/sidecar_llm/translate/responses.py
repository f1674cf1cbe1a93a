"""Whole (non-streamed) response bodies, Anthropic Message <-> OpenAI chat.completion.

Finish/stop reasons, usage, text and tool calls, ids. The stream equivalents live in
`streams`; error bodies in `errors`. A response block the other side cannot carry raises
`Untranslatable` (the gateway answers 502: the provider, not the app, produced it).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Untranslatable
from .messages import openai_tool_call

__all__ = [
    "anthropic_message_to_openai_chat",
    "anthropic_stop_to_openai_finish",
    "anthropic_usage_to_openai",
    "openai_chat_to_anthropic_message",
    "openai_finish_to_anthropic_stop",
    "openai_usage_to_anthropic",
]

# Anthropic stop_reason -> OpenAI finish_reason. OpenAI reports a matched stop sequence as
# plain "stop"; "pause_turn" only follows Anthropic's server tools, which are refused.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason ("function_call" is the legacy tool call).
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def anthropic_stop_to_openai_finish(stop_reason: object) -> str:
    """OpenAI's `finish_reason` for an Anthropic `stop_reason` (`stop` when unknown)."""
    return _FINISH.get(str(stop_reason), "stop")


def openai_finish_to_anthropic_stop(finish_reason: object) -> str:
    """Anthropic's `stop_reason` for an OpenAI `finish_reason` (`end_turn` when unknown)."""
    return _STOP.get(str(finish_reason), "end_turn")


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def anthropic_usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage; prompt tokens include cache writes and reads."""
    cached = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + _count(usage, "cache_creation_input_tokens") + cached
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def openai_usage_to_anthropic(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage -> Anthropic usage; cached prompt tokens become cache reads."""
    details = usage.get("prompt_tokens_details")
    cached = _count(details, "cached_tokens") if isinstance(details, dict) else 0
    return {
        "input_tokens": _count(usage, "prompt_tokens") - cached,
        "output_tokens": _count(usage, "completion_tokens"),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _prefixed(id_: object, prefix: str) -> str:
    text = str(id_) if id_ is not None else ""
    return text if text.startswith(prefix) else f"{prefix}{text}"


def anthropic_message_to_openai_chat(
    resp: dict[str, Any], *, model: str, created: int
) -> dict[str, Any]:
    """An Anthropic Message -> an OpenAI `chat.completion` with one choice."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    content = resp.get("content") or []
    for i, block in enumerate(content if isinstance(content, list) else []):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(openai_tool_call(block))
        else:
            raise Untranslatable(f"content[{i}].type", f"{kind!r} blocks have no OpenAI form")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    usage = resp.get("usage")
    return {
        "id": _prefixed(resp.get("id"), "chatcmpl-"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": anthropic_stop_to_openai_finish(resp.get("stop_reason")),
            }
        ],
        "usage": anthropic_usage_to_openai(usage if isinstance(usage, dict) else {}),
    }


def _tool_use(call: object, field: str) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise Untranslatable(field, "expected a function tool call")
    function = call["function"]
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (ValueError, RecursionError):  # RecursionError: nested past the parser
        arguments = None
    if not isinstance(arguments, dict):
        raise Untranslatable(f"{field}.function.arguments", "not a JSON object")
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": arguments,
    }


def openai_chat_to_anthropic_message(resp: dict[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` (first choice) -> an Anthropic Message.

    A refusal becomes the text of the answer with `stop_reason: "refusal"`. OpenAI does not say
    which stop sequence matched, so a "stop" finish is always `end_turn`.
    """
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Untranslatable("choices", "expected at least one choice")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise Untranslatable("choices[0].message", "expected an object")
    content: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    for part in (text, refusal):
        if isinstance(part, str) and part:
            content.append({"type": "text", "text": part})
    calls = message.get("tool_calls") or []
    for k, call in enumerate(calls if isinstance(calls, list) else []):
        content.append(_tool_use(call, f"choices[0].message.tool_calls[{k}]"))
    stop = openai_finish_to_anthropic_stop(choices[0].get("finish_reason"))
    if isinstance(refusal, str) and refusal:
        stop = "refusal"
    usage = resp.get("usage")
    return {
        "id": _prefixed(resp.get("id"), "msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": openai_usage_to_anthropic(usage if isinstance(usage, dict) else {}),
    }
