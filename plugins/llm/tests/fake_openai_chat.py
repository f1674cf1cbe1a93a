"""OpenAI chat completions in the fake: the request checks OpenAI makes, and the answer's shapes.

:func:`check_chat` returns OpenAI's own 400 for a request it would refuse (unknown fields, no
model or messages, roles, tool messages answering a preceding ``tool_calls``, ``stream_options``
without ``stream``); :func:`chat_answer` turns a scripted :class:`Reply` into a
:class:`ChatAnswer`, rendered as a ``chat.completion`` or as ``chat.completion.chunk`` frames
(the usage chunk only when asked for). No server here (``fake_openai``).
"""

from __future__ import annotations

__all__ = ["ChatAnswer", "chat_answer", "check_chat"]

import json
from collections.abc import Sequence
from typing import Any

from fake_provider import StreamFrames, make_id, sse
from fake_script import (
    Reply,
    apply_limits,
    count_words,
    echo_text,
    plain_text,
    split_json,
    words,
)

#: the request fields OpenAI's chat completions accept; any other is refused as OpenAI does
CHAT_FIELDS = frozenset(
    "messages model audio frequency_penalty function_call functions logit_bias logprobs "
    "max_completion_tokens max_tokens metadata modalities moderation n parallel_tool_calls "
    "prediction presence_penalty prompt_cache_key prompt_cache_options prompt_cache_retention "
    "reasoning_effort response_format safety_identifier seed service_tier stop store stream "
    "stream_options temperature tool_choice tools top_logprobs top_p user verbosity "
    "web_search_options".split()
)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


#: fields whose JSON type OpenAI checks before anything else (a wrong one is a 400 there)
_TYPED_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("tools", list, "an array"),
    ("stop", (str, list), "a string or an array"),
    ("stream", bool, "a boolean"),
    ("stream_options", dict, "an object"),
    ("max_tokens", int, "an integer"),
    ("max_completion_tokens", int, "an integer"),
)


def check_chat(body: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """OpenAI's own 400s for a chat request, as ``(message, param, code)``; None when valid."""
    for name in body:
        if name not in CHAT_FIELDS:
            return f"Unrecognized request argument supplied: {name}", None, None
    if not body.get("model"):
        return "you must provide a model parameter", None, None
    messages = body.get("messages")
    if messages is None:
        return "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
    if not isinstance(messages, list) or not messages:
        return (
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        )
    if "stream_options" in body and body.get("stream") is not True:
        return (
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        )
    for name, kinds, expected in _TYPED_FIELDS:
        if name in body and body[name] is not None and not isinstance(body[name], kinds):
            got = type(body[name]).__name__
            message = f"Invalid type for '{name}': expected {expected}, but got {got} instead."
            return message, name, "invalid_type"
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict):
            param = f"tools[{i}]"
            message = f"Invalid type for '{param}': expected an object, but got a value instead."
            return message, param, "invalid_type"
        function = tool.get("function")
        if tool.get("type") == "function" and not (function or {}).get("name"):
            param = f"tools[{i}].function" + (".name" if function else "")
            return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    return _check_roles(messages)


def _check_arguments(i: int, message: dict[str, Any]) -> tuple[str, str, str] | None:
    """Tool-call arguments travel as a JSON string, never as an object."""
    for j, call in enumerate(message.get("tool_calls") or []):
        arguments = (call.get("function") or {}).get("arguments")
        if not isinstance(arguments, str):
            param = f"messages[{i}].tool_calls[{j}].function.arguments"
            kind = "an object" if isinstance(arguments, dict) else type(arguments).__name__
            message_text = f"Invalid type for '{param}': expected a string, but got {kind} instead."
            return message_text, param, "invalid_type"
    return None


def _check_roles(messages: list[Any]) -> tuple[str, str | None, str | None] | None:
    awaiting: set[str] = set()  # tool_call ids of the last assistant message not yet answered
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            allowed = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"
            return (
                f"Invalid value: '{role}'. Supported values are: {allowed}.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if role == "tool":
            if message.get("tool_call_id") not in awaiting:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                    None,
                )
            awaiting.discard(message["tool_call_id"])
            continue
        if awaiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(awaiting))}",
                f"messages.[{i}].role",
                None,
            )
        if role == "assistant":
            if (wrong := _check_arguments(i, message)) is not None:
                return wrong
            awaiting = {c.get("id") for c in message.get("tool_calls") or []}
    return None


class ChatAnswer:
    """One answer, rendered as a completion or as stream frames."""

    def __init__(
        self,
        text: str | None,
        tool_calls: Sequence[tuple[str, str, str]],
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        self.id = make_id("chatcmpl-")
        self.text = text
        self.tool_calls = tool_calls  # (id, name, arguments JSON)
        self.finish_reason = finish_reason
        self.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _calls(self) -> list[dict[str, Any]]:
        return [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}
            for id_, name, args in self.tool_calls
        ]

    def completion(self, model: str, created: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.text,
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = self._calls()
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def frames(self, model: str, created: int, include_usage: bool) -> StreamFrames:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:  # OpenAI sends "usage": null on every chunk but the last
                data["usage"] = None
            return sse(json.dumps(data))

        first = {"role": "assistant", "content": "" if self.text else None, "refusal": None}
        content = [chunk({"content": piece}) for piece in words(self.text or "")]
        for index, (id_, name, args) in enumerate(self.tool_calls):
            start = {"index": index, "id": id_, "type": "function"}
            start["function"] = {"name": name, "arguments": ""}
            content.append(chunk({"tool_calls": [start]}))
            for fragment in split_json(args):
                part = {"index": index, "function": {"arguments": fragment}}
                content.append(chunk({"tool_calls": [part]}))
        trailer = [chunk({}, self.finish_reason)]
        if include_usage:
            last = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": self.usage,
            }
            trailer.append(sse(json.dumps(last)))
        trailer.append(sse("[DONE]"))
        return StreamFrames([chunk(first)], content, trailer)


def chat_answer(body: dict[str, Any], reply: Reply) -> ChatAnswer:
    """The answer ``reply`` means for this request: text cut to its limits, ids, usage."""
    messages = body["messages"]
    last = next(
        (plain_text(m.get("content")) for m in reversed(messages) if m["role"] in ("user", "tool")),
        "",
    )
    text = reply.text if reply.text is not None or reply.tool_calls else echo_text(last)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    why = None
    if text is not None:
        text, why, _ = apply_limits(text, limit, stops)
    calls = [(c.id or make_id("call_"), c.name, json.dumps(c.arguments)) for c in reply.tool_calls]
    finish = reply.stop or ("tool_calls" if calls else "length" if why == "max_tokens" else "stop")
    out = reply.output_tokens
    if out is None:
        out = len(words(text or "")) + sum(len(words(args)) for _, _, args in calls)
    prompt = reply.input_tokens
    if prompt is None:
        prompt = count_words(messages)
    return ChatAnswer(text, calls, finish, prompt, out)
